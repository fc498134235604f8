"""``genai-course student-edition DIR``: the copy of the course to give students.

A standalone, git-ready tree with the lectures, the released homework and its public checks, the
data card and committed checkpoints, the package, its tests that need no instructor material, the
schedule and FAQ, and a README without the instructor sections -- and none of ``solutions/``,
``autograder/``, the grader's tests or nbgrader's configuration. It installs and runs with the same
two commands as the full repository; ``course.sh`` sees the ``.student-edition`` marker and then
installs no instructor tools and starts JupyterLab with nbgrader's extensions switched off.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

# What is copied, relative to the course root (folders whole, minus IGNORED and INSTRUCTOR_ONLY).
INCLUDE = (
    "README.md", "course.sh", "pyproject.toml", "environment.yml", ".gitignore", ".ci/run",
    "docs", "lectures", "homework", "data/README.md", "data/checkpoints", "src/genai_course", "tests",
)
# Never copied: build and editor leftovers, caches, prepared data.
IGNORED = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".pytest_cache", "*.egg-info", ".DS_Store")
# Tests that need solutions/, autograder/ or the grader's fixtures (relative to the course root).
# tests/test_llm.py checks gc.llm with its own LoRA layer, collate and freezing helpers: HW3's graded answers.
INSTRUCTOR_ONLY = ("tests/grading", "tests/test_gpu.py", "tests/test_student_edition.py", "tests/test_llm.py")
# Text that marks solution code or hidden tests (nbgrader's delimiters); none may be in the edition.
# Composed here so that this file, which the edition holds, does not contain them itself.
SECRET_MARKERS = tuple(f"### {edge} {what}" for what in ("SOLUTION", "HIDDEN TESTS") for edge in ("BEGIN", "END"))
# Extras the edition installs (course.sh and environment.yml): no nbgrader.
STUDENT_EXTRAS = ("course", "test")

# nbgrader's instructor tools, as `jupyter labextension list` / `jupyter server extension list` name them.
NBGRADER_LAB_EXTENSION = "@jupyter/nbgrader"
NBGRADER_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list", "nbgrader.server_extensions.validate_assignment",
)

MARKER_TEXT = """\
This folder is the student edition of the Generative AI course, made by
`genai-course student-edition` from the full repository{source}.
course.sh reads this file: it installs the package without instructor tools and starts
JupyterLab with nbgrader's extensions switched off (.jupyter/).
"""


class EditionError(Exception):
    """The edition cannot be built (destination in use, or instructor material would leak)."""


# ---- README: drop the instructor sections --------------------------------------------------------

def student_markdown(text: str) -> str:
    """The student version of a markdown file of the full repository:
    lines between ``<!-- BEGIN full repository -->`` and ``<!-- END full repository -->`` and lines
    ending in ``<!-- full repository -->`` are dropped; ``<!-- student edition: TEXT -->`` becomes TEXT."""
    out: list[str] = []
    inside = False
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped == "<!-- BEGIN full repository -->":
            if inside:
                raise EditionError(f"line {n}: nested <!-- BEGIN full repository -->")
            inside = True
        elif stripped == "<!-- END full repository -->":
            if not inside:
                raise EditionError(f"line {n}: <!-- END full repository --> without BEGIN")
            inside = False
        elif inside or stripped.endswith("<!-- full repository -->"):
            continue
        else:
            m = re.fullmatch(r"<!-- student edition: (.*) -->", stripped)
            out.append(m.group(1) if m else line)
    if inside:
        raise EditionError("<!-- BEGIN full repository --> without END")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n") + "\n"


def student_environment_yml(text: str, instructor_pins: set[str]) -> str:
    """environment.yml without the instructor extra's pins, installing ``.[course,test]``."""
    lines = [line for line in text.splitlines()
             if line.strip().removeprefix("- ").strip().lower() not in instructor_pins]
    out = "\n".join(lines).replace("-e .[all]", f"-e .[{','.join(STUDENT_EXTRAS)}]") + "\n"
    if f"-e .[{','.join(STUDENT_EXTRAS)}]" not in out:
        raise EditionError("environment.yml: no '-e .[all]' line to replace")
    return out


def _instructor_pins(root: Path) -> set[str]:
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return {r.strip().lower() for r in project["optional-dependencies"].get("instructor", [])}


