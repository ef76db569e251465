"""Grade every submission of an assignment: autograde on all cores, feedback, CSV grade sheet, summary.

``python -m course_tools.grade 01_pruning`` reads ``build/submitted/<student>/01_pruning/`` (see
``course_tools.collect``), writes ``build/autograded/``, ``build/feedback/`` and
``build/grades/01_pruning.csv``, and prints a summary. How it works:

1. every submission is checked first (empty, invalid JSON, wrong or foreign notebook, ...); those
   are not autograded but get a status and a message in the sheet;
2. worker processes run nbgrader ``autograde`` on the rest, in parallel, each on its own copy of the
   gradebook, in a memory-capped kernel with per-cell and per-notebook time limits;
3. the main process replays each executed notebook through nbgrader ``autograde`` (same
   preprocessors, execution replaced by the recorded outputs) into the real gradebook, one
   student at a time: sqlite has a single writer and manual grades already there are kept;
4. the workers also write the HTML feedback (``generate_feedback`` on their gradebook copy, which
   holds the same scores; hidden tests and their tracebacks removed); the sheet is read back from
   the real gradebook.
"""

import argparse
import os
import shutil
import sqlite3
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
    NOT_GRADED,
    OK,
    NotebookCheck,
    check_submission,
    load_specs,
    overall_status,
)
from course_tools.grading.config import Limits, grading_config
from course_tools.grading.kernel import DEFAULT_MEMORY_MB, install_kernelspec
from course_tools.grading.sheet import (
    Exercise,
    SheetRow,
    exercises,
    read_scores,
    read_sheet,
    write_sheet,
)


@dataclass
class Submission:
    """One student's submission of the assignment and what grading made of it."""

    student: str
    checks: list[NotebookCheck]
    run: dict | None = None  # what the worker reported
    problems: list[str] = field(default_factory=list)  # statuses found while running
    notes: list[str] = field(default_factory=list)

    @property
    def gradable(self) -> bool:
        """True when at least one notebook passed the checks."""
        return any(c.status == OK for c in self.checks)

    @property
    def status(self) -> str:
        """The sheet's status column."""
        return overall_status(self.checks, self.problems)

    @property
    def message(self) -> str:
        """The sheet's message column: every problem and note, in a stable order."""
        parts = [c.message for c in self.checks if c.message]
        parts += [note for c in self.checks for note in c.notes]
        return "; ".join(parts + self.notes)


@dataclass
class GradeRun:
    """The outcome of grading one assignment."""

    assignment: str
    sheet: Path
    rows: list[SheetRow]
    exercises: list[Exercise]
    seconds: float = 0.0
    workers: int = 0
    execution_seconds: dict[str, float] = field(default_factory=dict)  # per executed student
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the run


def folder(coursedir, step: str) -> Path:
    """An nbgrader step folder (``submitted_directory``, ...) as an absolute path."""
    return Path(coursedir.root) / getattr(coursedir, step)


def few(items: list[str], limit: int = 3) -> str:
    """``a, b, c (+2 more)``."""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def run_problems(run: dict, cell_timeout: int) -> tuple[list[str], list[str]]:
    """Statuses and notes from a worker's report on one submission."""
    if not run["success"]:
        return ["autograde-error"], [f"autograde failed: {run['error']}"]
    statuses, notes = [], []
    for record in run["records"]:
        name = record["notebook"]
        if record["timed_out"]:
            statuses.append("timeout")
            cells = few(record["timed_out"])
            notes.append(
                f"{name}: cut off by the time limit ({cell_timeout} s per cell) in {cells}"
            )
        if record["stopped"]:
            statuses.append(record["stopped"])
            notes.append(f"{name}: {record['reason']}, later cells were not run")
        if record["memory"]:
            statuses.append("memory")
            notes.append(f"{name}: ran out of memory (kernel cap) in {few(record['memory'])}")
        if record["raised"]:
            notes.append(f"{name}: exception in {few(record['raised'])}")
        if record["truncated"]:
            notes.append(f"{name}: output truncated in {few(record['truncated'])}")
    return statuses, notes


def snapshot_gradebook(db_url: str, scratch: Path) -> str:
    """A consistent copy of an sqlite gradebook for the workers (other databases are shared)."""
    if not db_url.startswith("sqlite:///"):
        return db_url
    copy = scratch / "gradebook-snapshot.db"
    source = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{copy}"


