"""A small CNN that reads the digit, colour and position off a 3x32x32 captioned-digit image.

Given to HW4 (``solutions/hw4/hw4.ipynb``) to score whether a generated image matches its prompt: for a
prompt such as ``"a red 3 in the top left"`` it checks the digit (10 classes), the colour (4,
``genai_course.data.captions.COLOUR_NAMES``) and the quadrant (4, ``POSITIONS``) separately, and
``score`` reports each accuracy and the fraction of images with all three right. Shipped as
``data/checkpoints/hw4_judge.safetensors``, trained by ``benchmarks/hw4_train_judge.py`` on
``captioned_digits("train")`` with small shifts, noise and blur (generated images are imperfect).

Design: three conv blocks (conv3x3 -> BatchNorm -> ReLU, twice, then 2x2 max-pooling: 32 -> 16 -> 8 -> 4
pixels), flattened (so the position survives), a shared 128-unit layer and one linear head per attribute.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .classifier import conv_body

HEADS: dict[str, int] = {"digit": 10, "colour": 4, "position": 4}


class AttributeJudge(nn.Module):
    """``forward(x (B, 3, 32, 32) in [0, 1]) -> {"digit": (B, 10), "colour": (B, 4), "position": (B, 4)}``
    logits; ``predict(x)`` the argmax of each as ``(B,)`` int64; ``score(...)`` accuracies."""

    def __init__(self, width: int = 32, hidden: int = 128):
        super().__init__()
        self.config = {"width": width, "hidden": hidden}
        w = width
        self.body = conv_body(3, w)  # 32 -> 16 -> 8 -> 4, the body of HW2's DigitClassifier
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w * 16, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, k) for name, k in HEADS.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(f"AttributeJudge: expected (B, 3, 32, 32) images in [0, 1], got {tuple(x.shape)}")
        h = self.embed(self.body(x))
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
        """The predicted class of each attribute, ``(B,)`` int64 each, in eval mode (restored after)."""
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            parts = [self(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return {name: torch.cat([p[name].argmax(-1) for p in parts]).cpu() for name in HEADS}

    def score(self, images: torch.Tensor, digit, colour, position) -> dict[str, float]:
        """How often the images show what their prompts asked for: ``{"digit", "colour", "position"}``
        accuracies and ``"all"``, the fraction with all three right (floats in [0, 1]).

        ``digit``, ``colour``, ``position``: the prompts' attributes as ``(B,)`` integer indices (a tensor
        or a list), in the order of ``genai_course.data.captions``."""
        want = {"digit": digit, "colour": colour, "position": position}
        want = {k: torch.as_tensor(v).long().reshape(-1).cpu() for k, v in want.items()}
        if len(images) == 0 or any(len(v) != len(images) for v in want.values()):
            raise ValueError(f"AttributeJudge.score: need as many digit/colour/position labels as images "
                             f"({len(images)}), got {[len(v) for v in want.values()]}")
        pred = self.predict(images)
        right = {k: pred[k] == want[k] for k in HEADS}
        out = {k: right[k].float().mean().item() for k in HEADS}
        out["all"] = (right["digit"] & right["colour"] & right["position"]).float().mean().item()
        return out


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "data" / "checkpoints" / "hw4_judge.safetensors"


def load_attribute_judge(path: str | Path | None = None, device: str | torch.device = "cpu"
                         ) -> tuple[AttributeJudge, dict]:
    """The shipped judge (eval mode) and its metadata (accuracies on val and heldout, command)."""
    from ..checkpoint import load_checkpoint

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    _, meta = load_checkpoint(path)
    if meta.get("model", "AttributeJudge") != "AttributeJudge":
        raise ValueError(f"load_attribute_judge: {path} holds a {meta['model']}, not an AttributeJudge")
    model = AttributeJudge(**meta.get("config", {}))
    load_checkpoint(path, model)
    return model.to(device).eval(), meta
