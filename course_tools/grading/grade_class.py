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
import subprocess
import sys
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
from course_tools.grading.claims import ClaimBoard, Outcome, engine_for, is_server_database
from course_tools.grading.config import Limits, grading_config
from course_tools.grading.discover import discover, lms_marked_late, snapshot_gradebook, stage
from course_tools.grading.execute import REPLAYS
from course_tools.grading.ids import safe_student_id
from course_tools.grading.kernel import install_kernelspec
from course_tools.grading.records import WorkerReport
from course_tools.grading.report import GradingResult, Progress
from course_tools.grading.sandbox import unavailable
from course_tools.grading.sheet import (
    SheetRow,
    assign_late_penalties,
    exercises,
    read_scores,
    read_sheet,
    write_sheet,
)
from course_tools.grading.status import NOT_GRADED, Status

DEFAULT_LEASE_SECONDS = 60.0  # a claim's lease, renewed every third of it while its worker lives
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
    run = GradingResult(assignment, sheet, [], exercises(db_url, course_id, assignment))
    run.sandboxed = limits.sandbox
    if is_server_database(db_url):  # workers claim and record through the shared gradebook
        lease = lease_seconds or DEFAULT_LEASE_SECONDS
        statuses = grade_with_claims(
            assignment, root, db_url, directories, limits, workers, students, lease, progress, run
        )
        students = None  # the claims hold every student's status
    else:
        statuses = grade_on_this_machine(
            assignment, root, directories, limits, workers, students, specs, api, progress, run
        )
    submitted = folder(coursedir, "submitted_directory")
    run.rows = sheet_rows(db_url, course_id, assignment, statuses, sheet, students, submitted)
    write_sheet(sheet, run.exercises, run.rows)
    run.seconds = round(time.perf_counter() - started, 1)
    return run


def grade_on_this_machine(
    assignment: str,
    root: Path,
    directories: dict[str, str],
    limits: Limits,
    workers: int | None,
    students: list[str] | None,
    specs,
    api,
    progress,
    run: GradingResult,
) -> dict[str, tuple[Status, str]]:
    """Check, then autograde in a process pool, recording here (sqlite); statuses by student."""
    coursedir = api.coursedir
    submitted = folder(coursedir, "submitted_directory")
    found = discover(assignment, submitted, coursedir.db_url, coursedir.course_id, students)
    submissions = {
        student: Submission(student, check(student, path, assignment, specs))
        for student, path in found.items()
    }
    to_run = [s for s in submissions.values() if s.gradable]
    workers = max(1, min(workers or os.cpu_count() or 1, len(to_run)))
    tracker = Progress(len(submissions), progress, limits.sandbox)
    progress(f"{assignment}: {len(submissions)} submission(s), {len(to_run)} to autograde")
    for submission in submissions.values():
        if not submission.gradable:
            tracker.done(submission.student, submission.status, "-", 0.0)
    if to_run:
        run.workers = workers
        tick = time.perf_counter()
        autograde_all(assignment, to_run, root, directories, limits, workers, api, tracker, run)
        run.phases["autograde"] = time.perf_counter() - tick
    remove_stale_output(assignment, submissions.values(), coursedir)
    return {s: (sub.status, sub.message) for s, sub in submissions.items()}


def grade_with_claims(
    assignment: str,
    root: Path,
    db_url: str,
    directories: dict[str, str],
    limits: Limits,
    workers: int | None,
    students: list[str] | None,
    lease_seconds: float,
    progress,
    run: GradingResult,
) -> dict[str, tuple[Status, str]]:
    """Queue the submissions (``students``, or all) and run claim workers here until all are done.

    The workers are the same command a cluster job starts (``grade --worker``); this process only
    watches the claims to print progress. Returns every student's status from the claims.
    """
    from course_tools.grading.claim_worker import ClaimWorker

    queue = ClaimWorker(assignment, root, db_url, limits, directories, lease_seconds)
    total = queue.enqueue()
    held = queue.board.requeue(assignment, students)  # grade again what was asked for
    workers = max(1, workers or os.cpu_count() or 1)
    run.workers = workers
    progress(f"{assignment}: {total} student(s) on the gradebook's work list, {workers} worker(s)")
    if held:
        progress(
            f"{assignment}: {len(held)} submission(s) held by other workers (lease running), "
            f"left to them, taken over if the lease runs out: {', '.join(held)}"
        )
    tracker = Progress(total, progress, limits.sandbox)
    command = worker_command(assignment, root, db_url, directories, limits, lease_seconds)
    environment = {**os.environ, "MCL_LOCAL_WORKERS": str(workers)}
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mcl-workers-") as tmp:
        logs = [Path(tmp) / f"worker-{i}.log" for i in range(workers)]
        processes = []
        for log in logs:
            with log.open("w") as handle:
                processes.append(
                    subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=handle, env=environment
                    )
                )
        seen: set[str] = set()
        while True:
            running = any(p.poll() is None for p in processes)
            for student, outcome in queue.board.outcomes(assignment).items():
                if outcome.status is not Status.PENDING and student not in seen:
                    seen.add(student)
                    run.execution_seconds[student] = outcome.seconds
                    if outcome.timing is not None:
                        run.timings[student] = outcome.timing
                    tracker.done(student, outcome.status, "", outcome.seconds)
            if not running:
                break
            time.sleep(1.0)
        for process, log in zip(processes, logs, strict=True):
            if process.returncode != 0:
                last = log.read_text().strip().splitlines()[-1:] or ["no output"]
                progress(f"a grading worker failed (exit {process.returncode}): {last[0]}")
    run.phases["autograde"] = time.perf_counter() - tick
    outcomes: dict[str, Outcome] = queue.board.outcomes(assignment)
    queue.board.engine.dispose()
    return {s: (o.status, o.message) for s, o in outcomes.items()}


