from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import genai_course as gc


def _draw():
    return random.random(), np.random.rand(), torch.rand(3)


def test_seed_everything_reproduces_all_generators():
    g1 = gc.seed_everything(123)
    a = _draw(), torch.rand(2, generator=g1)
    g2 = gc.seed_everything(123)
    b = _draw(), torch.rand(2, generator=g2)
    assert a[0][:2] == b[0][:2] and torch.equal(a[0][2], b[0][2]) and torch.equal(a[1], b[1])
    gc.seed_everything(124)
    assert not torch.equal(_draw()[2], a[0][2])


def test_get_device_defaults_and_override(monkeypatch):
    monkeypatch.delenv("GENAI_COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if expected == "cpu" and torch.backends.mps.is_available():
        expected = "mps"
    assert gc.get_device().type == expected
    monkeypatch.setenv("GENAI_COURSE_DEVICE", "cpu")
    assert gc.get_device() == torch.device("cpu")
    assert gc.get_device("meta") == torch.device("meta")


@pytest.mark.parametrize("value,quick", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_quick_mode(monkeypatch, value, quick):
    monkeypatch.setenv("GENAI_COURSE_QUICK", value)
    assert gc.quick_mode() is quick
    assert gc.pick(10, 1) == (1 if quick else 10)


def test_report_metrics_writes_json_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("GENAI_COURSE_METRICS", raising=False)
    assert gc.report_metrics("hwX", {"acc": 0.5}) is None
    monkeypatch.setenv("GENAI_COURSE_METRICS", str(tmp_path / "m"))
    path = gc.report_metrics("hwX", {"acc": 0.5, "seconds": 3})
    import json
    assert path == tmp_path / "m" / "hwX.json" and json.loads(path.read_text()) == {"acc": 0.5, "seconds": 3}
