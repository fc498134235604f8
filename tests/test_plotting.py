from __future__ import annotations

import pytest
import torch

from genai_course import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 1, 28, 28), (3, 3, 8, 8)])
def test_image_grid_writes_png(tmp_path, shape):
    out = tmp_path / "grid.png"
    fig = plotting.image_grid(torch.rand(shape), titles=[str(i) for i in range(shape[0])], ncols=4, path=out)
    assert _is_png(out)
    assert sum(1 for ax in fig.axes if ax.images) == shape[0]


def test_image_grid_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"expected \(N, H, W\).*got \(2, 5, 8, 8\)"):
        plotting.image_grid(torch.rand(2, 5, 8, 8))


def test_loss_curves_and_attention_mask(tmp_path):
    fig = plotting.loss_curves({"train": [3, 2, 1], "val": [3.5, 2.5, 2]}, path=tmp_path / "loss.png")
    assert _is_png(tmp_path / "loss.png") and len(fig.axes[0].lines) == 2
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    fig = plotting.attention_mask(mask, weights=torch.softmax(torch.randn(6, 6), -1), path=tmp_path / "m.png")
    assert _is_png(tmp_path / "m.png")
    assert fig.axes[0].images[0].get_array().sum() == mask.sum()
    with pytest.raises(ValueError, match="expected a \\(T, T\\) mask"):
        plotting.attention_mask(torch.ones(2, 3, 3))


def test_step_curves_draw_every_step_and_validation_markers(tmp_path):
    from types import SimpleNamespace
    run = SimpleNamespace(steps=[1, 2, 3, 4], train_loss=[2.0, 1.5, 1.2, 1.0], val_steps=[2, 4],
                          val={"loss": [1.6, 1.1], "accuracy": [0.5, 0.7]})
    fig = plotting.step_curves({"a": run, "b": run}, title="t", note="quick mode", path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 6 and all(line.get_marker() == "o" for line in acc_ax.lines)
    assert plotting._smooth([1.0, 2.0, 3.0, 4.0], 1) == pytest.approx([1.5, 2.0, 3.0, 3.5])
