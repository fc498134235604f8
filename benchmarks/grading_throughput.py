"""Grading speed: time per HW0 submission and batch throughput with 1 vs 2 workers, side by side.

    .venv/bin/python benchmarks/grading_throughput.py [--n 8]

Grades N copies of the HW0 solution (full marks each) into temporary folders, first with one
worker, then with two, and prints seconds per submission and submissions per minute.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from genai_course.grading import hidden_suite
from genai_course.grading.batch import grade_many
from genai_course.grading.runner import course_root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="submissions per run")
    args = parser.parse_args()
    suite = hidden_suite("hw0")
    solution = course_root() / "solutions" / "hw0" / "hw0.ipynb"
    print(f"HW0 hidden suite: {len(suite.tests)} tests, {suite.max_score:g} points; {args.n} submissions per run")
    print(f"{'workers':>8} {'wall s':>8} {'s/submission':>13} {'submissions/min':>16} {'mean grading s':>15}")
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            subs = []
            for i in range(args.n):
                p = Path(tmp) / "subs" / f"s{i:02d}.ipynb"
                p.parent.mkdir(exist_ok=True)
                shutil.copy(solution, p)
                subs.append(p)
            start = time.perf_counter()
            rows = grade_many(suite, subs, Path(tmp) / "out", workers=workers)
            wall = time.perf_counter() - start
            assert all(r["score"] == suite.max_score for r in rows), rows
            mean = sum(r["execution_time"] for r in rows) / len(rows)
            print(f"{workers:>8} {wall:>8.1f} {wall / args.n:>13.1f} {60 * args.n / wall:>16.1f} {mean:>15.1f}")


if __name__ == "__main__":
    main()
