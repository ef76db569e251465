"""``python -m course_tools.grade ASSIGNMENT``: the command line of :mod:`course_tools.grading`."""

import argparse
import sys
from pathlib import Path

from course_tools.course import REPO
from course_tools.grading import cgroups, grade_class
from course_tools.grading.claim_worker import DEFAULT_LEASE_SECONDS
from course_tools.grading.claims import DatabaseUnreachable, is_server_database
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade, rebuild_sheet
from course_tools.grading.kernel import DEFAULT_MEMORY_MB
from course_tools.grading.report import grading_report
from course_tools.grading.sandbox import unavailable


def main(argv: list[str] | None = None) -> None:
    """Command line: grade one assignment and print the report."""
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
        "--db-url",
        help="gradebook database (default: config; MCL_GRADEBOOK_URL); a PostgreSQL URL grades "
        "with claim-based workers that record straight into it",
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="PostgreSQL gradebook: be one grading worker (claim submissions until none is left)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=DEFAULT_LEASE_SECONDS,
        help="a worker's claim lapses this long after its worker stops renewing it",
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code unsandboxed, with your rights (only where bubblewrap cannot run)",
    )
    args = parser.parse_args(argv)
    limits = Limits(args.cell_timeout, args.notebook_timeout, args.memory_mb, not args.no_sandbox)
    try:
        if args.worker:
            sys.exit(work(args, limits))
        if args.sheet_only:
            result = rebuild_sheet(args.assignment, args.root, args.sheet, args.db_url)
        else:
            result = grade(
                args.assignment,
                args.root,
                args.source,
                limits,
                args.workers,
                args.student,
                args.sheet,
                progress=lambda line: print(line, flush=True),
                db_url=args.db_url,
                lease_seconds=args.lease_seconds,
            )
    except DatabaseUnreachable as exc:
        sys.exit(f"error: {exc}")
    print(grading_report(result), flush=True)
    sys.exit(0)


def work(args: argparse.Namespace, limits: Limits) -> int:
    """``--worker``: grade claims until none is left; the exit status of the worker."""
    from course_tools.grading.claim_worker import ClaimWorker
    from course_tools.grading.config import grading_config

    db_url = args.db_url or grading_config(args.root).CourseDirectory.db_url
    if not is_server_database(db_url):
        sys.exit("error: --worker needs a server gradebook (PostgreSQL db_url), not sqlite")
    if limits.sandbox and (reason := unavailable()):
        sys.exit(f"error: cannot sandbox student code: {reason}")
    if limits.sandbox and (why := cgroups.unusable_reason()):
        print(f"warning: {why}: {cgroups.PER_PROCESS_ONLY}", file=sys.stderr, flush=True)
    directories = {"source_directory": str(args.source.resolve())} if args.source else {}
    worker = ClaimWorker(
        args.assignment,
        args.root,
        db_url,
        limits,
        directories,
        args.lease_seconds,
        say=lambda line: print(line, flush=True),
    )
    done = worker.work()
    print(f"worker {done.name} done: graded {len(done.graded)} submission(s)", flush=True)
    return 0


if __name__ == "__main__":
    main()
