"""What a hidden suite is written with: ``@graded`` tests, ``Checks`` for partial credit, ``Fail``
and the ``expect_*`` comparisons. Everything here runs in the trusted parent process.

Values a test receives from the student (``student.call`` / ``student.probe``) are already decoded
into plain types (None, bool, int, float, str, torch.Tensor and lists/tuples/dicts of them), so the
comparisons below never run student code.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import torch


class Fail(Exception):
    """A check failed; the message is shown to the student."""


class StudentError(Exception):
    """The student's code raised, timed out or crashed; the message is shown to the student."""


class StudentTimeout(StudentError):
    pass


@dataclass
class GradedTest:
    func: Callable  # the test function, called with the Student proxy
    name: str  # function name, stable id of the test
    title: str  # first docstring line, shown to the student
    points: float  # maximum score
    timeout: float  # seconds of wall time for the whole test
    visibility: str  # Gradescope visibility: "visible", "after_published", "hidden"
    order: int  # definition order inside its file


def graded(points: float, timeout: float = 10.0, visibility: str = "visible", name: str | None = None):
    """Mark a test function ``f(student)`` as graded with ``points``.

    The test returns None (full points), a ``Checks`` (points * passed / total), a float fraction
    in [0, 1] or a ``(fraction, message)`` pair; it raises ``Fail`` (or a failed ``expect_*``) for zero.
    """
    if points <= 0:
        raise ValueError("graded: points must be positive")

    def mark(func):
        doc = (func.__doc__ or "").strip().splitlines()
        func.__graded__ = GradedTest(func=func, name=name or func.__name__, title=doc[0] if doc else func.__name__,
                                     points=float(points), timeout=float(timeout), visibility=visibility,
                                     order=func.__code__.co_firstlineno)
        return func

    return mark


class Checks:
    """Partial credit over several cases: ``with checks.case("T=5"): ...``; a case fails on ``Fail``
    or a student error, and the test earns points * passed / total."""

    def __init__(self) -> None:
        self.passed = 0
        self.total = 0
        self.failures: list[str] = []

    @contextmanager
    def case(self, label: str):
        self.total += 1
        try:
            yield
        except (Fail, StudentError) as e:
            self.failures.append(f"[{label}] {e}")
        else:
            self.passed += 1

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def message(self) -> str:
        if not self.failures:
            return f"all {self.total} cases passed"
        shown = self.failures[:5]
        more = f"\n  ... and {len(self.failures) - 5} more failing cases" if len(self.failures) > 5 else ""
        return f"{self.passed}/{self.total} cases passed:\n  " + "\n  ".join(shown) + more


# ---------------------------------------------------------------------------------------------
# Comparisons. `what` names the call being checked (e.g. "accuracy(logits, labels)"); `hint` is
# advice for the common bug. Messages describe shapes and a few values, never whole hidden inputs.

def randint(g: torch.Generator, lo: int, hi: int) -> int:
    """One integer drawn uniformly from ``lo..hi`` (both included) with the test's generator: hidden
    inputs such as sizes, ranks and lengths that differ per submission (``student.rng()``)."""
    if hi < lo:
        raise ValueError(f"randint: empty range {lo}..{hi}")
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        if x.numel() <= 8:
            return f"tensor {x.tolist()} (dtype {str(x.dtype).replace('torch.', '')})"
        return f"tensor of shape {tuple(x.shape)} (dtype {str(x.dtype).replace('torch.', '')})"
    text = repr(x)
    return text if len(text) <= 120 else text[:117] + "..."


def _fail(what: str, problem: str, hint: str | None) -> None:
    raise Fail(f"{what}: {problem}" + (f"\n    Hint: {hint}" if hint else ""))


def expect(condition: bool, what: str, problem: str, hint: str | None = None) -> None:
    """Fail with ``problem`` unless ``condition`` holds."""
    if not condition:
        _fail(what, problem, hint)


def expect_type(got: Any, types: type | tuple, what: str, hint: str | None = None) -> None:
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(got, types) or (isinstance(got, bool) and bool not in types):
        names = " or ".join(t.__name__ for t in types)
        _fail(what, f"expected a {names}, got {type(got).__name__} {_describe(got)}", hint)


def expect_shape(got: Any, shape: tuple, what: str, hint: str | None = None) -> None:
    expect_type(got, torch.Tensor, what, hint)
    if tuple(got.shape) != tuple(shape):
        _fail(what, f"expected shape {tuple(shape)}, got {tuple(got.shape)}", hint)


