"""Grade every submission of an assignment: autograde on all cores, feedback, CSV grade sheet, report.

``python -m course_tools.grade 01_pruning`` reads ``build/submitted/<student>/01_pruning/`` (see
``course_tools.collect``), writes ``build/autograded/``, ``build/feedback/`` and
``build/grades/01_pruning.csv``, and prints a report. How it works:

1. every submission is checked first (unsafe id, symlink, empty, invalid JSON, bad metadata, wrong
   or foreign notebook, ...): those are not executed but get a status and a message in the sheet;
2. worker processes run nbgrader ``autograde`` on the rest, in parallel, each on its own copy of
   the gradebook, every kernel in a sandbox (:mod:`course_tools.grading.sandbox`) with per-cell and
   per-notebook time limits; test cells are scored from what the worker observed (verdicts);
3. the main process records each worker's report through nbgrader ``autograde`` into the real
   gradebook (execution replaced by the reported one), one student at a time: sqlite has a single
   writer and manual grades already there are kept;
4. the workers also write the HTML feedback; the sheet is read back from the real gradebook.

This module only chooses the way and writes the sheet: :mod:`~course_tools.grading.pool` grades on
this machine with sqlite (steps 1-4), :mod:`~course_tools.grading.claim_pool` with a server
gradebook (claim workers record for themselves), :mod:`~course_tools.grading.sheet_rows` reads the
rows back.
"""

import time
from pathlib import Path

from course_tools.course import REPO, nbgrader_api
from course_tools.grading import cgroups
from course_tools.grading import worker as grade_worker
from course_tools.grading.checks import load_specs
from course_tools.grading.claim_pool import grade_with_claims
from course_tools.grading.claim_worker import DEFAULT_LEASE_SECONDS
from course_tools.grading.claims import ClaimBoard, engine_for, is_server_database
from course_tools.grading.config import Limits, grading_config
from course_tools.grading.folders import folder
from course_tools.grading.pool import grade_on_this_machine
from course_tools.grading.report import GradingResult
from course_tools.grading.sandbox import unavailable
from course_tools.grading.sheet import assign_late_penalties, exercises, read_sheet, write_sheet
from course_tools.grading.sheet_rows import sheet_rows


def grade(
    assignment: str,
    root: Path = REPO,
    source: Path | None = None,
    limits: Limits | None = None,
    workers: int | None = None,
    students: list[str] | None = None,
    sheet: Path | None = None,
    progress=print,
    db_url: str | None = None,
    lease_seconds: float | None = None,
) -> GradingResult:
    """Grade ``assignment`` (all submissions, or only ``students``); returns the sheet's rows.

    ``db_url`` overrides the gradebook of the config; a server database (PostgreSQL) makes
    ``workers`` claim-based worker processes that record straight into it (no replay).
    """
    started = time.perf_counter()
    limits = limits or Limits()
    if limits.sandbox and (reason := unavailable()):
        raise SystemExit(
            f"Cannot sandbox student code: {reason}. Install it, or pass --no-sandbox to run "
            "students' code with your own rights (never for a real class)."
        )
    if limits.sandbox and (why := cgroups.unusable_reason()):
        progress(f"warning: {why}: {cgroups.PER_PROCESS_ONLY}")
    grade_worker.quiet()
    directories = {"source_directory": str(Path(source).resolve())} if source else {}
    if db_url:
        directories["db_url"] = db_url
    api = nbgrader_api(grading_config(root, limits, **directories))
    coursedir = api.coursedir
    db_url, course_id = coursedir.db_url, coursedir.course_id
    if is_server_database(db_url):
        engine_for(db_url).dispose()  # DatabaseUnreachable, with the reason, before any work
    specs = load_specs(db_url, course_id)
    if not any(s.assignment == assignment for s in specs):
        raise SystemExit(f"{assignment} is not in the gradebook {db_url}: release it first.")
    sheet = sheet or Path(coursedir.root) / "build" / "grades" / f"{assignment}.csv"
    result = GradingResult(assignment, sheet, [], exercises(db_url, course_id, assignment))
    result.sandboxed = limits.sandbox
    if is_server_database(db_url):  # workers claim and record through the shared gradebook
        lease = lease_seconds or DEFAULT_LEASE_SECONDS
        statuses = grade_with_claims(
            assignment,
            root,
            db_url,
            directories,
            limits,
            workers,
            students,
            lease,
            progress,
            result,
        )
        students = None  # the claims hold every student's status
    else:
        statuses = grade_on_this_machine(
            assignment, root, directories, limits, workers, students, specs, api, progress, result
        )
    submitted = folder(coursedir, "submitted_directory")
    result.rows = sheet_rows(db_url, course_id, assignment, statuses, sheet, students, submitted)
    write_sheet(sheet, result.exercises, result.rows)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def rebuild_sheet(
    assignment: str, root: Path = REPO, sheet: Path | None = None, db_url: str | None = None
) -> GradingResult:
    """Re-read the scores (e.g. after manual grading) into the sheet, keeping each status.

    With a server gradebook the statuses come from the workers' claims, so this writes the sheet
    after workers started elsewhere (a cluster job) have finished, or shows who is still pending.
    """
    config = grading_config(root, **({"db_url": db_url} if db_url else {}))
    coursedir = nbgrader_api(config).coursedir
    sheet = sheet or Path(coursedir.root) / "build" / "grades" / f"{assignment}.csv"
    assign_late_penalties(config, assignment)  # manual grades entered since count too
    if is_server_database(coursedir.db_url):  # the claims hold every status
        board = ClaimBoard(engine_for(coursedir.db_url))
        board.ensure_table()
        statuses = {s: (o.status, o.message) for s, o in board.outcomes(assignment).items()}
        only = None
    else:
        statuses, only = {}, list(read_sheet(sheet))
    submitted = folder(coursedir, "submitted_directory")
    rows = sheet_rows(
        coursedir.db_url, coursedir.course_id, assignment, statuses, sheet, only, submitted
    )
    wanted = exercises(coursedir.db_url, coursedir.course_id, assignment)
    write_sheet(sheet, wanted, rows)
    return GradingResult(assignment, sheet, rows, wanted)
