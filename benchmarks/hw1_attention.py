"""HW1 attention benchmark: banded vs dense masked attention, forward+backward, time and peak memory.

    .venv/bin/python benchmarks/hw1_attention.py [--sizes 1024 4096 16384]

Each (T, method) runs in a fresh subprocess so peak RSS (ru_maxrss) is its own; memory is the peak
above the process's baseline after the inputs exist. B=1, H=1, head_dim=64, window=128, fp32, 2 threads.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

B, H, D, WINDOW = 1, 1, 64, 128


def run_case(T: int, method: str, reps: int) -> dict:
    import torch

    from genai_course.grading import reference

    torch.set_num_threads(2)
    ref = reference("hw1")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D, generator=g, requires_grad=True) for _ in range(3))
    if method == "dense":
        mask = ref.sliding_window_mask(T, WINDOW)
        fn = lambda: ref.scaled_dot_product_attention(q, k, v, mask)  # noqa: E731
    else:
        fn = lambda: ref.banded_attention(q, k, v, WINDOW)  # noqa: E731
    small = torch.randn(1, 1, 2 * WINDOW, D, requires_grad=True)
    ref.banded_attention(small, small, small, WINDOW).sum().backward()  # load kernels before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fwd, tot = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        t1 = time.perf_counter()
        out.sum().backward()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        tot.append(t2 - t0)
        q.grad = k.grad = v.grad = None
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"T": T, "method": method, "forward_s": min(fwd), "fwd_bwd_s": min(tot), "peak_mb": (peak - base) / 1024}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--case", nargs=2)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    if a.case:
        print(json.dumps(run_case(int(a.case[0]), a.case[1], a.reps)))
        return
    print(f"B={B} H={H} head_dim={D} window={WINDOW}, fp32, forward+backward, best of {a.reps}")
    print(f"{'T':>6} {'dense fwd+bwd s':>16} {'banded fwd+bwd s':>17} {'speed-up':>9} "
          f"{'dense MB':>9} {'banded MB':>10} {'memory ratio':>13}")
    ok = True
    for T in a.sizes:
        r = {}
        for method in ("dense", "banded"):
            out = subprocess.run([sys.executable, __file__, "--case", str(T), method, "--reps", str(a.reps)],
                                 capture_output=True, text=True, check=True)
            r[method] = json.loads(out.stdout.strip().splitlines()[-1])
        speed = r["dense"]["fwd_bwd_s"] / r["banded"]["fwd_bwd_s"]
        mem = r["dense"]["peak_mb"] / max(r["banded"]["peak_mb"], 1e-3)
        print(f"{T:>6} {r['dense']['fwd_bwd_s']:>16.3f} {r['banded']['fwd_bwd_s']:>17.3f} {speed:>8.1f}x "
              f"{r['dense']['peak_mb']:>9.0f} {r['banded']['peak_mb']:>10.0f} {mem:>12.1f}x")
        if T == 16384:
            ok = speed >= 20 and mem >= 10
    if 16384 in a.sizes:
        print("gate at T=16384 (>= 20x faster, >= 10x less memory):", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
