"""Grade every submission of an assignment: autograde on all cores, feedback, CSV grade sheet, summary.

``python -m course_tools.grade 01_pruning`` reads ``build/submitted/<student>/01_pruning/`` (see
``course_tools.collect``), writes ``build/autograded/``, ``build/feedback/`` and
``build/grades/01_pruning.csv``, and prints a summary. How it works:

1. every submission is checked first (unsafe id, symlink, empty, invalid JSON, bad metadata, wrong
   or foreign notebook, ...): those are not executed but get a status and a message in the sheet;
2. worker processes run nbgrader ``autograde`` on the rest, in parallel, each on its own copy of
   the gradebook, every kernel in a sandbox (:mod:`course_tools.grading.sandbox`) with per-cell and
   per-notebook time limits; test cells are scored from what the worker observed (verdicts);
3. the main process records each worker's report through nbgrader ``autograde`` into the real
   gradebook (execution replaced by the reported run), one student at a time: sqlite has a single
   writer and manual grades already there are kept;
4. the workers also write the HTML feedback; the sheet is read back from the real gradebook.
"""

import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from course_tools.course import REPO, nbgrader_api
from course_tools.grading import worker as grade_worker
from course_tools.grading.checks import (
    NotebookCheck,
    check_submission,
    load_specs,
    overall_status,
)
from course_tools.grading.config import Limits, grading_config
from course_tools.grading.discover import discover, snapshot_gradebook, stage
from course_tools.grading.execute import REPLAYS
from course_tools.grading.ids import safe_student_id
from course_tools.grading.kernel import install_kernelspec
from course_tools.grading.records import WorkerReport
from course_tools.grading.report import GradingResult, Progress
from course_tools.grading.sandbox import unavailable
from course_tools.grading.sheet import (
    SheetRow,
    exercises,
    read_scores,
    read_sheet,
    write_sheet,
)
from course_tools.grading.status import NOT_GRADED, Status

SANDBOX_UID = 100_000  # first uid of grading kernels (root only): neither root nor the instructor


@dataclass
class Submission:
    """One student's submission of the assignment and what grading made of it."""

    student: str
    checks: list[NotebookCheck]
    report: WorkerReport | None = None
    problems: list[Status] = field(default_factory=list)  # statuses found while running
    notes: list[str] = field(default_factory=list)

    @property
    def gradable(self) -> bool:
        """True when at least one notebook passed the checks."""
        return any(c.status == Status.OK for c in self.checks)

    @property
    def status(self) -> Status:
        """The sheet's status column."""
        return overall_status(self.checks, self.problems)

    @property
    def message(self) -> str:
        """The sheet's message column: every problem and note, in a stable order."""
        parts = [c.message for c in self.checks if c.message]
        parts += [note for c in self.checks for note in c.notes]
        return "; ".join(parts + self.notes)


def folder(coursedir, step: str) -> Path:
    """An nbgrader step folder (``submitted_directory``, ...) as an absolute path."""
    return Path(coursedir.root) / getattr(coursedir, step)


def few(items: list[str], limit: int = 3) -> str:
    """``a, b, c (+2 more)``."""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def report_problems(report: WorkerReport, cell_timeout: int) -> tuple[list[Status], list[str]]:
    """Statuses and notes from a worker's report on one submission."""
    if not report.success:
        return [Status.AUTOGRADE_ERROR], [f"autograde failed: {report.error}"]
    statuses, notes = [], []
    for run in report.executions:
        name = run.notebook
        if run.flags:
            statuses.append(Status.FLAGGED)
            notes.append(f"{name}: review: {'; '.join(run.flags[:5])}")
        if run.timed_out:
            statuses.append(Status.TIMEOUT)
            cells = few(run.timed_out)
            notes.append(
                f"{name}: cut off by the time limit ({cell_timeout} s per cell) in {cells}"
            )
        if run.stopped:
            statuses.append(run.stopped)
            notes.append(f"{name}: {run.reason}, later cells were not run")
        if run.memory:
            statuses.append(Status.MEMORY)
            notes.append(f"{name}: ran out of memory (kernel cap) in {few(run.memory)}")
        if run.raised:
            notes.append(f"{name}: exception in {few(run.raised)}")
        if run.truncated:
            notes.append(f"{name}: output truncated in {few(run.truncated)}")
        if run.leftover_processes:
            notes.append(
                f"{name}: {run.leftover_processes} process(es) outlived the kernel: killed"
            )
    return statuses, notes