def worker_command(
    assignment: str,
    root: Path,
    db_url: str,
    directories: dict[str, str],
    limits: Limits,
    lease_seconds: float,
) -> list[str]:
    """``python -m course_tools.grade ASSIGNMENT --worker ...`` with this run's settings."""
    command = [sys.executable, "-m", "course_tools.grade", assignment, "--worker"]
    command += ["--root", str(root), "--db-url", db_url, "--lease-seconds", str(lease_seconds)]
    if "source_directory" in directories:
        command += ["--source", directories["source_directory"]]
    if limits.cell_timeout is not None:
        command += ["--cell-timeout", str(limits.cell_timeout)]
    command += ["--notebook-timeout", str(limits.notebook_timeout)]
    command += ["--memory-mb", str(limits.memory_mb)]
    if not limits.sandbox:
        command.append("--no-sandbox")
    return command


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
                recorded = time.perf_counter() - tick
                recording += recorded
                run.execution_seconds[submission.student] = submission.report.seconds
                run.timings[submission.student] = submission.report.timing()
                run.timings[submission.student].recording = round(recorded, 2)
                score = score_text(coursedir, assignment, submission, run.exercises)
                tracker.done(
                    submission.student, submission.status, score, submission.report.seconds
                )
        run.phases["recording"] = recording


def take_report(submission: Submission, assignment: str, cell_timeout: int) -> None:
    """Statuses and notes of the submission's worker report (execution and feedback)."""
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


def record(submission: Submission, recorder, assignment: str, cell_timeout: int) -> None:
    """Write a worker's report into the real gradebook (nbgrader autograde, the run replayed)."""
    report = submission.report
    take_report(submission, assignment, cell_timeout)
    if not report.success:
        return
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
                remove_output(folder(coursedir, step) / submission.student / assignment)


def remove_output(path: Path) -> None:
    """Delete one student's output folder of one step (a link is never followed)."""
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def sheet_rows(
    db_url: str,
    course_id: str,
    assignment: str,
    statuses: dict[str, tuple[Status, str]],
    sheet: Path,
    only: list[str] | None,
    submitted: Path | None = None,
) -> list[SheetRow]:
    """Rows for every student: scores from the gradebook, status from this run (or the last sheet).

    ``statuses`` maps a student to the status and message this run gave; with ``only``, the
    other students keep those of the sheet already at ``sheet``. With ``submitted``, a submission
    the LMS marked late (``LATE_`` in its file name, noted by collect) says so in ``late``.
    A student of the gradebook (the roster) listed nowhere and without a submission folder is
    ``missing``: a roster imported after the last grading run shows in a rebuilt sheet.
    """
    from nbgrader.api import Gradebook

    wanted = exercises(db_url, course_id, assignment)
    previous = read_sheet(sheet) if only else {}
    statuses = dict(statuses)
    for student, row in previous.items():
        statuses.setdefault(student, (Status(row["status"]), row["message"]))
    rows = []
    with Gradebook(db_url, course_id) as gb:
        for student in (s.id for s in gb.students):
            handed_in = submitted is not None and os.path.lexists(submitted / student / assignment)
            if student not in statuses and not handed_in:
                statuses[student] = (Status.MISSING, "no submission")
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
    for row in rows if submitted else []:
        if not row.late and not safe_student_id(row.student):
            if lms_marked_late(submitted / row.student / assignment):
                row.late = "marked late by the LMS"
    return rows


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
