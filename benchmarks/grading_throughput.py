"""Grading speed, side by side in one run: time per correct submission of each homework, idle and
with every sandbox made slower to start (the slow-machine stand-in); sandbox start-up time; batch
throughput with 1, 2 and 4 workers.

    .venv/bin/python benchmarks/grading_throughput.py [--n 8] [--assignments hw0 hw1] [--slow 20]

Every graded copy must score full marks (the script stops otherwise). Run it on an otherwise idle
machine: the figures are wall-clock times.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from genai_course.grading import grade_submission, hidden_suite
from genai_course.grading.assignment import Assignment
from genai_course.grading.batch import grade_many
from genai_course.grading.sandbox import SLOW_START_ENV


def _one(assignment: str, repeats: int) -> list[dict]:
    suite = hidden_suite(assignment)
    out = []
    for _ in range(repeats):
        r = grade_submission(Assignment.get(assignment).master, suite)
        assert r["score"] == suite.max_score, (assignment, r["output"])
        out.append(r)
    return out


def _copies(tmp: Path, assignment: str, n: int) -> list[Path]:
    subs = []
    for i in range(n):
        p = tmp / "subs" / f"s{i:02d}.ipynb"
        p.parent.mkdir(exist_ok=True)
        shutil.copy(Assignment.get(assignment).master, p)
        subs.append(p)
    return subs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="submissions per batch run")
    parser.add_argument("--repeats", type=int, default=3, help="single gradings per homework and condition")
    parser.add_argument("--assignments", nargs="+", default=["hw0", "hw1"])
    parser.add_argument("--slow", type=float, default=20.0, help="seconds every sandbox sleeps before it starts")
    args = parser.parse_args()

    print("Per correct submission (median of repeats): wall s, sandbox start-up s, worker CPU s in tests")
    print(f"{'homework':>9} {'condition':>12} {'wall s':>8} {'start-up s':>11} {'tests CPU s':>12} {'score':>7}")
    for a in args.assignments:
        for label, slow in (("idle", None), (f"slowed {args.slow:g} s", args.slow)):
            if slow is not None:
                os.environ[SLOW_START_ENV] = str(slow)
            try:
                rs = _one(a, args.repeats)
            finally:
                os.environ.pop(SLOW_START_ENV, None)
            med = lambda key: statistics.median(r[key] if key == "execution_time" else r["extra_data"][key] for r in rs)  # noqa: E731
            print(f"{a:>9} {label:>12} {med('execution_time'):>8.1f} {med('startup_seconds'):>11.1f} "
                  f"{med('tests_cpu_seconds'):>12.1f} {rs[0]['score']:>7g}")

    print(f"\nBatch throughput, {args.n} copies of each solution")
    print(f"{'homework':>9} {'workers':>8} {'wall s':>8} {'s/submission':>13} {'submissions/min':>16}")
    for a in args.assignments:
        suite = hidden_suite(a)
        for workers in (1, 2, 4):
            with tempfile.TemporaryDirectory() as tmp:
                subs = _copies(Path(tmp), a, args.n)
                start = time.perf_counter()
                rows = grade_many(suite, subs, Path(tmp) / "out", workers=workers)
                wall = time.perf_counter() - start
                assert all(r["score"] == suite.max_score for r in rows), rows
                print(f"{a:>9} {workers:>8} {wall:>8.1f} {wall / args.n:>13.1f} {60 * args.n / wall:>16.1f}")


if __name__ == "__main__":
    main()
