"""Grading on this machine (sqlite gradebook): check, execute in a process pool, record here.

Worker processes (:mod:`course_tools.grading.worker`) run nbgrader ``autograde`` in parallel, each
on its own copy of the gradebook; this process records each worker's report into the real
gradebook, one student at a time (sqlite has a single writer; manual grades already there are kept).
"""

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from course_tools.course import nbgrader_api
from course_tools.grading import worker as grade_worker
from course_tools.grading.config import Limits, grading_config
from course_tools.grading.discover import discover, snapshot_gradebook, stage
from course_tools.grading.execute import REPLAYS
from course_tools.grading.folders import folder, remove_stale_output
from course_tools.grading.kernel import install_kernelspec
from course_tools.grading.records import WorkerReport
from course_tools.grading.report import GradingResult, Progress, score_text
from course_tools.grading.status import Status
from course_tools.grading.submission import Submission, check, take_report


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
    result: GradingResult,
) -> dict[str, tuple[Status, str]]:
    """Check, then autograde in a process pool, recording here (sqlite); statuses by student."""
    coursedir = api.coursedir
    submitted = folder(coursedir, "submitted_directory")
    found = discover(assignment, submitted, coursedir.db_url, coursedir.course_id, students)
    submissions = {
        student: Submission(student, check(student, path, assignment, specs))
        for student, path in found.items()
    }
    to_autograde = [s for s in submissions.values() if s.gradable]
    workers = max(1, min(workers or os.cpu_count() or 1, len(to_autograde)))
    tracker = Progress(len(submissions), progress, limits.sandbox)
    progress(f"{assignment}: {len(submissions)} submission(s), {len(to_autograde)} to autograde")
    for submission in submissions.values():
        if not submission.gradable:
            tracker.done(submission.student, submission.status, "-", 0.0)
    if to_autograde:
        result.workers = workers
        tick = time.perf_counter()
        autograde_all(
            assignment, to_autograde, root, directories, limits, workers, api, tracker, result
        )
        result.phases["autograde"] = time.perf_counter() - tick
    remove_stale_output(assignment, submissions.values(), coursedir)
    return {s: (sub.status, sub.message) for s, sub in submissions.items()}


def autograde_all(
    assignment: str,
    to_autograde: list[Submission],
    root: Path,
    directories: dict[str, str],
    limits: Limits,
    workers: int,
    api,
    tracker: Progress,
    result: GradingResult,
) -> None:
    """Execute the submissions in worker processes; record each report in the gradebook here."""
    coursedir = api.coursedir
    submitted = folder(coursedir, "submitted_directory")
    cell_timeout = limits.cell_timeout or api.config.Execute.timeout
    with tempfile.TemporaryDirectory(prefix="mcl-grading-") as tmp:
        scratch = Path(tmp)
        staging = scratch / "submitted"
        for submission in to_autograde:
            submission.notes += stage(
                submission.student, submission.checks, assignment, submitted, staging
            )
        install_kernelspec(scratch / "jupyter", limits.sandbox, limits.memory_mb)
        worker_dirs = {
            **directories,
            "submitted_directory": str(staging),
            "autograded_directory": str(scratch / "autograded"),
            "feedback_directory": str(folder(coursedir, "feedback_directory")),
        }
        threads = max(1, (os.cpu_count() or 1) // workers)
        gradebook = snapshot_gradebook(coursedir.db_url, scratch)
        initargs = (
            str(scratch),
            gradebook,
            str(root),
            worker_dirs,
            limits,
            threads,
            grade_worker.SANDBOX_UID,
        )
        recorder = nbgrader_api(
            grading_config(
                root, limits, replay=True, submitted_directory=str(staging), **directories
            )
        )
        recording = 0.0
        context = get_context("spawn")
        with ProcessPoolExecutor(workers, context, grade_worker.start, initargs) as pool:
            futures = {
                pool.submit(grade_worker.grade_submission, assignment, s.student): s
                for s in to_autograde
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
                result.execution_seconds[submission.student] = submission.report.seconds
                result.timings[submission.student] = submission.report.timing()
                result.timings[submission.student].recording = round(recorded, 2)
                score = score_text(
                    coursedir, assignment, submission.student, submission.status, result.exercises
                )
                tracker.done(
                    submission.student, submission.status, score, submission.report.seconds
                )
        result.phases["recording"] = recording


def record(submission: Submission, recorder, assignment: str, cell_timeout: int) -> None:
    """Write a worker's report into the real gradebook (nbgrader autograde, the execution replayed)."""
    report = submission.report
    take_report(submission, assignment, cell_timeout)
    if not report.success:
        return
    REPLAYS.clear()
    REPLAYS.update({(submission.student, e.notebook): e for e in report.executions})
    try:
        result = recorder.autograde(assignment, submission.student, force=True, create=True)
    finally:
        REPLAYS.clear()
    if not result["success"]:
        submission.problems.append(Status.AUTOGRADE_ERROR)
        submission.notes.append(f"recording the grades failed: {grade_worker.error_line(result)}")
