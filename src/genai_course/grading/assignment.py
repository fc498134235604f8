"""``Assignment``: one homework's place in the course, the single source of truth that ``grade``,
``check``, ``release`` and the Gradescope bundle all read.

    a = Assignment.get("hw1")
    a.master            solutions/hw1/hw1.ipynb      (reference solution with nbgrader markers)
    a.released          homework/hw1/hw1.ipynb       (generated student notebook)
    a.suite_dir         autograder/hw1/              (hidden tests, probes.py, optional limits.json)
    a.public_checks     homework/hw1/public_checks.py, else solutions/hw1/public_checks.py
    a.limits            Limits() updated by autograder/hw1/limits.json
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .sandbox import Limits

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,40}")


class GraderError(Exception):
    """The grader itself cannot run (unknown assignment, missing suite): not the student's fault."""


def course_root() -> Path:
    """``$GENAI_COURSE_ROOT``, else the repository this package was installed from."""
    env = os.environ.get("GENAI_COURSE_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Assignment:
    name: str
    root: Path

    @classmethod
    def get(cls, name: str, root: Path | str | None = None) -> "Assignment":
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise GraderError(f"{name!r} is not an assignment name (like hw0)")
        return cls(name, Path(root).resolve() if root else course_root())

    # -- layout ------------------------------------------------------------------------------------
    @property
    def master(self) -> Path:
        return self.root / "solutions" / self.name / f"{self.name}.ipynb"

    @property
    def release_dir(self) -> Path:
        return self.root / "homework" / self.name

    @property
    def released(self) -> Path:
        return self.release_dir / f"{self.name}.ipynb"

    @property
    def suite_dir(self) -> Path:
        return self.root / "autograder" / self.name

    @property
    def suite_files(self) -> list[Path]:
        return sorted(self.suite_dir.glob("test_*.py"))

    @property
    def probes(self) -> Path:
        return self.suite_dir / "probes.py"

    def public_checks(self, beside: Path | None = None) -> Path:
        """The public checks: beside the student's notebook, else the released ones, else the master's."""
        candidates = ([beside.parent / "public_checks.py"] if beside is not None else []) + [
            self.release_dir / "public_checks.py", self.master.parent / "public_checks.py"]
        for c in candidates:
            if c.is_file():
                return c
        raise GraderError(f"no public checks found for {self.name} (expected public_checks.py beside the notebook)")

    @property
    def limits(self) -> Limits:
        path = self.suite_dir / "limits.json"
        if not path.is_file():
            return Limits()
        try:
            return Limits.from_json(path)
        except (ValueError, TypeError) as e:
            raise GraderError(f"bad limits for {self.name}: {e}") from None

    # -- suites --------------------------------------------------------------------------------------
    def hidden_suite(self):
        from .runner import load_tests

        if not self.suite_files:
            known = ", ".join(suite_assignments(self.root)) or "none"
            raise GraderError(f"unknown assignment {self.name!r} (no autograder/{self.name}/test_*.py); known: {known}")
        return load_tests(self.suite_files, self.name, self.probes, limits=self.limits)

    def public_suite(self, beside: Path | None = None):
        from .runner import load_tests

        checks = self.public_checks(beside)
        return load_tests([checks], f"{self.name}_public", checks.with_name("public_probes.py"), limits=Limits())


def master_assignments(root: Path | None = None) -> list[str]:
    """Assignments with a master notebook solutions/hwN/hwN.ipynb."""
    base = (root or course_root()) / "solutions"
    return sorted(p.name for p in base.iterdir() if NAME.fullmatch(p.name) and (p / f"{p.name}.ipynb").is_file()) \
        if base.is_dir() else []


def suite_assignments(root: Path | None = None) -> list[str]:
    """Assignments with a hidden suite autograder/hwN/test_*.py."""
    base = (root or course_root()) / "autograder"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and NAME.fullmatch(p.name) and list(p.glob("test_*.py"))) \
        if base.is_dir() else []
