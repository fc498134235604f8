"""``genai-course grade``: grade many submissions into DIR/<stem>/results.json and DIR/summary.csv.

Resumable (a submission whose results.json exists is skipped unless ``force``), parallel
(``workers`` threads, each driving its own sandboxed child), and failure-contained: whatever one
submission does, only its own row is affected.
"""
from __future__ import annotations

import csv
import json
import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .runner import Suite, grade_submission

SUMMARY_FIELDS = ["stem", "score", "max_score", "status", "execution_time", "submission"]


def unique_stems(paths: list[Path]) -> dict[Path, str]:
    """Output folder name per submission: the file stem, made unique with its parent folder's name."""
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem = p.stem
        if stem in used:
            stem = f"{p.parent.name}_{p.stem}"
        base, i = stem, 2
        while stem in used:
            stem, i = f"{base}_{i}", i + 1
        used.add(stem)
        stems[p] = stem
    return stems


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _grader_failure(suite: Suite, exc: BaseException) -> dict:
    return {"score": 0.0, "max_score": suite.max_score, "execution_time": 0.0, "status": "error",
            "output": f"The grader failed on this submission ({type(exc).__name__}: {exc}). "
                      "Nothing was scored; please contact the course staff.",
            "tests": [], "visibility": "visible", "assignment": suite.assignment,
            "grader_traceback": traceback.format_exc()[-4000:]}


def grade_many(suite: Suite, submissions: list[Path], out_dir: Path, workers: int = 1, force: bool = False,
               seed: int = 0, progress=None) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = unique_stems(submissions)
    rows: dict[str, dict] = {}
    todo = []
    for sub, stem in stems.items():
        result_path = out_dir / stem / "results.json"
        if result_path.is_file() and not force:
            try:
                r = json.loads(result_path.read_text())
                rows[stem] = _row(stem, sub, r, status=r.get("status", "graded"))
                continue
            except (json.JSONDecodeError, OSError):
                pass  # a half-written or damaged result: grade again
        todo.append((sub, stem))

    def work(sub: Path, stem: str) -> tuple[str, dict]:
        try:
            result = grade_submission(sub, suite, seed=seed)
        except Exception as e:  # noqa: BLE001 - contain grader bugs to this row
            result = _grader_failure(suite, e)
        _write_json_atomic(out_dir / stem / "results.json", result)
        return stem, _row(stem, sub, result, status=result.get("status", "graded"))

    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(work, sub, stem) for sub, stem in todo]
        for fut in as_completed(futures):
            stem, row = fut.result()
            with lock:
                rows[stem] = row
                _write_summary(out_dir, rows)
                if progress:
                    progress(row)
    _write_summary(out_dir, rows)
    return [rows[s] for s in sorted(rows)]


def _row(stem: str, sub: Path, result: dict, status: str) -> dict:
    return {"stem": stem, "score": result.get("score", 0.0), "max_score": result.get("max_score", 0.0),
            "status": status, "execution_time": result.get("execution_time", 0.0), "submission": str(sub)}


def _write_summary(out_dir: Path, rows: dict[str, dict]) -> None:
    tmp = out_dir / f".summary.csv.tmp{threading.get_ident()}"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        w.writeheader()
        for stem in sorted(rows):
            w.writerow(rows[stem])
    os.replace(tmp, out_dir / "summary.csv")

