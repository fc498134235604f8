"""Every homework end to end: the solution scores full marks within 60 s, the untouched release
scores 0 with a clean report, and every planted bug (tests/grading/fixtures/hwN/mutants.py) loses
exactly the points of the tests that cover it."""
from __future__ import annotations

import importlib
import json

import pytest

from genai_course.grading import grade_submission, hidden_suite
from genai_course.grading.batch import grade_many
from genai_course.grading.extract import extract
from genai_course.grading.release import master_assignments
from genai_course.grading.runner import assignments, course_root

ROOT = course_root()
HOMEWORK = [a for a in master_assignments() if a in assignments()]


def test_every_master_notebook_has_a_hidden_suite_and_mutants():
    assert HOMEWORK == master_assignments() and "hw0" in HOMEWORK
    for a in HOMEWORK:
        assert importlib.import_module(f"tests.grading.fixtures.{a}.mutants").MUTANTS, f"{a} has no mutants"


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_solution_scores_full_marks(assignment):
    suite = hidden_suite(assignment)
    result = grade_submission(ROOT / "solutions" / assignment / f"{assignment}.ipynb", suite)
    failed = {t["test_id"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}
    assert not failed, failed
    assert result["score"] == suite.max_score
    assert result["execution_time"] < 60, "the hidden suite must finish in 60 s on a correct submission"


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_untouched_release_scores_zero_with_a_clean_report(assignment):
    suite = hidden_suite(assignment)
    result = grade_submission(ROOT / "homework" / assignment / f"{assignment}.ipynb", suite)
    assert result["score"] == 0 and result["status"] == "graded"
    for t in result["tests"]:
        assert "NotImplementedError" in t["output"], (t["name"], t["output"])
        assert "grader hit" not in t["output"]
    assert max(len(t["output"]) for t in result["tests"]) < 3000, "hidden inputs must not be dumped"


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_planted_bugs_lose_exactly_their_points(assignment, tmp_path):
    """Each planted bug loses exactly the points of the tests that cover it, and each valid variant
    (a correct submission written differently from the solution) keeps full marks. One batch."""
    fixtures = importlib.import_module(f"tests.grading.fixtures.{assignment}.mutants")
    cases = {name: (edits, losers) for name, (edits, losers) in fixtures.MUTANTS.items()}
    for name, edits in getattr(fixtures, "VALID_VARIANTS", {}).items():
        assert name not in cases, name
        cases[name] = (edits, set())
    source = extract(ROOT / "solutions" / assignment / f"{assignment}.ipynb").source
    paths = []
    for name, (edits, _) in cases.items():
        text = source
        for old, new in edits:
            assert old in text, f"{name}: {old!r} not found in the solution"
            text = text.replace(old, new)
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(path)
    grade_many(hidden_suite(assignment), paths, tmp_path / "out", workers=2)
    problems = []
    for name, (_, losers) in cases.items():
        result = json.loads((tmp_path / "out" / name / "results.json").read_text())
        lost = {t["test_id"]: t["output"][:400] for t in result["tests"] if t["score"] < t["max_score"]}
        if set(lost) != losers:
            problems.append(f"{name}: lost points in {sorted(lost)}, expected exactly {sorted(losers)}: {lost}")
    assert not problems, "\n".join(problems)
