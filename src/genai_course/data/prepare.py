"""``genai-course data``: prepare and verify every dataset (idempotent)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from . import chat, minilm, mnist, sentiment, shakespeare, smollm
from .sources import DATASETS, SOURCES, DataError, artifact_path, data_dir, fetch_source, sha256_file, verify_file

PREPARERS: dict[str, Callable[[Path, Path], None]] = {
    "mnist": mnist.prepare,
    "shakespeare": shakespeare.prepare,
    "sentiment": sentiment.prepare,
    "smollm2": smollm.prepare,
    "chat_chatterbot": chat.prepare_chatterbot,
    "chat_chitchat": chat.prepare_chitchat,
    "humaneval": chat.prepare_humaneval,
    "minilm": minilm.prepare,
}


def prepare_dataset(name: str, force: bool = False) -> tuple[Path, str]:
    """Make sure ``name``'s artifact exists and matches the manifest. Returns (path, action)."""
    spec = DATASETS[name]
    out = artifact_path(name)
    if not force and out.is_file() and sha256_file(out) == spec.sha256:
        return out, "verified"
    archive = fetch_source(SOURCES[spec.source])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    PREPARERS[name](archive, tmp)
    tmp.chmod(0o644)  # some writers (safetensors) create files readable by the owner only
    os.replace(tmp, out)
    verify_file(out, spec.sha256, f"dataset {name!r} (freshly prepared)")
    return out, "prepared"


def prepare_all(names: list[str] | None = None, force: bool = False) -> dict[str, tuple[Path, str]]:
    names = names or list(DATASETS)
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise DataError(f"Unknown dataset(s) {unknown}; known: {sorted(DATASETS)}")
    results = {}
    for name in tqdm(names, desc=f"datasets -> {data_dir()}", unit="set"):
        results[name] = prepare_dataset(name, force=force)
    return results
