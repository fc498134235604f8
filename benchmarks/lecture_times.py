"""Execute lecture notebooks top to bottom and print their wall times in full and quick mode.

    .venv/bin/python benchmarks/lecture_times.py                      # every lecture, both modes
    .venv/bin/python benchmarks/lecture_times.py lectures/05-*.ipynb --modes quick

Budgets (issues "Lectures I/II"): full mode within the notebook's ``genai_course.budget_s``
metadata (180 s, or 300 s for one that trains something visible), quick mode
(``GENAI_COURSE_QUICK=1``) within 60 s, on 2 cores. Notebooks run one at a time, 2 torch threads;
the load average is printed with each row because a busy machine slows every figure."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

from run_notebook import run

ROOT = Path(__file__).resolve().parents[1]
QUICK_BUDGET_S = 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--modes", nargs="+", choices=("full", "quick"), default=["full", "quick"])
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "lectures").glob("*.ipynb"))
    print(f"{'lecture':<44} {'mode':<6} {'seconds':>8} {'budget':>7}  ok  load(1 min)")
    ok_all = True
    for path in paths:
        budget_full = nbformat.read(path, as_version=4).metadata.get("genai_course", {}).get("budget_s", 180)
        for mode in args.modes:
            seconds = run(path, {"GENAI_COURSE_QUICK": "1" if mode == "quick" else "0", "MPLBACKEND": "Agg"}, 900)
            budget = QUICK_BUDGET_S if mode == "quick" else budget_full
            ok = seconds <= budget
            ok_all &= ok
            print(f"{path.name:<44} {mode:<6} {seconds:8.1f} {budget:7d}  {'✓' if ok else '✗'}   "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
