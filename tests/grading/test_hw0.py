"""HW0 end to end: the solution scores full marks, the untouched release scores 0 with a clean
report, and every planted bug loses exactly the points of the tests that cover it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from genai_course.grading import grade_submission, hidden_suite
from genai_course.grading.batch import grade_many
from genai_course.grading.extract import extract
from genai_course.grading.runner import course_root

from .fixtures.hw0.mutants import MUTANTS

ROOT = course_root()


@pytest.fixture(scope="module")
def suite():
    return hidden_suite("hw0")


def test_solution_scores_full_marks(suite):
    result = grade_submission(ROOT / "solutions" / "hw0" / "hw0.ipynb", suite)
    failed = {t["test_id"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}
    assert not failed, failed
    assert result["score"] == suite.max_score == 32
    assert result["execution_time"] < 60, "the hidden suite must finish in 60 s on a correct submission"


def test_untouched_release_scores_zero_with_a_clean_report(suite):
    result = grade_submission(ROOT / "homework" / "hw0" / "hw0.ipynb", suite)
    assert result["score"] == 0 and result["status"] == "graded"
    for t in result["tests"]:
        assert "NotImplementedError" in t["output"], (t["name"], t["output"])
        assert "grader hit" not in t["output"]
    # Hidden inputs are not dumped: no message is longer than a screenful.
    assert max(len(t["output"]) for t in result["tests"]) < 3000


def test_planted_bugs_lose_exactly_their_points(suite, tmp_path):
    source = extract(ROOT / "solutions" / "hw0" / "hw0.ipynb").source
    paths = []
    for name, (edits, _) in MUTANTS.items():
        text = source
        for old, new in edits:
            assert old in text, f"mutant {name}: {old!r} not found in the solution"
            text = text.replace(old, new)
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(path)
    grade_many(suite, paths, tmp_path / "out", workers=2)
    problems = []
    for name, (_, losers) in MUTANTS.items():
        result = json.loads((tmp_path / "out" / name / "results.json").read_text())
        lost = {t["test_id"] for t in result["tests"] if t["score"] < t["max_score"]}
        if lost != losers:
            problems.append(f"{name}: lost points in {sorted(lost)}, expected exactly {sorted(losers)}")
    assert not problems, "\n".join(problems)
