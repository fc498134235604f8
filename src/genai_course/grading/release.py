"""``genai-course release``: regenerate homework/hwN/ from solutions/hwN/ through nbgrader's own
``generate_assignment`` (configured by nbgrader_config.py at the course root)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .assignment import Assignment, GraderError, course_root, master_assignments

__all__ = ["master_assignments", "release", "stale_files"]


def _nbgrader(root: Path, assignment: str, release_dir: Path | None = None) -> None:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # nbgrader calls alembic
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--create",
           "--log-level=WARN"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd.append(f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db")
        if release_dir is not None:
            cmd.append(f"--CourseDirectory.release_directory={release_dir}")
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GraderError(f"nbgrader generate_assignment {assignment} failed:\n{proc.stderr[-3000:]}")


def release(assignments: list[str] | None = None, root: Path | None = None) -> list[Path]:
    """Regenerate ``homework/<a>/`` for each assignment (all master notebooks by default)."""
    root = root or course_root()
    known = master_assignments(root)
    todo = assignments or known
    unknown = sorted(set(todo) - set(known))
    if unknown:
        raise GraderError(f"no master notebook solutions/<a>/<a>.ipynb for {unknown}; known: {known}")
    out = []
    for a in todo:
        _nbgrader(root, a)
        out.append(Assignment.get(a, root).release_dir)
    return out


def _normalise(path: Path):
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        return [(c.get("cell_type"), "".join(c.get("source", "")), json.dumps(c.get("metadata", {}), sort_keys=True))
                for c in nb.get("cells", [])]
    return path.read_bytes()


def stale_files(assignment: str, root: Path | None = None) -> list[str]:
    """Files of homework/<assignment>/ that differ from a fresh release (empty = up to date)."""
    root = root or course_root()
    committed = Assignment.get(assignment, root).release_dir
    with tempfile.TemporaryDirectory() as tmp:
        _nbgrader(root, assignment, Path(tmp))
        fresh = Path(tmp) / assignment
        names = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        if committed.is_dir():
            names |= {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()
                      and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}
        stale = []
        for rel in sorted(names):
            a, b = committed / rel, fresh / rel
            if not a.is_file() or not b.is_file() or _normalise(a) != _normalise(b):
                stale.append(str(Path("homework") / assignment / rel))
        return stale