def course_root() -> Path:
    """``$GENAI_COURSE_ROOT``, else the checkout this package was installed from."""
    return Path(os.environ.get("GENAI_COURSE_ROOT") or Path(__file__).resolve().parents[2])


# ---- copying and checking ------------------------------------------------------------------------

def _ignored(rel: Path) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in IGNORED)


def _instructor_only(rel: Path) -> bool:
    return any(rel == Path(p) or Path(p) in rel.parents for p in INSTRUCTOR_ONLY)


def _files(root: Path) -> list[Path]:
    """Files of INCLUDE (relative to root), without IGNORED and INSTRUCTOR_ONLY ones."""
    out: list[Path] = []
    for entry in INCLUDE:
        src = root / entry
        if src.is_file():
            out.append(Path(entry))
        elif src.is_dir():
            out += [p.relative_to(root) for p in sorted(src.rglob("*")) if p.is_file() and not p.is_symlink()]
    return [rel for rel in out if not _ignored(rel) and not _instructor_only(rel)]


def leaks(dest: Path) -> list[str]:
    """What in ``dest`` must not be given to students: instructor paths and solution markers."""
    problems = [f"{p} exists" for p in ("solutions", "autograder", "nbgrader_config.py", "gradebook.db", "tests/grading")
                if (dest / p).exists()]
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary (checkpoints)
        problems += [f"{path.relative_to(dest)} contains {m!r}" for m in SECRET_MARKERS if m in text]
    return problems


def _source_commit(root: Path) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (commit {proc.stdout.strip()})" if proc.returncode == 0 else ""


def _write_jupyter_config(dest: Path) -> None:
    """Switch nbgrader off in the lab that course.sh starts (it puts .jupyter/ on JUPYTER_CONFIG_PATH)."""
    labconfig = dest / ".jupyter" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {NBGRADER_LAB_EXTENSION: True}}, indent=2) + "\n")
    (dest / ".jupyter" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {e: False for e in NBGRADER_SERVER_EXTENSIONS}}},
                   indent=2) + "\n")


def student_edition(dest: Path, *, root: Path | None = None) -> Path:
    """Write the student edition of the course at ``root`` (default: this checkout) into ``dest``,
    which must be new or empty and outside the course. Returns ``dest`` resolved. Raises
    :class:`EditionError` when ``dest`` is unusable or instructor material would be copied."""
    root = (root or course_root()).resolve()
    dest = Path(dest).resolve()
    if dest == root or root in dest.parents:
        raise EditionError(f"{dest} is inside the course at {root}; choose a folder outside it")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EditionError(f"{dest} exists and is not an empty folder")
    if not (root / "homework").is_dir():
        raise EditionError(f"{root} has no homework/ (run genai-course release first)")

    dest.mkdir(parents=True, exist_ok=True)
    for rel in _files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix == ".md":
            target.write_text(student_markdown((root / rel).read_text()))
            shutil.copystat(root / rel, target)
        else:
            shutil.copy2(root / rel, target)
    (dest / "environment.yml").write_text(
        student_environment_yml((root / "environment.yml").read_text(), _instructor_pins(root)))
    (dest / ".student-edition").write_text(MARKER_TEXT.format(source=_source_commit(root)))
    _write_jupyter_config(dest)

    problems = leaks(dest)
    if problems:
        shutil.rmtree(dest)
        raise EditionError("instructor material would be given to students:\n  " + "\n  ".join(problems))
    return dest


def summary(dest: Path) -> str:
    """Files and bytes per top-level entry of an edition, for the command's report."""
    rows: dict[str, list[int]] = {}
    for p in dest.rglob("*"):
        if p.is_file() and ".git" not in p.relative_to(dest).parts:
            top = p.relative_to(dest).parts[0]
            rows.setdefault(top, [0, 0])
            rows[top][0] += 1
            rows[top][1] += p.stat().st_size
    lines = [f"  {name:<18} {n:>4} files {size / 1e6:8.2f} MB" for name, (n, size) in sorted(rows.items())]
    total_n, total_size = sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values())
    return "\n".join(lines + [f"  {'total':<18} {total_n:>4} files {total_size / 1e6:8.2f} MB"])

