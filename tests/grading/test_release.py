"""Release: homework/ is generated from solutions/ by nbgrader and must be up to date."""
from __future__ import annotations

import json

import pytest

from genai_course.grading.release import master_assignments, stale_files
from genai_course.grading.runner import course_root

ROOT = course_root()


@pytest.mark.parametrize("assignment", master_assignments())
def test_homework_is_up_to_date(assignment):
    stale = stale_files(assignment)
    assert not stale, f"{stale} differ from a fresh release: run `genai-course release {assignment}` and commit"


@pytest.mark.parametrize("assignment", master_assignments())
def test_release_hides_solutions_and_keeps_structure(assignment):
    master = json.loads((ROOT / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    released = json.loads((ROOT / "homework" / assignment / f"{assignment}.ipynb").read_text())
    assert len(master["cells"]) == len(released["cells"])
    text = "\n".join("".join(c["source"]) for c in released["cells"])
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    graded = [c for c in released["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    code = [c for c in graded if c["cell_type"] == "code"]
    assert code and all("raise NotImplementedError()" in "".join(c["source"]) for c in code)
    answers = [c for c in graded if c["cell_type"] == "markdown"]
    assert answers and all("YOUR ANSWER HERE" in "".join(c["source"]) for c in answers)
    assert all(not c.get("outputs") for c in released["cells"] if c["cell_type"] == "code")


def test_stale_release_is_detected(tmp_path, monkeypatch):
    import shutil

    for name in ("solutions", "homework"):
        shutil.copytree(ROOT / name / "hw0", tmp_path / name / "hw0")
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    nb = json.loads((tmp_path / "solutions" / "hw0" / "hw0.ipynb").read_text())
    nb["cells"][0]["source"] = "# changed title\n"
    (tmp_path / "solutions" / "hw0" / "hw0.ipynb").write_text(json.dumps(nb))
    assert stale_files("hw0", root=tmp_path) == ["homework/hw0/hw0.ipynb"]


def test_nbgrader_validate_works_through_the_course_config(tmp_path):
    """Instructors running nbgrader themselves: `nbgrader validate` flags an untouched release."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    nb = tmp_path / "hw0.ipynb"
    shutil.copy(ROOT / "homework" / "hw0" / "hw0.ipynb", nb)
    env = {**os.environ, "GENAI_COURSE_QUICK": "1",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(nb)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "NotImplementedError" in out or "You did not provide a response" in out, out[-2000:]
