from __future__ import annotations

import pytest
import torch
from torch import nn

import genai_course as gc


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.head = nn.Linear(4, 7, bias=False)
        self.head.weight = self.emb.weight  # shared storage, as in weight-tied LMs
        self.norm = nn.LayerNorm(4)


def test_round_trip_with_meta_and_tied_weights(tmp_path):
    gc.seed_everything(0)
    m = Tied()
    path = gc.save_checkpoint(m, tmp_path / "sub" / "m.safetensors", meta={"val_loss": 1.5, "cfg": {"d": 4}})
    m2 = Tied()
    assert not torch.equal(m2.emb.weight, m.emb.weight)
    state, meta = gc.load_checkpoint(path, m2)
    assert meta == {"val_loss": 1.5, "cfg": {"d": 4}}
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v), k
    assert m2.head.weight.data_ptr() == m2.emb.weight.data_ptr(), "tying must survive loading"
    assert set(state) == set(m.state_dict())


def test_strict_load_reports_mismatch(tmp_path):
    path = gc.save_checkpoint({"w": torch.ones(2)}, tmp_path / "w.safetensors")
    with pytest.raises(RuntimeError, match="Missing key"):
        gc.load_checkpoint(path, nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        gc.load_checkpoint(tmp_path / "nope.safetensors")
