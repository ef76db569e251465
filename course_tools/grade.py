"""``python -m course_tools.grade ASSIGNMENT``: the command line of :mod:`course_tools.grading`."""

import argparse
import sys
from pathlib import Path

from course_tools.course import REPO
from course_tools.grading import grade_class
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade, rebuild_sheet
from course_tools.grading.kernel import DEFAULT_MEMORY_MB
from course_tools.grading.report import grading_report


def main(argv: list[str] | None = None) -> None:
    """Command line: grade one assignment and print the summary."""
    parser = argparse.ArgumentParser(description=grade_class.__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--student", action="append", help="only this student (repeatable)")
    parser.add_argument("--workers", type=int, help="parallel autograde processes (default: cores)")
    parser.add_argument("--cell-timeout", type=int, help="seconds per cell (default: config)")
    parser.add_argument("--notebook-timeout", type=int, default=Limits.notebook_timeout)
    parser.add_argument(
        "--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="kernel memory cap"
    )
    parser.add_argument("--root", type=Path, default=REPO, help="course root (default: the repo)")
    parser.add_argument("--source", type=Path, help="nbgrader source folder (default: config)")
    parser.add_argument(
        "--sheet", type=Path, help="CSV path (default: build/grades/<assignment>.csv)"
    )
    parser.add_argument(
        "--sheet-only", action="store_true", help="only re-read scores into the sheet"
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code unsandboxed, with your rights (only where bubblewrap cannot run)",
    )
    args = parser.parse_args(argv)
    if args.sheet_only:
        run = rebuild_sheet(args.assignment, args.root, args.sheet)
    else:
        limits = Limits(
            args.cell_timeout, args.notebook_timeout, args.memory_mb, not args.no_sandbox
        )
        run = grade(
            args.assignment,
            args.root,
            args.source,
            limits,
            args.workers,
            args.student,
            args.sheet,
            progress=lambda line: print(line, flush=True),
        )
    print(grading_report(run), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
