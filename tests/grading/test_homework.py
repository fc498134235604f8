"""Every homework end to end, on a machine made slow and busy on purpose: the solution scores full
marks, the untouched release scores 0 with a clean report, and every planted bug
(tests/grading/fixtures/hwN/mutants.py) loses exactly the points of the tests that cover it while
every valid variant keeps full marks.

"Slow and busy" is a deterministic stand-in for a loaded laptop or a cold 0.5-vCPU container: every
sandbox sleeps 20 s before it starts (``GENAI_COURSE_SLOW_START``), and 2 x the core count of
busy-looping processes run the whole time. A grade must not depend on either."""
from __future__ import annotations

import csv
import importlib
import json
import os
import subprocess
import sys

import pytest

from genai_course import cli
from genai_course.grading import grade_submission, hidden_suite
from genai_course.grading.extract import extract
from genai_course.grading.release import master_assignments
from genai_course.grading.runner import assignments, course_root
from genai_course.grading.sandbox import SLOW_START_ENV, Limits, _own_cgroups, _CGROUP_ROOT

ROOT = course_root()
HOMEWORK = [a for a in master_assignments() if a in assignments()]
SLOW_START = "20"


@pytest.fixture(scope="module")
def busy_machine():
    """2 x cores busy-looping processes for the whole module."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    yield len(procs)
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def slow_start(monkeypatch):
    monkeypatch.setenv(SLOW_START_ENV, SLOW_START)


def test_every_master_notebook_has_a_hidden_suite_and_mutants():
    assert HOMEWORK == master_assignments() and "hw0" in HOMEWORK
    for a in HOMEWORK:
        assert importlib.import_module(f"tests.grading.fixtures.{a}.mutants").MUTANTS, f"{a} has no mutants"


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_solution_scores_full_marks_on_a_slow_busy_machine(assignment, busy_machine, slow_start):
    suite = hidden_suite(assignment)
    result = grade_submission(ROOT / "solutions" / assignment / f"{assignment}.ipynb", suite)
    failed = {t["test_id"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}
    assert not failed, failed
    assert result["score"] == suite.max_score and result["status"] == "graded"
    assert result["extra_data"]["startup_seconds"] >= float(SLOW_START), "the stand-in was not in effect"


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_untouched_release_scores_zero_with_a_clean_report(assignment):
    suite = hidden_suite(assignment)
    result = grade_submission(ROOT / "homework" / assignment / f"{assignment}.ipynb", suite)
    assert result["score"] == 0 and result["status"] == "graded"
    for t in result["tests"]:
        assert "NotImplementedError" in t["output"], (t["name"], t["output"])
        assert "grader hit" not in t["output"]
    assert max(len(t["output"]) for t in result["tests"]) < 3000, "hidden inputs must not be dumped"


def _cpu_quota_possible() -> bool:
    base = _CGROUP_ROOT / "cpu" / _own_cgroups().get("cpu", "/").lstrip("/")
    v2 = (_CGROUP_ROOT / "cgroup.controllers").is_file()
    return v2 or (base.is_dir() and os.access(base, os.W_OK))


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_solution_scores_full_marks_on_half_a_core(assignment):
    """Gradescope's default container gives 0.5 vCPU: a cgroup CPU quota of half a core."""
    if not _cpu_quota_possible():
        pytest.skip("no writable cpu cgroup here: a CPU quota cannot be set")
    suite = hidden_suite(assignment)
    result = grade_submission(ROOT / "solutions" / assignment / f"{assignment}.ipynb", suite,
                              limits=Limits(**{**suite.limits.__dict__, "cpu_quota": 0.5}))
    failed = {t["test_id"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}
    assert not failed and result["score"] == suite.max_score


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_every_grade_is_its_idle_grade_on_a_slow_busy_machine_with_4_workers(assignment, tmp_path, busy_machine,
                                                                             slow_start, capsys):
    """One batch through the real command (``genai-course grade --workers 4``): the solution full
    marks, the release 0, each planted bug exactly its points lost, each valid variant full marks."""
    fixtures = importlib.import_module(f"tests.grading.fixtures.{assignment}.mutants")
    suite = hidden_suite(assignment)
    points = {t.name: t.points for t in suite.tests}
    source = extract(ROOT / "solutions" / assignment / f"{assignment}.ipynb").source
    expected: dict[str, tuple[float, set]] = {}
    paths = []
    cases = {name: (edits, losers) for name, (edits, losers) in fixtures.MUTANTS.items()}
    for name, edits in getattr(fixtures, "VALID_VARIANTS", {}).items():
        assert name not in cases, name
        cases[name] = (edits, set())
    for name, (edits, losers) in cases.items():
        text = source
        for old, new in edits:
            assert old in text, f"{name}: {old!r} not found in the solution"
            text = text.replace(old, new)
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(path)
        expected[name] = (suite.max_score - sum(points[t] for t in losers), set(losers))
    for stem, folder in (("solution", "solutions"), ("release", "homework")):
        path = tmp_path / f"{stem}.ipynb"
        path.write_bytes((ROOT / folder / assignment / f"{assignment}.ipynb").read_bytes())
        paths.append(path)
    expected["solution"] = (suite.max_score, set())
    expected["release"] = (0.0, set(points))
    code = cli.main(["grade", "--assignment", assignment, "--out", str(tmp_path / "out"), "--workers", "4",
                     *map(str, paths)])
    assert code == 0, capsys.readouterr().err
    rows = {r["stem"]: r for r in csv.DictReader(open(tmp_path / "out" / "summary.csv"))}
    assert set(rows) == set(expected)
    problems = []
    for name, (score, losers) in expected.items():
        result = json.loads((tmp_path / "out" / name / "results.json").read_text())
        lost = {t["test_id"]: t["output"][:400] for t in result["tests"] if t["score"] < t["max_score"]}
        if set(lost) != losers or abs(result["score"] - score) > 1e-6 and name != "release":
            problems.append(f"{name}: lost points in {sorted(lost)}, expected exactly {sorted(losers)}: {lost}")
        if result["status"] != "graded":
            problems.append(f"{name}: status {result['status']}: {result['output'][:300]}")
    assert not problems, "\n".join(problems)
