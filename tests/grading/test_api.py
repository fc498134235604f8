"""Helpers hidden suites draw their inputs with (``genai_course.grading.api``)."""
from __future__ import annotations

import pytest
import torch

from genai_course.grading import randint


def test_randint_covers_both_ends_and_follows_the_generator():
    g = torch.Generator().manual_seed(0)
    draws = [randint(g, 3, 5) for _ in range(300)]
    assert set(draws) == {3, 4, 5} and all(type(d) is int for d in draws)
    assert [randint(torch.Generator().manual_seed(7), 0, 10**6) for _ in range(2)] == \
        [randint(torch.Generator().manual_seed(7), 0, 10**6)] * 2, "the same seed must give the same input"
    assert randint(g, 4, 4) == 4


def test_randint_names_an_empty_range():
    with pytest.raises(ValueError, match="empty range 5..4"):
        randint(torch.Generator(), 5, 4)


def test_suite_probes_imports_the_probes_beside_a_suite_once(tmp_path):
    from genai_course.grading import GraderError, suite_probes

    suite = tmp_path / "hwx"
    suite.mkdir()
    (suite / "probes.py").write_text("VALUE = 41 + 1\n")
    first = suite_probes(str(suite / "test_a.py"))
    assert first.VALUE == 42 and suite_probes(str(suite / "test_b.py")) is first
    with pytest.raises(GraderError, match="probes.py"):
        suite_probes(str(tmp_path / "test_c.py"))
