"""Instructors who run nbgrader themselves: generate_assignment -> autograde -> generate_feedback works
through the course's nbgrader_config.py, and the feedback never shows hidden tests."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from genai_course.grading.runner import course_root

ROOT = course_root()
MARKER = "HIDDEN_CASE_7f3a91"  # appears only inside the hidden-test block


def _nbgrader(root: Path, *args: str) -> str:
    env = {**os.environ, "GENAI_COURSE_QUICK": "1", "MPLBACKEND": "Agg",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_autograde_and_feedback_hide_hidden_tests(tmp_path):
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    src = tmp_path / "solutions" / "hw1"
    shutil.copytree(ROOT / "solutions" / "hw1", src, ignore=shutil.ignore_patterns("__pycache__"))
    nb = json.loads((src / "hw1.ipynb").read_text())
    at = next(i for i, c in enumerate(nb["cells"])
              if c["metadata"].get("nbgrader", {}).get("grade_id") == "check_CharTokenizer")
    nb["cells"].insert(at + 1, {
        "cell_type": "code", "execution_count": None, "outputs": [], "id": "hidden-probe",
        "metadata": {"nbgrader": {"grade": True, "grade_id": "hidden_probe", "locked": True, "points": 1,
                                  "schema_version": 3, "solution": False}},
        "source": ('assert CharTokenizer("ab").vocab_size == 2\n'
                   "### BEGIN HIDDEN TESTS\n"
                   f'assert CharTokenizer("abc").decode([2, 0]) == "ca", "{MARKER}"\n'
                   "### END HIDDEN TESTS\n"),
    })
    (src / "hw1.ipynb").write_text(json.dumps(nb, indent=1))

    _nbgrader(tmp_path, "generate_assignment", "hw1", "--create", "--force")
    released = (tmp_path / "homework" / "hw1" / "hw1.ipynb").read_text()
    assert "raise NotImplementedError()" in released and MARKER not in released

    # The student hands in a complete notebook (the master's solutions, hidden block included: the
    # autograder must restore the test cell from the gradebook, not trust the submission's copy).
    submitted = tmp_path / "grading" / "submitted" / "alice" / "hw1"
    submitted.mkdir(parents=True)
    shutil.copy(src / "hw1.ipynb", submitted / "hw1.ipynb")
    _nbgrader(tmp_path, "autograde", "hw1", "--create", "--force", "--Execute.timeout=600")
    graded = json.loads((tmp_path / "grading" / "autograded" / "alice" / "hw1" / "hw1.ipynb").read_text())
    probe = next(c for c in graded["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "hidden_probe")
    assert MARKER in "".join(probe["source"])  # the autograder did run the hidden block
    assert not [o for o in probe["outputs"] if o.get("output_type") == "error"], probe["outputs"]

    _nbgrader(tmp_path, "generate_feedback", "hw1", "--force")
    page = (tmp_path / "grading" / "feedback" / "alice" / "hw1" / "hw1.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))  # code is syntax-highlighted into many spans
    assert MARKER not in page and MARKER not in text, "feedback leaks the hidden test block"
    cell = text[text.index("Grade cell: hidden_probe"):]
    assert re.match(r"Grade cell: hidden_probe\s+Score: 1\.0 / 1\.0", cell), cell[:200]
    assert 'assert CharTokenizer("ab").vocab_size == 2' in cell[:400]  # the visible part is shown