def check(student: str, path: Path | None, assignment: str, specs) -> list[NotebookCheck]:
    """The checks of one submission folder, an unsafe id or a missing folder included."""
    if reason := safe_student_id(student):
        return [NotebookCheck("-", Status.UNSAFE_ID, f"student id {student!r}: {reason}")]
    if path is None:
        return [NotebookCheck("-", Status.MISSING, "no submission")]
    if link := next((p for p in (path.parent, path) if p.is_symlink()), None):
        return [
            NotebookCheck("-", Status.UNSAFE_FILE, f"{link.name} is a symbolic link: not followed")
        ]
    return check_submission(path, assignment, specs)


def grade(
    assignment: str,
    root: Path = REPO,
    source: Path | None = None,
    limits: Limits | None = None,
    workers: int | None = None,
    students: list[str] | None = None,
    sheet: Path | None = None,
    progress=print,
) -> GradingResult:
    """Grade ``assignment`` (all submissions, or only ``students``); returns the sheet's rows."""
    started = time.perf_counter()
    limits = limits or Limits()
    if limits.sandbox and (reason := unavailable()):
        raise SystemExit(
            f"Cannot sandbox student code: {reason}. Install it, or pass --no-sandbox to run "
            "students' code with your own rights (never for a real class)."
        )
    grade_worker.quiet()
    directories = {"source_directory": str(Path(source).resolve())} if source else {}
    api = nbgrader_api(grading_config(root, limits, **directories))
    coursedir = api.coursedir
    db_url, course_id = coursedir.db_url, coursedir.course_id
    specs = load_specs(db_url, course_id)
    if not any(s.assignment == assignment for s in specs):
        raise SystemExit(f"{assignment} is not in the gradebook {db_url}: release it first.")
    submitted = folder(coursedir, "submitted_directory")
    sheet = sheet or Path(coursedir.root) / "build" / "grades" / f"{assignment}.csv"

    submissions = {
        student: Submission(student, check(student, path, assignment, specs))
        for student, path in discover(assignment, submitted, db_url, course_id, students).items()
    }
    to_run = [s for s in submissions.values() if s.gradable]
    workers = max(1, min(workers or os.cpu_count() or 1, len(to_run)))
    tracker = Progress(len(submissions), progress, limits.sandbox)
    progress(f"{assignment}: {len(submissions)} submission(s), {len(to_run)} to autograde")
    for submission in submissions.values():
        if not submission.gradable:
            tracker.done(submission.student, submission.status, "-", 0.0)

    run = GradingResult(assignment, sheet, [], exercises(db_url, course_id, assignment))
    run.sandboxed = limits.sandbox
    if to_run:
        run.workers = workers
        tick = time.perf_counter()
        autograde_all(assignment, to_run, root, directories, limits, workers, api, tracker, run)
        run.phases["autograde"] = time.perf_counter() - tick
    remove_stale_output(assignment, submissions.values(), coursedir)
    run.rows = sheet_rows(db_url, course_id, assignment, submissions, sheet, students)
    write_sheet(sheet, run.exercises, run.rows)
    run.seconds = round(time.perf_counter() - started, 1)
    return run


