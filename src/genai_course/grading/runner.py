"""Run one assignment's suite (hidden or public) against one submission; produce Gradescope's
results.json structure.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .api import Checks, Fail, GradedTest, StudentError
from .extract import Extraction, SubmissionError, extract
from .sandbox import Limits
from .student import Student


class GraderError(Exception):
    """The grader itself cannot run (unknown assignment, missing suite): not the student's fault."""


def course_root() -> Path:
    """``$GENAI_COURSE_ROOT``, else the repository this package was installed from."""
    env = os.environ.get("GENAI_COURSE_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[3]


def assignments(root: Path | None = None) -> list[str]:
    base = (root or course_root()) / "autograder"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and list(p.glob("test_*.py"))) if base.is_dir() else []


@dataclass
class Suite:
    assignment: str
    tests: list[GradedTest]
    probes_source: str

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)


def _import_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_tests(files: list[Path], assignment: str, probes: Path | None) -> Suite:
    tests: list[GradedTest] = []
    for f in files:
        mod = _import_file(f, f"genai_course_suite_{assignment}_{f.stem}")
        found = sorted((v.__graded__ for v in vars(mod).values() if hasattr(v, "__graded__")), key=lambda t: t.order)
        tests += found
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise GraderError(f"suite {assignment}: duplicate test names {sorted({n for n in names if names.count(n) > 1})}")
    probes_source = probes.read_text() if probes and probes.is_file() else ""
    return Suite(assignment, tests, probes_source)


@lru_cache(maxsize=None)
def hidden_suite(assignment: str, root: str | None = None) -> Suite:
    base = Path(root) if root else course_root()
    folder = base / "autograder" / assignment
    files = sorted(folder.glob("test_*.py"))
    if not files:
        known = ", ".join(assignments(base)) or "none"
        raise GraderError(f"unknown assignment {assignment!r} (no autograder/{assignment}/test_*.py); known: {known}")
    return load_tests(files, assignment, folder / "probes.py")


@lru_cache(maxsize=None)
def reference(assignment: str):
    """The solution notebook's graded definitions, imported in this (trusted) process."""
    path = course_root() / "solutions" / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        raise GraderError(f"reference solution {path} not found")
    ex = extract(path)
    module = ModuleType(f"reference_{assignment}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    exec(compile(ex.source, f"<reference {assignment}>", "exec"), module.__dict__)  # noqa: S102 - our own solution
    return module


def _test_result(test: GradedTest, score: float, output: str) -> dict:
    return {"name": test.title, "test_id": test.name, "score": round(score, 4), "max_score": test.points,
            "output": output, "visibility": test.visibility,
            "status": "passed" if score >= test.points - 1e-9 else "failed"}


def run_test(test: GradedTest, student: Student) -> dict:
    student.test_name = test.name
    student.deadline = time.monotonic() + test.timeout
    try:
        outcome = test.func(student)
    except (Fail, StudentError) as e:
        return _test_result(test, 0.0, str(e))
    except Exception as e:  # noqa: BLE001 - a value the suite did not expect, or a suite bug
        where = traceback.extract_tb(e.__traceback__)[-1]
        return _test_result(test, 0.0, "your result could not be checked: the grader hit "
                            f"{type(e).__name__} ({str(e)[:200]}) at {Path(where.filename).name}:{where.lineno}. "
                            "Check the return type and shape against the docstring.")
    finally:
        student.deadline = float("inf")
    if outcome is None:
        return _test_result(test, test.points, "passed")
    if isinstance(outcome, Checks):
        return _test_result(test, test.points * outcome.fraction, outcome.message())
    if isinstance(outcome, tuple) and len(outcome) == 2:
        frac = min(1.0, max(0.0, float(outcome[0])))
        return _test_result(test, test.points * frac, str(outcome[1]))
    if isinstance(outcome, (int, float)) and not isinstance(outcome, bool):
        frac = min(1.0, max(0.0, float(outcome)))
        return _test_result(test, test.points * frac, "passed" if frac == 1.0 else f"partial credit: {frac:.0%}")
    raise GraderError(f"test {test.name} returned {type(outcome).__name__}; return None, a Checks, a fraction "
                      "or a (fraction, message) pair")


def grade_submission(path: str | Path, suite: Suite, seed: int = 0, limits: Limits | None = None) -> dict:
    """Grade one submission file with ``suite``; never raises for anything the submission does."""
    start = time.monotonic()
    path = Path(path)
    notes: list[str] = []
    try:
        extraction: Extraction | None = extract(path)
    except SubmissionError as e:
        extraction, notes = None, [f"Your submission could not be read: {e}"]
    tests: list[dict] = []
    status = "graded"
    if extraction is None:
        status = "invalid"
        tests = [_test_result(t, 0.0, "not graded: the submission could not be read") for t in suite.tests]
    else:
        notes += [f"Note: {p}" for p in extraction.problems]
        with tempfile.TemporaryDirectory(prefix="genai-grade-") as tmp:
            work = Path(tmp)
            work.chmod(0o755)
            student = Student(extraction, work, suite.probes_source, seed=seed, limits=limits)
            try:
                for test in suite.tests:
                    tests.append(run_test(test, student))
            finally:
                student.close()
            if student.sandboxed is False:
                notes.append("WARNING: graded without the bubblewrap sandbox (bwrap unavailable).")
    score = sum(t["score"] for t in tests)
    earned = sum(1 for t in tests if t["status"] == "passed")
    summary = f"{earned}/{len(tests)} tests passed, {score:g}/{suite.max_score:g} points."
    return {"score": round(score, 4), "max_score": suite.max_score, "execution_time": round(time.monotonic() - start, 2),
            "output": "\n".join([summary, *notes]), "tests": tests, "visibility": "visible",
            "stdout_visibility": "hidden", "status": status, "assignment": suite.assignment}
