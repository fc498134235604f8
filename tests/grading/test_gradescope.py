"""The Gradescope bundle holds what run_autograder needs, and grading from it works."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from genai_course.grading.gradescope import build_bundle
from genai_course.grading.runner import course_root

ROOT = course_root()


def test_bundle_grades_a_submission(tmp_path):
    bundle = build_bundle("hw0", tmp_path / "hw0_autograder.zip")
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "package/pyproject.toml", "course/autograder/hw0/probes.py",
                "course/solutions/hw0/hw0.ipynb"} <= names
        assert not any(n.startswith(("course/homework", "course/autograder/hw1")) for n in names)
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111, "run_autograder must be executable"
        assert "/autograder/results/results.json" in z.read("run_autograder").decode()
        z.extractall(tmp_path / "source")
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "hw0.ipynb").write_bytes((ROOT / "solutions" / "hw0" / "hw0.ipynb").read_bytes())
    results = tmp_path / "results" / "results.json"
    env = {**os.environ, "GENAI_COURSE_ROOT": str(tmp_path / "source" / "course")}
    proc = subprocess.run([sys.executable, "-m", "genai_course.grading.gradescope", "run", "hw0", str(submission),
                           str(results)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(results.read_text())
    assert data["score"] == 32 and len(data["tests"]) == 12


def test_missing_submission_is_reported(tmp_path):
    from genai_course.grading.gradescope import run

    (tmp_path / "sub").mkdir()
    result = run("hw0", tmp_path / "sub", tmp_path / "results.json")
    assert result["score"] == 0 and "No hw0.ipynb" in result["output"]
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 0
