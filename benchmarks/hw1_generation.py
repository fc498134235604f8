"""HW1 generation benchmark: rolling-cache generation vs recomputing the whole sequence per token.

    .venv/bin/python benchmarks/hw1_generation.py [--tokens 2000]

Uses the solution notebook's model with the shipped checkpoint (random weights if it is missing:
speed does not depend on them). Prints tokens/s of both, their ratio at N generated tokens, that the
greedy outputs agree, and the cache's memory at several lengths (flat: window slots per layer).
Gate (issue #5): cached >= 5x faster than uncached at 2,000 tokens; memory flat in length.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

import genai_course as gc
from genai_course.grading import reference

CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "hw1_charlm.safetensors"


@torch.no_grad()
def uncached(ref, model, prompt, n):
    idx = prompt
    for _ in range(n):
        idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=2000)
    a = p.parse_args()
    torch.set_num_threads(2)
    ref = reference("hw1")
    cfg = ref.LMConfig()
    model = ref.TransformerLM(cfg).eval()
    if CHECKPOINT.exists():
        gc.load_checkpoint(CHECKPOINT, model)
    prompt = torch.zeros(1, 8, dtype=torch.long)
    t0 = time.perf_counter()
    fast = ref.generate(model, prompt, a.tokens, temperature=0)
    t_cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = uncached(ref, model, prompt, a.tokens)
    t_uncached = time.perf_counter() - t0
    print(f"generated {a.tokens} tokens, window {cfg.window}, {cfg.n_layers} layers, d_model {cfg.d_model}")
    print(f"{'rolling cache':<22} {a.tokens / t_cached:>9.0f} tokens/s  ({t_cached:.1f} s)")
    print(f"{'recompute every step':<22} {a.tokens / t_uncached:>9.0f} tokens/s  ({t_uncached:.1f} s)")
    speedup = t_uncached / t_cached
    print(f"speed-up {speedup:.1f}x; greedy outputs identical: {torch.equal(fast, slow)}")
    print("cache memory after N tokens (all layers, K+V+positions):")
    sizes = []
    for n in (500, 1000, 2000):
        cache = model.new_cache(1)
        with torch.no_grad():
            model(torch.zeros(1, n, dtype=torch.long), cache)
        nbytes = sum(c.k.numel() * c.k.element_size() + c.v.numel() * c.v.element_size() + c.pos.numel() * 8 for c in cache)
        sizes.append(nbytes)
        print(f"  N={n:>5}: {nbytes / 1024:8.1f} KiB")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    ok = speedup >= 5 and len(set(sizes)) == 1 and torch.equal(fast, slow)
    print("gate (>= 5x at 2,000 tokens, flat cache memory, identical outputs):", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