def autograde_all(
    assignment: str,
    to_run: list[Submission],
    root: Path,
    directories: dict[str, str],
    limits: Limits,
    workers: int,
    api,
    tracker: Progress,
    run: GradingResult,
) -> None:
    """Execute the submissions in worker processes; record each report in the gradebook here."""
    coursedir = api.coursedir
    submitted = folder(coursedir, "submitted_directory")
    cell_timeout = limits.cell_timeout or api.config.Execute.timeout
    with tempfile.TemporaryDirectory(prefix="mcl-grading-") as tmp:
        scratch = Path(tmp)
        staging = scratch / "submitted"
        for submission in to_run:
            submission.notes += stage(
                submission.student, submission.checks, assignment, submitted, staging
            )
        install_kernelspec(scratch / "jupyter", limits.sandbox, limits.memory_mb)
        worker_dirs = {
            **directories,
            "submitted_directory": str(staging),
            "autograded_directory": str(scratch / "executed"),
            "feedback_directory": str(folder(coursedir, "feedback_directory")),
        }
        threads = max(1, (os.cpu_count() or 1) // workers)
        gradebook = snapshot_gradebook(coursedir.db_url, scratch)
        initargs = (str(scratch), gradebook, str(root), worker_dirs, limits, threads, SANDBOX_UID)
        recorder = nbgrader_api(
            grading_config(
                root, limits, replay=True, submitted_directory=str(staging), **directories
            )
        )
        recording = 0.0
        context = get_context("spawn")
        with ProcessPoolExecutor(workers, context, grade_worker.start, initargs) as pool:
            futures = {
                pool.submit(grade_worker.grade_submission, assignment, s.student): s for s in to_run
            }
            for future in as_completed(futures):
                submission = futures[future]
                try:
                    submission.report = future.result()
                except Exception as exc:  # a worker process that died takes its task with it
                    submission.report = WorkerReport(submission.student, False, repr(exc))
                tick = time.perf_counter()
                record(submission, recorder, assignment, cell_timeout)
                recording += time.perf_counter() - tick
                run.execution_seconds[submission.student] = submission.report.seconds
                score = score_text(coursedir, assignment, submission, run.exercises)
                tracker.done(
                    submission.student, submission.status, score, submission.report.seconds
                )
        run.phases["recording"] = recording


def record(submission: Submission, recorder, assignment: str, cell_timeout: int) -> None:
    """Write a worker's report into the real gradebook (nbgrader autograde, the run replayed)."""
    report = submission.report
    problems, notes = report_problems(report, cell_timeout)
    submission.problems, submission.notes = problems, submission.notes + notes
    if not report.success:
        return
    if report.feedback_error:
        submission.notes.append(f"feedback failed: {report.feedback_error}")
    if report.feedback_held:
        submission.notes.append(
            "feedback held for review: after reviewing, release it with "
            f"`nbgrader generate_feedback {assignment} --student {submission.student}`"
        )
    REPLAYS.clear()
    REPLAYS.update({(submission.student, r.notebook): r for r in report.executions})
    try:
        result = recorder.autograde(assignment, submission.student, force=True, create=True)
    finally:
        REPLAYS.clear()
    if not result["success"]:
        submission.problems.append(Status.AUTOGRADE_ERROR)
        submission.notes.append(
            f"recording the grades failed: {grade_worker.error_summary(result)}"
        )


def score_text(coursedir, assignment: str, submission: Submission, wanted) -> str:
    """``2/3`` for the progress line, ``-`` when not graded."""
    from nbgrader.api import Gradebook

    if submission.status in NOT_GRADED:
        return "-"
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        row = read_scores(gb, assignment, submission.student, wanted)
    return f"{sum(s or 0.0 for s in row.scores.values()):g}/{sum(e.max_score for e in wanted):g}"


def remove_stale_output(assignment: str, submissions, coursedir) -> None:
    """Delete autograded notebooks and feedback of students not graded this time (never stale)."""
    for submission in submissions:
        if submission.status in NOT_GRADED and not safe_student_id(submission.student):
            for step in ("autograded_directory", "feedback_directory"):
                stale = folder(coursedir, step) / submission.student / assignment
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)


def sheet_rows(
    db_url: str,
    course_id: str,
    assignment: str,
    submissions: dict[str, Submission],
    sheet: Path,
    only: list[str] | None,
) -> list[SheetRow]:
    """Rows for every student: scores from the gradebook, status from this run (or the last sheet)."""
    from nbgrader.api import Gradebook

    wanted = exercises(db_url, course_id, assignment)
    previous = read_sheet(sheet) if only else {}
    statuses = {s: (sub.status, sub.message) for s, sub in submissions.items()}
    for student, row in previous.items():
        statuses.setdefault(student, (Status(row["status"]), row["message"]))
    rows = []
    with Gradebook(db_url, course_id) as gb:
        for student, (status, message) in sorted(statuses.items()):
            if status in NOT_GRADED:
                rows.append(SheetRow(student, status, message))
                continue
            row = read_scores(gb, assignment, student, wanted)
            row.status, row.message = status, message
            if impossible := [
                e.column for e in wanted if (row.scores[e.column] or 0) > e.max_score
            ]:
                row.status = Status.FLAGGED  # the gradebook was written by something else
                row.message = "; ".join(
                    filter(None, [message, f"above the maximum: {few(impossible)}"])
                )
            rows.append(row)
    return rows


def rebuild_sheet(assignment: str, root: Path = REPO, sheet: Path | None = None) -> GradingResult:
    """Re-read the scores (e.g. after manual grading) into the sheet, keeping each status."""
    config = grading_config(root)
    coursedir = nbgrader_api(config).coursedir
    sheet = sheet or Path(coursedir.root) / "build" / "grades" / f"{assignment}.csv"
    previous = read_sheet(sheet)
    rows = sheet_rows(coursedir.db_url, coursedir.course_id, assignment, {}, sheet, list(previous))
    wanted = exercises(coursedir.db_url, coursedir.course_id, assignment)
    write_sheet(sheet, wanted, rows)
    return GradingResult(assignment, sheet, rows, wanted)
