"""Execute a notebook top to bottom in full mode and collect the metrics it reports.

Shared by the per-homework quality scripts: ``execute(path)`` returns (seconds, metrics), where
metrics is what the notebook passed to ``gc.report_metrics``.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(notebook: Path, env: dict[str, str], timeout: int = 1800) -> float:
    """Execute ``notebook`` top to bottom in its own folder with ``env`` added to the environment (restored
    afterwards); return the wall time in seconds."""
    nb = nbformat.read(notebook, as_version=4)
    env_before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
        return time.perf_counter() - start
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(notebook: Path, name: str, quick: bool = False, timeout: int = 1800) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as metrics_dir:
        seconds = run(notebook, {"GENAI_COURSE_METRICS": metrics_dir, "GENAI_COURSE_QUICK": "1" if quick else "0"},
                      timeout)
        metrics = json.loads((Path(metrics_dir) / f"{name}.json").read_text())
    return seconds, metrics


def print_gates(rows: list[tuple[str, float, str, bool]]) -> bool:
    """Print (name, value, requirement, ok) rows as a table; return True when all pass."""
    width = max(len(r[0]) for r in rows)
    for name, value, requirement, ok in rows:
        print(f"{name:<{width}}  {value:>10.4f}  {requirement:<22} {'PASS' if ok else 'FAIL'}")
    return all(r[3] for r in rows)
