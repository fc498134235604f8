"""Checkpoints as safetensors: a state dict plus a small JSON-serialisable metadata dict."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_META_KEY = "genai_course_meta"


def save_checkpoint(model_or_state: torch.nn.Module | dict, path: str | Path, meta: dict | None = None) -> Path:
    """Save a module's (or a plain) state dict to ``path``; ``meta`` must be JSON-serialisable."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    # safetensors refuses shared storage (tied weights): store contiguous copies.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={_META_KEY: json.dumps(meta or {}, sort_keys=True)})
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    device: str | torch.device = "cpu", strict: bool = True) -> tuple[dict, dict]:
    """Load ``path``; if ``model`` is given, load the weights into it. Returns (state_dict, meta)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist")
    state = load_file(str(path), device=str(device))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get(_META_KEY, "{}"))
    if model is not None:
        model.load_state_dict(state, strict=strict)
    return state, meta
