"""Grading sub-commands of ``genai-course``: release, grade, check, gradescope."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..cli import command
from .runner import GraderError, course_root


def _release_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("assignments", nargs="*", help="e.g. hw0 (default: every master notebook in solutions/)")
    p.add_argument("--check", action="store_true", help="only report whether homework/ is up to date (exit 1 if not)")


@command("release", "regenerate homework/hwN/ from solutions/hwN/ with nbgrader", _release_args)
def run_release(args: argparse.Namespace) -> int:
    from .assignment import master_assignments
    from .release import release, stale_files

    try:
        if args.check:
            stale = [f for a in (args.assignments or master_assignments()) for f in stale_files(a)]
            for f in stale:
                print(f"out of date: {f}")
            print("homework/ is up to date" if not stale else "run: genai-course release")
            return 1 if stale else 0
        for folder in release(args.assignments or None):
            print(f"released {folder}")
    except GraderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _submissions(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not p.is_symlink():
            out += sorted(q for q in p.iterdir() if q.suffix in (".ipynb", ".py") and not q.is_dir())
        else:
            out.append(p)  # a missing file is graded as unreadable, in its own row
    return out


def _grade_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--assignment", required=True, help="e.g. hw0")
    p.add_argument("--out", required=True, type=Path, help="output folder (DIR/<stem>/results.json, DIR/summary.csv)")
    p.add_argument("submissions", nargs="+", help="notebooks (.ipynb) or .py files, or folders of them")
    p.add_argument("--workers", type=int, default=1, help="submissions graded in parallel (default 1)")
    p.add_argument("--force", action="store_true", help="regrade submissions that already have results")
    p.add_argument("--seed", type=int, default=0, help="seed of the grader's random inputs")


@command("grade", "grade submissions with the hidden suite (Gradescope results.json + summary.csv)", _grade_args)
def run_grade(args: argparse.Namespace) -> int:
    from .batch import grade_many
    from .runner import hidden_suite

    try:
        suite = hidden_suite(args.assignment)
    except GraderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        probe = args.out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        print(f"error: cannot write to {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    subs = _submissions(args.submissions)
    print(f"grading {len(subs)} submission(s) of {args.assignment} with {args.workers} worker(s) -> {args.out}")

    def show(row):
        print(f"  {row['stem']:<30} {row['score']:>6g}/{row['max_score']:<6g} {row['status']:<8} {row['execution_time']:.1f} s",
              flush=True)

    rows = grade_many(suite, subs, args.out, workers=args.workers, force=args.force, seed=args.seed, progress=show)
    print(f"done: {len(rows)} row(s) in {args.out / 'summary.csv'}")
    review = [r for r in rows if r.get("review")]
    if review:
        print(f"note: {len(review)} submission(s) made a grader probe fail (scored 0 for that test; most often a "
              "wrong signature or return type, possibly a suite bug): see the 'review' column of summary.csv")
    failed = [r for r in rows if r["status"] == "grader_error"]
    if failed:
        print(f"error: the grader could not grade {len(failed)} submission(s) completely (status grader_error; "
              "run the same command again to regrade only those):", file=sys.stderr)
        for r in failed:
            print(f"  {r['stem']}", file=sys.stderr)
        return 3
    return 0


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", type=Path, help="your homework notebook, e.g. hw0.ipynb")
    p.add_argument("--assignment", help="hwN, if it cannot be told from the notebook")


def _find_notebook(path: Path) -> Path | None:
    """``path`` if it exists; else, for a bare name such as ``hw0.ipynb`` typed in the course root
    (where JupyterLab opens its terminals), ``homework/hw0/hw0.ipynb`` of this course."""
    if path.is_file():
        return path
    m = re.match(r"hw\d+", path.name)
    if m and path.parent == Path("."):
        for base in (Path.cwd(), course_root()):
            candidate = base / "homework" / m.group(0) / path.name
            if candidate.is_file():
                return candidate
    return None


@command("check", "run the public checks of a homework on your notebook and explain what fails "
                  "(exit 1 when a check fails)", _check_args)
def run_check_cmd(args: argparse.Namespace) -> int:
    from .check import all_passed, run_check

    notebook = _find_notebook(args.notebook)
    if notebook is None:
        print(f"error: {args.notebook} does not exist here ({Path.cwd()}); run the command in the "
              "notebook's folder (e.g. cd homework/hw0) or give its path", file=sys.stderr)
        return 2
    if notebook != args.notebook:
        print(f"checking {notebook}", file=sys.stderr)
    try:
        result, report = run_check(notebook, args.assignment)
    except GraderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report)
    if result.get("status") == "grader_error":
        return 3
    return 0 if all_passed(result) else 1


def _gradescope_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("assignment", help="e.g. hw0")
    p.add_argument("--out", type=Path, help="zip to write (default: <assignment>_autograder.zip)")


@command("gradescope", "build a Gradescope autograder bundle (setup.sh, run_autograder)", _gradescope_args)
def run_gradescope(args: argparse.Namespace) -> int:
    from .gradescope import build_bundle

    try:
        path = build_bundle(args.assignment, args.out or Path(f"{args.assignment}_autograder.zip"))
    except GraderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
