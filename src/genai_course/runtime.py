"""Seeding, device selection and the quick mode that CI uses to shorten training loops."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

QUICK_ENV = "GENAI_COURSE_QUICK"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a fresh ``torch.Generator`` seeded too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """CPU by default; CUDA, then Apple MPS, when present. ``prefer`` (or ``$GENAI_COURSE_DEVICE``)
    forces a device, e.g. ``"cpu"``."""
    prefer = prefer or os.environ.get("GENAI_COURSE_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); CPU for a model with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def quick_mode() -> bool:
    """True when ``$GENAI_COURSE_QUICK`` is set to 1/true/yes: notebooks then shorten training."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full, quick):
    """``quick`` in quick mode, else ``full`` -- e.g. ``epochs = pick(5, 1)``."""
    return quick if quick_mode() else full


METRICS_ENV = "GENAI_COURSE_METRICS"


def report_metrics(name: str, metrics: dict) -> Path | None:
    """Write ``metrics`` to ``$GENAI_COURSE_METRICS/<name>.json`` when that variable names a folder.

    Notebooks call this at the end so a benchmark script that executes them can read their
    quality figures; without the variable it does nothing and returns None.
    """
    folder = os.environ.get(METRICS_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return path
