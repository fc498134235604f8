"""Every homework end to end, on a machine made slow and busy on purpose: the solution scores full
marks, the untouched release scores 0 with a clean report, and every planted bug
(tests/grading/fixtures/hwN/mutants.py) loses exactly the points of the tests that cover it while
every valid variant keeps full marks.

"Slow and busy" is a deterministic stand-in for a loaded laptop or a cold 0.5-vCPU container: every
sandbox sleeps 20 s before it starts (``GENAI_COURSE_SLOW_START``), and 2 x the core count of
busy-looping processes run the whole time. A grade must not depend on either."""
from __future__ import annotations

import contextlib
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
LOAD_SAMPLE = 2  # under load, grade 2 planted bugs / variants again, with the solution and the release: one round of 4 workers


@contextlib.contextmanager
def slow_busy_machine():
    """Every sandbox 20 s slower to start, and 2 x cores busy-looping processes."""
    old = os.environ.get(SLOW_START_ENV)
    os.environ[SLOW_START_ENV] = SLOW_START
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        yield len(procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if old is None:
            os.environ.pop(SLOW_START_ENV, None)
        else:
            os.environ[SLOW_START_ENV] = old


def test_every_master_notebook_has_a_hidden_suite_and_mutants():
    assert HOMEWORK == master_assignments() and "hw0" in HOMEWORK
    for a in HOMEWORK:
        assert importlib.import_module(f"tests.grading.fixtures.{a}.mutants").MUTANTS, f"{a} has no mutants"


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


def _grade_cli(assignment: str, paths: list, out, workers: int, capsys) -> dict[str, dict]:
    code = cli.main(["grade", "--assignment", assignment, "--out", str(out), "--workers", str(workers),
                     *map(str, paths)])
    assert code == 0, capsys.readouterr().err
    rows = {r["stem"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    return {stem: json.loads((out / stem / "results.json").read_text()) for stem in rows}


def under_load(names: list[str], k: int = LOAD_SAMPLE) -> list[str]:
    """The submissions graded a second time under load: the solution, the release, and ``k`` of the
    others spread evenly over their listed order, first and last included (so planted bugs of the first
    and the last part of a homework are among them, and the sample is the same on every run)."""
    fixed = [n for n in names if n in ("solution", "release")]
    others = [n for n in names if n not in fixed]
    if len(others) <= k:
        return fixed + others
    return fixed + [others[round(i * (len(others) - 1) / (k - 1))] for i in range(k)]


@pytest.mark.parametrize("assignment", HOMEWORK)
def test_every_grade_is_its_idle_grade_on_a_slow_busy_machine_with_4_workers(assignment, tmp_path, capsys):
    """The solution, the release, every planted bug and every valid variant, graded through the real
    command while the machine is idle (2 workers): the solution and each variant score full marks, the
    release 0 with a clean report (every test says NotImplementedError, no grader error, no dumped
    inputs), each planted bug loses points in exactly the tests that cover it. Then the solution, the
    release and an evenly spread sample of the others (``under_load``) are graded again, slowed and busy
    with 4 workers, and every score under load must be exactly the idle one. (Grading every planted bug
    twice cost more CI time than the course's five homework leave; the load-independence it checks is a
    property of the grader, which the sample exercises on every kind of test. The solution graded under
    load is also the check that a correct notebook scores full marks on a slow, busy machine.)"""
    fixtures = importlib.import_module(f"tests.grading.fixtures.{assignment}.mutants")
    suite = hidden_suite(assignment)
    source = extract(ROOT / "solutions" / assignment / f"{assignment}.ipynb").source
    losers: dict[str, set] = {}
    paths = []
    cases = {name: (edits, lost) for name, (edits, lost) in fixtures.MUTANTS.items()}
    for name, edits in getattr(fixtures, "VALID_VARIANTS", {}).items():
        assert name not in cases, name
        cases[name] = (edits, set())
    for name, (edits, lost) in cases.items():
        text = source
        for old, new in edits:
            assert old in text, f"{name}: {old!r} not found in the solution"
            text = text.replace(old, new)
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(path)
        losers[name] = set(lost)
    for stem, folder in (("solution", "solutions"), ("release", "homework")):
        path = tmp_path / f"{stem}.ipynb"
        path.write_bytes((ROOT / folder / assignment / f"{assignment}.ipynb").read_bytes())
        paths.append(path)
    losers["solution"] = set()
    losers["release"] = {t.name for t in suite.tests}
    idle = _grade_cli(assignment, paths, tmp_path / "idle", 2, capsys)
    loaded = under_load(list(losers))
    with slow_busy_machine():
        slow = _grade_cli(assignment, [p for p in paths if p.stem in loaded], tmp_path / "slow", 4, capsys)
    assert set(idle) == set(losers) and set(slow) == set(loaded)
    problems = []
    for name, lost_expected in losers.items():
        for label, result in (("idle", idle[name]), ("slow", slow.get(name))):
            if result is None:
                continue
            lost = {t["test_id"]: t["output"][:300] for t in result["tests"] if t["score"] < t["max_score"]}
            if set(lost) != lost_expected:
                problems.append(f"{name} ({label}): lost points in {sorted(lost)}, expected exactly "
                                f"{sorted(lost_expected)}: {lost}")
            if result["status"] != "graded":
                problems.append(f"{name} ({label}): status {result['status']}: {result['output'][:300]}")
        if name not in slow:
            continue
        by_test = lambda r: {t["test_id"]: t["score"] for t in r["tests"]}  # noqa: E731
        if by_test(slow[name]) != by_test(idle[name]):
            problems.append(f"{name}: scores under load {by_test(slow[name])} != idle {by_test(idle[name])}")
        if slow[name]["extra_data"].get("startup_seconds", 0) < float(SLOW_START):
            problems.append(f"{name}: the slow-start stand-in was not in effect")
    for t in idle["release"]["tests"]:  # the untouched release: a clean report, one line of advice per test
        if "NotImplementedError" not in t["output"] or "grader hit" in t["output"]:
            problems.append(f"release: the report of {t['name']!r} is not a clean NotImplementedError: {t['output'][:300]}")
    if max(len(t["output"]) for t in idle["release"]["tests"]) >= 3000:
        problems.append("release: a report of over 3,000 characters (hidden inputs must not be dumped)")
    assert not problems, "\n".join(problems)
