"""Run one assignment's suite (hidden or public) against one submission; produce Gradescope's
results.json structure.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .api import Checks, Fail, GradedTest, StudentError
from .assignment import Assignment, GraderError, course_root, suite_assignments
from .extract import Extraction, SubmissionError, extract
from .sandbox import Limits
from .student import GraderProblem, Student, _Starved

__all__ = ["Assignment", "GraderError", "Suite", "course_root", "grade_submission", "hidden_suite", "load_tests",
           "reference", "run_test"]
STARVED_ATTEMPTS = 3  # a test whose worker was starved of CPU is run again this many times in all


def assignments(root: Path | None = None) -> list[str]:
    return suite_assignments(root)


@dataclass
class Suite:
    assignment: str
    tests: list[GradedTest]
    probes_source: str
    limits: Limits = field(default_factory=Limits)

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)


def _import_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def suite_probes(test_file: str) -> ModuleType:
    """The ``probes.py`` beside a hidden suite's test file, imported once in the parent (every test file of the
    suite gets the same module): a suite builds the same stand-in models and inputs as the probes that run in the
    sandbox (``P = suite_probes(__file__)``)."""
    path = Path(test_file).resolve().with_name("probes.py")
    if not path.is_file():
        raise GraderError(f"{path} not found: suite_probes reads the probes.py next to the suite's test files")
    return _probes_module(path)


@lru_cache(maxsize=None)
def _probes_module(path: Path) -> ModuleType:
    return _import_file(path, f"genai_course_probes_{path.parent.name}")


def load_tests(files: list[Path], assignment: str, probes: Path | None, limits: Limits | None = None) -> Suite:
    tests: list[GradedTest] = []
    for f in files:
        mod = _import_file(f, f"genai_course_suite_{assignment}_{f.stem}")
        found = sorted((v.__graded__ for v in vars(mod).values() if hasattr(v, "__graded__")), key=lambda t: t.order)
        tests += found
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise GraderError(f"suite {assignment}: duplicate test names {sorted({n for n in names if names.count(n) > 1})}")
    probes_source = probes.read_text() if probes and probes.is_file() else ""
    return Suite(assignment, tests, probes_source, limits or Limits())


@lru_cache(maxsize=None)
def hidden_suite(assignment: str, root: str | None = None) -> Suite:
    return Assignment.get(assignment, root).hidden_suite()


@lru_cache(maxsize=None)
def reference(assignment: str):
    """The solution notebook's graded definitions, imported in this (trusted) process."""
    path = Assignment.get(assignment).master
    if not path.is_file():
        raise GraderError(f"reference solution {path} not found")
    ex = extract(path)
    module = ModuleType(f"reference_{assignment}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    exec(compile(ex.source, f"<reference {assignment}>", "exec"), module.__dict__)  # noqa: S102 - our own solution
    return module


def grading_secret(root: Path | None = None) -> bytes:
    """The course's grading secret: ``$GENAI_COURSE_GRADING_SECRET``, else ``autograder/.grading-secret``
    (made on first use, never committed). Hidden inputs are derived from it and the submission's
    content, so a table of inputs collected from one submission's feedback is useless for another."""
    env = os.environ.get("GENAI_COURSE_GRADING_SECRET")
    if env:
        return env.encode()
    folder = (root or course_root()) / "autograder"
    path = folder / ".grading-secret"
    try:
        return path.read_bytes()
    except OSError:
        pass
    if not folder.is_dir():
        return b""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
    except FileExistsError:
        pass
    except OSError:
        return b""
    return path.read_bytes()


def _test_result(test: GradedTest, score: float, output: str, status: str | None = None) -> dict:
    return {"name": test.title, "test_id": test.name, "score": round(score, 4), "max_score": test.points,
            "output": output, "visibility": test.visibility,
            "status": status or ("passed" if score >= test.points - 1e-9 else "failed")}


def _not_graded(test: GradedTest, why: str) -> dict:
    return _test_result(test, 0.0, f"NOT GRADED: {why}. This is a problem of the grader, not of your code; "
                                   "the course staff will grade this test again.", status="grader_error")


def _run_once(test: GradedTest, student: Student) -> dict:
    student.begin_test(test.name, test.timeout)
    try:
        outcome = test.func(student)
    except (Fail, StudentError) as e:
        return _test_result(test, 0.0, str(e))
    except GraderProblem:
        raise
    except Exception as e:  # noqa: BLE001 - a value the suite did not expect, or a suite bug
        where = traceback.extract_tb(e.__traceback__)[-1]
        return _test_result(test, 0.0, "your result could not be checked: the grader hit "
                            f"{type(e).__name__} ({str(e)[:200]}) at {Path(where.filename).name}:{where.lineno}. "
                            "Check the return type and shape against the docstring.")
    finally:
        student.end_test()
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


def run_test(test: GradedTest, student: Student) -> dict:
    """One test. Its limit counts the worker's CPU seconds; a test whose worker was starved of CPU by
    a busy machine runs again, and after STARVED_ATTEMPTS tries it is reported as not graded."""
    start, cpu = time.monotonic(), student.worker_cpu_seconds
    for attempt in range(STARVED_ATTEMPTS):
        try:
            result = _run_once(test, student)
            break
        except _Starved as e:
            if attempt == STARVED_ATTEMPTS - 1:
                result = _not_graded(test, str(e))
        except GraderProblem as e:
            result = _not_graded(test, str(e))
            break
    result["execution_time"] = round(time.monotonic() - start, 2)
    result["extra_data"] = {"worker_cpu_seconds": round(student.worker_cpu_seconds - cpu, 2), "attempts": attempt + 1}
    return result


def grade_submission(path: str | Path, suite: Suite, seed: int = 0, limits: Limits | None = None,
                     secret: bytes | None = None) -> dict:
    """Grade one submission file with ``suite``; never raises for anything the submission does.

    ``status`` is "graded", "invalid" (the file could not be read as a submission) or
    "grader_error" (some tests could not be run by the grader: see ``not_graded``)."""
    start = time.monotonic()
    path = Path(path)
    notes: list[str] = []
    try:
        extraction: Extraction | None = extract(path)
    except SubmissionError as e:
        extraction, notes = None, [f"Your submission could not be read: {e}"]
    tests: list[dict] = []
    status = "graded"
    extra: dict = {}
    if extraction is None:
        status = "invalid"
        tests = [_test_result(t, 0.0, "not graded: the submission could not be read") for t in suite.tests]
    else:
        notes += [f"Note: {p}" for p in extraction.problems]
        if secret is None:
            secret = grading_secret() if not suite.assignment.endswith("_public") else b""
        key = hashlib.sha256(secret + b"|" + hashlib.sha256(extraction.source.encode()).digest()).digest()
        with tempfile.TemporaryDirectory(prefix="genai-grade-") as tmp:
            work = Path(tmp)
            work.chmod(0o755)
            student = Student(extraction, work, suite.probes_source, seed=seed, limits=limits or suite.limits,
                              seed_key=key)
            try:
                startup_problem = None
                for _ in range(2):
                    try:
                        student.ensure_started()
                        startup_problem = None
                        break
                    except GraderProblem as e:
                        startup_problem = str(e)
                    except StudentError:
                        break  # each test reports the import error
                for test in suite.tests:
                    tests.append(_not_graded(test, startup_problem) if startup_problem else run_test(test, student))
            finally:
                student.close()
            if student.sandboxed is False:
                notes.append("WARNING: graded without the bubblewrap sandbox (bwrap unavailable).")
            extra = {"startup_seconds": round(student.startup_seconds, 2),
                     "import_cpu_seconds": round(student.import_cpu_seconds, 2),
                     "tests_cpu_seconds": round(student.worker_cpu_seconds, 2), "sandboxes": student.sandboxes}
    not_graded = [t["test_id"] for t in tests if t["status"] == "grader_error"]
    if not_graded:
        status = "grader_error"
        notes.append(f"NOT GRADED by the grader's fault: {', '.join(not_graded)} (the staff will regrade).")
    score = sum(t["score"] for t in tests)
    earned = sum(1 for t in tests if t["status"] == "passed")
    summary = f"{earned}/{len(tests)} tests passed, {score:g}/{suite.max_score:g} points."
    result = {"score": round(score, 4), "max_score": suite.max_score,
              "execution_time": round(time.monotonic() - start, 2),
              "output": "\n".join([summary, *notes]), "tests": tests, "visibility": "visible",
              "stdout_visibility": "hidden", "status": status, "assignment": suite.assignment, "extra_data": extra}
    if not_graded:
        result["not_graded"] = not_graded
    if extraction is not None and student.probe_errors:
        result["probe_errors"] = sorted(set(student.probe_errors))
    return result
