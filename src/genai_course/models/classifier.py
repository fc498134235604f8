"""A small MNIST digit classifier for 32x32 images in [-1, 1], and its 128-number feature vector.

Used by HW2 (``homework/hw2/hw2.ipynb``) and ``benchmarks/hw2_quality.py`` to judge generated and
inpainted digits: accuracy on inpainted test digits, and a Frechet distance in its feature space
(MNIST-FID, ``genai_course.metrics``). Shipped as ``data/checkpoints/hw2_digit_classifier.safetensors``,
trained by ``benchmarks/hw2_train_classifier.py``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """(conv3x3 -> BatchNorm -> ReLU) twice, then 2x2 max-pooling: half the resolution."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


def conv_body(channels: int, width: int) -> nn.Sequential:
    """Three ``conv_block``s of ``width``, 2 x and 4 x ``width`` channels: 32x32 images -> (4 width, 4, 4)."""
    return nn.Sequential(conv_block(channels, width), conv_block(width, 2 * width), conv_block(2 * width, 4 * width))


class DigitClassifier(nn.Module):
    """``forward(x (B, 1, 32, 32) in [-1, 1]) -> (B, 10)`` logits; ``features(x) -> (B, 128)``."""

    def __init__(self, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.config = {"width": width, "feature_dim": feature_dim}
        self.body = conv_body(1, width)
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * width * 16, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 32, 32):
            raise ValueError(f"DigitClassifier: expected (B, 1, 32, 32) images in [-1, 1], got {tuple(x.shape)}")
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "data" / "checkpoints" / "hw2_digit_classifier.safetensors"


def load_digit_classifier(path: str | Path | None = None, device: str | torch.device = "cpu") -> DigitClassifier:
    """The shipped classifier, in eval mode."""
    from ..checkpoint import load_checkpoint

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    _, meta = load_checkpoint(path)
    model = DigitClassifier(**meta.get("config", {}))
    load_checkpoint(path, model)
    return model.to(device).eval()