def stage(submission: Submission, assignment: str, submitted: Path, staging: Path) -> None:
    """Copy the notebooks that passed the checks (and ``timestamp.txt``) into the staging folder."""
    target = staging / submission.student / assignment
    target.mkdir(parents=True, exist_ok=True)
    for check in submission.checks:
        if check.status == OK:
            shutil.copy(check.path, target / check.path.name)
    timestamp = submitted / submission.student / assignment / "timestamp.txt"
    if timestamp.exists():
        shutil.copy(timestamp, target / "timestamp.txt")


def roster(db_url: str, course_id: str) -> list[str]:
    """Student ids known to the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        return sorted(s.id for s in gb.students)


def discover(
    assignment: str, submitted: Path, db_url: str, course_id: str, only: list[str] | None
) -> dict[str, Path | None]:
    """``{student: submission folder}``; students of the gradebook without one map to None."""
    found = {p.parent.name: p for p in sorted(submitted.glob(f"*/{assignment}")) if p.is_dir()}
    if only:
        return {s: found.get(s) for s in only}
    for student in roster(db_url, course_id):
        found.setdefault(student, None)
    return dict(sorted(found.items()))


def grade(
    assignment: str,
    root: Path = REPO,
    source: Path | None = None,
    limits: Limits | None = None,
    workers: int | None = None,
    students: list[str] | None = None,
    sheet: Path | None = None,
    progress=print,
) -> GradeRun:
    """Grade ``assignment`` (all submissions, or only ``students``); returns the sheet's rows."""
    started = time.perf_counter()
    limits = limits or Limits()
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

    submissions = {}
    for student, path in discover(assignment, submitted, db_url, course_id, students).items():
        checks = (
            check_submission(path, assignment, specs)
            if path
            else [NotebookCheck("-", "missing", "no submission")]
        )
        submissions[student] = Submission(student, checks)
    to_run = [s for s in submissions.values() if s.gradable]
    workers = max(1, min(workers or os.cpu_count() or 1, len(to_run)))
    tracker = Progress(len(submissions), progress)
    progress(f"{assignment}: {len(submissions)} submission(s), {len(to_run)} to autograde")
    for submission in submissions.values():
        if not submission.gradable:
            tracker.done(submission, "-", 0.0)

    run = GradeRun(assignment, sheet, [], exercises(db_url, course_id, assignment))
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


@dataclass
class Progress:
    """Prints one line per finished submission: ``[ 3/14] alice  graded  2/3  4.1 s``."""

    total: int
    say: object
    count: int = 0

    def done(self, submission: Submission, score: str, seconds: float) -> None:
        """Report one more finished submission."""
        self.count += 1
        width = len(str(self.total))
        timing = f"{seconds:5.1f} s" if seconds else ""
        self.say(
            f"[{self.count:>{width}}/{self.total}] {submission.student:<16} "
            f"{submission.status:<16} {score:>9} {timing}"
        )


