"""Fixtures of the grader's tests: the toy suite and quick sandbox limits."""
from __future__ import annotations

from pathlib import Path

import pytest

from genai_course.grading.runner import load_tests
from genai_course.grading.sandbox import Limits

FIXTURES = Path(__file__).parent / "fixtures"
TOY = FIXTURES / "toy"


@pytest.fixture(scope="session")
def toy_suite():
    return load_tests([TOY / "suite_toy.py"], "toy", TOY / "probes.py")


@pytest.fixture(scope="session")
def quick_limits():
    """Tighter limits so hostile cases end fast (import: 8 CPU seconds; wall guard 2x CPU + 10 s)."""
    return Limits(import_seconds=8, cpu_seconds=60, max_processes=48, wall_factor=2.0)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
