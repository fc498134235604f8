"""``genai-course grade``: grade many submissions into DIR/<stem>/results.json and DIR/summary.csv.

Resumable (a submission whose results.json was made from the same file content is skipped unless
``force``; a grader error is always graded again), parallel (``workers`` threads, each driving its own
sandbox), and failure-contained: whatever one submission is called or holds, only its own row is
affected, and nothing is written outside ``out_dir``.
"""
from __future__ import annotations

import csv
import json
import os
import re
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .extract import display_name, submission_sha256
from .runner import Suite, grade_submission

SUMMARY_FIELDS = ["stem", "score", "max_score", "status", "execution_time", "review", "submission"]


def safe_stem(path: Path) -> str:
    """A folder name for a submission: letters, digits, '.', '_' and '-' only, starting with a letter,
    digit or '_' (never '..', never a spreadsheet formula), at most 80 characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.fsencode(path.stem).decode("ascii", "replace"))
    stem = stem.lstrip(".-")[:80]
    return stem or "submission"


def unique_stems(paths: list[Path]) -> dict[Path, str]:
    """Output folder name per submission: its safe stem, made unique with its parent folder's name."""
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem = safe_stem(p)
        if stem in used:
            stem = f"{safe_stem(p.parent)}_{stem}"
        base, i = stem, 2
        while stem in used:
            stem, i = f"{base}_{i}", i + 1
        used.add(stem)
        stems[p] = stem
    return stems


def _inside(out_dir: Path, stem: str) -> Path:
    target = (out_dir / stem).resolve()
    if target.parent != out_dir.resolve():
        raise ValueError(f"output folder {stem!r} is outside {out_dir}")
    return target


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _grader_failure(suite: Suite, exc: BaseException) -> dict:
    return {"score": 0.0, "max_score": suite.max_score, "execution_time": 0.0, "status": "grader_error",
            "output": f"The grader failed on this submission ({type(exc).__name__}: {exc}). "
                      "Nothing was scored; please contact the course staff.",
            "tests": [], "visibility": "visible", "assignment": suite.assignment,
            "grader_traceback": traceback.format_exc()[-4000:]}


def grade_many(suite: Suite, submissions: list[Path], out_dir: Path, workers: int = 1, force: bool = False,
               seed: int = 0, progress=None, limits=None) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = unique_stems(submissions)
    rows: dict[str, dict] = {}
    todo = []
    for sub, stem in stems.items():
        result_path = _inside(out_dir, stem) / "results.json"
        digest = submission_sha256(sub)
        if result_path.is_file() and not force:
            try:
                r = json.loads(result_path.read_text())
                if (isinstance(r, dict) and r.get("submission_sha256") == digest and digest is not None
                        and r.get("status") != "grader_error"):
                    rows[stem] = _row(stem, sub, r)
                    continue
            except (json.JSONDecodeError, OSError, UnicodeDecodeError):
                pass  # a half-written or damaged result: grade again
        todo.append((sub, stem, digest))

    def work(sub: Path, stem: str, digest: str | None) -> tuple[str, dict]:
        try:
            result = grade_submission(sub, suite, seed=seed, limits=limits)
        except Exception as e:  # noqa: BLE001 - contain grader bugs to this row
            result = _grader_failure(suite, e)
        result["submission"] = display_name(sub)
        result["submission_sha256"] = digest
        _write_json_atomic(_inside(out_dir, stem) / "results.json", result)
        return stem, _row(stem, sub, result)

    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(work, *job) for job in todo]
        for fut in as_completed(futures):
            stem, row = fut.result()
            with lock:
                rows[stem] = row
                _write_summary(out_dir, rows)
                if progress:
                    progress(row)
    _write_summary(out_dir, rows)
    return [rows[s] for s in sorted(rows)]


def _row(stem: str, sub: Path, result: dict) -> dict:
    return {"stem": stem, "score": result.get("score", 0.0), "max_score": result.get("max_score", 0.0),
            "status": str(result.get("status", "graded")), "execution_time": result.get("execution_time", 0.0),
            "review": " ".join(f"probe-error:{t}" for t in result.get("probe_errors", [])),
            "submission": os.fsencode(str(sub)).decode("utf-8", "backslashreplace")}


def _cell(value):
    """A CSV cell that no spreadsheet reads as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_summary(out_dir: Path, rows: dict[str, dict]) -> None:
    tmp = out_dir / f".summary.csv.tmp{threading.get_ident()}"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        w.writeheader()
        for stem in sorted(rows):
            w.writerow({k: _cell(v) for k, v in rows[stem].items()})
    os.replace(tmp, out_dir / "summary.csv")