def autograde_all(
    assignment: str,
    to_run: list[Submission],
    root: Path,
    directories: dict[str, str],
    limits: Limits,
    workers: int,
    api,
    tracker: Progress,
    run: GradeRun,
) -> None:
    """Execute the submissions in worker processes; record each result in the gradebook here."""
    coursedir = api.coursedir
    submitted = folder(coursedir, "submitted_directory")
    cell_timeout = limits.cell_timeout or api.config.Execute.timeout
    with tempfile.TemporaryDirectory(prefix="mcl-grading-") as tmp:
        scratch = Path(tmp)
        staging, executed = scratch / "submitted", scratch / "executed"
        for submission in to_run:
            stage(submission, assignment, submitted, staging)
        install_kernelspec(scratch / "jupyter", limits.memory_mb)
        worker_dirs = {
            **directories,
            "submitted_directory": str(staging),
            "autograded_directory": str(executed),
            "feedback_directory": str(folder(coursedir, "feedback_directory")),
        }
        threads = max(1, (os.cpu_count() or 1) // workers)
        gradebook = snapshot_gradebook(coursedir.db_url, scratch)
        initargs = (str(scratch), gradebook, str(root), worker_dirs, limits, threads)
        replay_api = nbgrader_api(
            grading_config(
                root,
                limits,
                executed_directory=executed,
                submitted_directory=str(staging),
                **directories,
            )
        )
        recording = 0.0
        context = get_context("spawn")
        with ProcessPoolExecutor(workers, context, grade_worker.start, initargs) as pool:
            futures = {pool.submit(grade_worker.execute, assignment, s.student): s for s in to_run}
            for future in as_completed(futures):
                submission = futures[future]
                try:
                    submission.run = future.result()
                except Exception as exc:  # a worker process that died takes its task with it
                    submission.run = {"success": False, "error": repr(exc), "records": []}
                    submission.run["seconds"] = 0.0
                tick = time.perf_counter()
                record(submission, replay_api, assignment, cell_timeout)
                recording += time.perf_counter() - tick
                run.execution_seconds[submission.student] = submission.run["seconds"]
                score = score_text(coursedir, assignment, submission, run.exercises)
                tracker.done(submission, score, submission.run["seconds"])
        run.phases["recording"] = recording


def record(submission: Submission, replay_api, assignment: str, cell_timeout: int) -> None:
    """Write a worker's result into the real gradebook (nbgrader autograde, outputs replayed)."""
    problems, notes = run_problems(submission.run, cell_timeout)
    submission.problems, submission.notes = problems, notes
    if not submission.run["success"]:
        return
    if submission.run.get("feedback_error"):
        submission.notes.append(f"feedback failed: {submission.run['feedback_error']}")
    result = replay_api.autograde(assignment, submission.student, force=True, create=True)
    if not result["success"]:
        submission.problems.append("autograde-error")
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
    return f"{row.total:g}/{sum(e.max_score for e in wanted):g}"


def remove_stale_output(assignment: str, submissions, coursedir) -> None:
    """Delete autograded notebooks and feedback of students not graded this time (never stale)."""
    for submission in submissions:
        if submission.status in NOT_GRADED:
            for step in ("autograded_directory", "feedback_directory"):
                stale = folder(coursedir, step) / submission.student / assignment
                if stale.exists():
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
        statuses.setdefault(student, (row["status"], row["message"]))
    rows = []
    with Gradebook(db_url, course_id) as gb:
        for student, (status, message) in sorted(statuses.items()):
            if status in NOT_GRADED:
                rows.append(SheetRow(student, status, message))
                continue
            row = read_scores(gb, assignment, student, wanted)
            row.status, row.message = status, message
            rows.append(row)
    return rows


def summary(run: GradeRun) -> str:
    """What the instructor reads: counts by status, failures and why, pass rate of each exercise."""
    graded = [r for r in run.rows if r.graded]
    failed = [r for r in run.rows if not r.graded]
    counts: dict[str, int] = {}
    for row in run.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines = [
        f"{run.assignment}: {len(run.rows)} student(s), {len(graded)} graded, "
        f"{len(failed)} not graded ({run.seconds:.1f} s on {run.workers} worker(s))",
        "  status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
    ]
    for row in sorted(failed, key=lambda r: (r.status, r.student)):
        lines.append(f"  not graded  {row.student}: {row.status} - {row.message}")
    for row in sorted(graded, key=lambda r: r.student):
        if row.status != "graded":
            lines.append(f"  graded, but {row.student}: {row.status} - {row.message}")
    if graded:
        lines.append(f"  exercises ({len(graded)} graded submission(s)):")
        for exercise in run.exercises:
            if exercise.autograded:
                passed = sum(r.scores.get(exercise.column) == exercise.max_score for r in graded)
                lines.append(
                    f"    {exercise.column:<32} {exercise.max_score:>4g} pts  "
                    f"passed {passed}/{len(graded)} ({100 * passed / len(graded):.0f}%)"
                )
            else:
                waiting = sum(exercise.column in r.needs_manual for r in graded)
                lines.append(
                    f"    {exercise.column:<32} {exercise.max_score:>4g} pts  "
                    f"manual: {waiting} to grade in formgrader"
                )
    if run.execution_seconds:
        times = sorted(run.execution_seconds.values())
        lines.append(
            f"  autograde per submission: median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s"
        )
    if run.phases:
        lines.append("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.phases.items()))
    lines.append(f"  grade sheet: {run.sheet}")
    return "\n".join(lines)


def rebuild_sheet(assignment: str, root: Path = REPO, sheet: Path | None = None) -> GradeRun:
    """Re-read the scores (e.g. after manual grading) into the sheet, keeping each status."""
    config = grading_config(root)
    coursedir = nbgrader_api(config).coursedir
    sheet = sheet or Path(coursedir.root) / "build" / "grades" / f"{assignment}.csv"
    previous = read_sheet(sheet)
    rows = sheet_rows(coursedir.db_url, coursedir.course_id, assignment, {}, sheet, list(previous))
    wanted = exercises(coursedir.db_url, coursedir.course_id, assignment)
    write_sheet(sheet, wanted, rows)
    return GradeRun(assignment, sheet, rows, wanted)


def main(argv: list[str] | None = None) -> None:
    """Command line: grade one assignment and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    args = parser.parse_args(argv)
    if args.sheet_only:
        run = rebuild_sheet(args.assignment, args.root, args.sheet)
    else:
        limits = Limits(args.cell_timeout, args.notebook_timeout, args.memory_mb)
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
    print(summary(run), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