def expect_close(got: Any, expected: Any, what: str, atol: float = 1e-5, rtol: float = 1e-4,
                 hint: str | None = None) -> None:
    """Numbers or tensors equal within ``atol + rtol * |expected|``."""
    if isinstance(expected, torch.Tensor):
        expect_shape(got, tuple(expected.shape), what, hint)
        if not (got.is_floating_point() or got.is_complex()) and expected.is_floating_point():
            got = got.to(expected.dtype)
        if torch.isnan(got.float()).any() and not torch.isnan(expected.float()).any():
            _fail(what, f"result contains NaN ({int(torch.isnan(got.float()).sum())} entries)", hint)
        g, e = got.double(), expected.double()
        if not torch.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
            diff = (g - e).abs()
            diff = torch.where(torch.isnan(diff), torch.zeros_like(diff), diff)
            idx = int(diff.flatten().argmax())
            where = tuple(int(i) for i in torch.unravel_index(torch.tensor(idx), tuple(e.shape))) if e.ndim else ()
            _fail(what, f"values differ: max |got - expected| = {diff.max().item():.3g} at index {where} "
                        f"(got {g.flatten()[idx].item():.6g}, expected {e.flatten()[idx].item():.6g}; "
                        f"tolerance atol={atol:g}, rtol={rtol:g})", hint)
        return
    expect_type(got, (int, float), what, hint)
    if isinstance(got, bool):
        _fail(what, f"expected a number, got bool {got}", hint)
    e = float(expected)
    if math.isnan(got) or not math.isclose(float(got), e, abs_tol=atol, rel_tol=rtol):
        _fail(what, f"expected {e:.6g}, got {float(got):.6g}", hint)


def expect_equal(got: Any, expected: Any, what: str, hint: str | None = None) -> None:
    """Exact equality: tensors by shape, dtype and values; other values by type and ``==``."""
    if isinstance(expected, torch.Tensor):
        expect_shape(got, tuple(expected.shape), what, hint)
        if got.dtype != expected.dtype:
            _fail(what, f"expected dtype {expected.dtype}, got {got.dtype}", hint)
        if not torch.equal(got, expected):
            bad = (got != expected).nonzero()
            first = tuple(bad[0].tolist()) if len(bad) else ()
            _fail(what, f"{len(bad)} of {expected.numel()} entries differ; first at index {first} "
                        f"(got {got[first].item() if first else got.item()}, expected "
                        f"{expected[first].item() if first else expected.item()})", hint)
        return
    if type(got) is not type(expected) and not (isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple))):
        _fail(what, f"expected a {type(expected).__name__}, got {type(got).__name__} {_describe(got)}", hint)
    if _plain(got) != _plain(expected):
        _fail(what, f"expected {_describe(expected)}, got {_describe(got)}", hint)


def _plain(x: Any) -> Any:
    """Tuples compare equal to lists; tensors inside containers compare by value."""
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        return ("tensor", str(x.dtype), tuple(x.shape), x.tolist())
    return x


# ---------------------------------------------------------------------------------------------
# Naming a known bug. A check computes what the common buggy variants of a function return on
# the same input and passes them here; when the student's value matches one, the message says
# which bug it looks like instead of only "values differ".

def _matches(got: Any, candidate: Any, atol: float, rtol: float) -> bool:
    if isinstance(candidate, torch.Tensor):
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(candidate.shape):
            return False
        g, c = got.detach().double(), candidate.detach().double()
        return bool(torch.allclose(g, c, atol=atol, rtol=rtol, equal_nan=True))
    if isinstance(candidate, (list, tuple)):
        return (isinstance(got, (list, tuple)) and len(got) == len(candidate)
                and all(_matches(g, c, atol, rtol) for g, c in zip(got, candidate)))
    if isinstance(candidate, dict):
        return (isinstance(got, dict) and set(got) == set(candidate)
                and all(_matches(got[k], candidate[k], atol, rtol) for k in candidate))
    if isinstance(candidate, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(float(got), candidate, abs_tol=atol, rel_tol=rtol) or (math.isnan(got) and math.isnan(candidate))
    return type(got) is type(candidate) and got == candidate


def diagnose(got: Any, candidates: dict[str, Any], default: str | None = None, atol: float = 1e-5,
             rtol: float = 1e-4) -> str | None:
    """Name the known bug whose output ``got`` reproduces, for the ``hint=`` of an ``expect_*``.

    ``candidates`` maps a description of a bug ("scaled the scores by 1/d instead of 1/sqrt(d)") to
    what a function with that bug returns on the same input (a tensor, number or a list/tuple/dict of
    them). Returns "this looks like a known bug: <description>" for the first candidate ``got``
    matches within ``atol + rtol * |candidate|``, else ``default``::

        want = reference(q, k, v)
        got = student.call("attention", q, k, v)
        expect_close(got, want, "attention(q, k, v)",
                     hint=diagnose(got, {"scaled by 1/d instead of 1/sqrt(d)": buggy(q, k, v)}))
    """
    for description, candidate in candidates.items():
        try:
            if _matches(got, candidate, atol, rtol):
                return f"this looks like a known bug: {description}"
        except (TypeError, ValueError, RuntimeError):
            continue
    return default
