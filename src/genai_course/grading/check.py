"""``genai-course check NOTEBOOK``: the student's self-check. Runs the homework's PUBLIC checks
(``public_checks.py`` beside the notebook, or in solutions/hwN/) through the same sandboxed runner
and prints what passes, what fails and why."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .assignment import Assignment, GraderError
from .runner import grade_submission


def detect_assignment(notebook: Path) -> str:
    if notebook.suffix == ".ipynb":
        try:
            meta = json.loads(notebook.read_text()).get("metadata", {})
            name = meta.get("genai_course", {}).get("assignment")
            if isinstance(name, str) and re.fullmatch(r"hw\d+", name):
                return name
        except (OSError, ValueError, AttributeError):
            pass
    m = re.match(r"(hw\d+)", notebook.stem)
    if m:
        return m.group(1)
    raise GraderError(f"cannot tell which homework {notebook.name} is; pass --assignment hwN")


def public_checks_file(notebook: Path, assignment: str) -> Path:
    return Assignment.get(assignment).public_checks(beside=notebook)


def run_check(notebook: Path, assignment: str | None = None) -> tuple[dict, str]:
    a = Assignment.get(assignment or detect_assignment(notebook))
    result = grade_submission(notebook, a.public_suite(beside=notebook))
    return result, format_report(result, notebook, a.name)


def all_passed(result: dict) -> bool:
    return bool(result["tests"]) and all(t["score"] >= t["max_score"] - 1e-9 for t in result["tests"])


def format_report(result: dict, notebook: Path, assignment: str) -> str:
    lines = [f"Public checks of {assignment.upper()} on {notebook.name}", ""]
    for t in result["tests"]:
        ok = t["score"] >= t["max_score"] - 1e-9
        mark = "PASS" if ok else ("PART" if t["score"] > 0 else "FAIL")
        lines.append(f"  [{mark}] {t['name']}  ({t['score']:g}/{t['max_score']:g})")
        if not ok:
            lines += ["         " + line for line in t["output"].splitlines()[:12]]
    passed = sum(1 for t in result["tests"] if t["score"] >= t["max_score"] - 1e-9)
    lines += ["", *[n for n in result["output"].splitlines()[1:]],
              f"{passed} of {len(result['tests'])} public checks pass. The hidden suite that grades your "
              "work tests much more (other inputs, invariants, a short training run) -- passing these is a "
              "good sign, not a guarantee."]
    return "\n".join(lines)
