"""Grading with a server (PostgreSQL) gradebook here: start claim workers, watch their claims.

The workers are the command a cluster job starts (``grade --worker``,
:mod:`course_tools.grading.claim_worker`); they record straight into the gradebook.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course_tools.grading.claim_worker import ClaimWorker
from course_tools.grading.claims import Outcome
from course_tools.grading.config import Limits
from course_tools.grading.report import GradingResult, Progress
from course_tools.grading.status import Status


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
    result: GradingResult,
) -> dict[str, tuple[Status, str]]:
    """Queue the submissions (``students``, or all) and run claim workers here until all are done.

    The workers are the same command a cluster job starts (``grade --worker``); this process only
    watches the claims to print progress. Returns every student's status from the claims.
    """
    queue = ClaimWorker(assignment, root, db_url, limits, directories, lease_seconds)
    total = queue.enqueue()
    held = queue.board.requeue(assignment, students)  # grade again what was asked for
    workers = max(1, workers or os.cpu_count() or 1)
    result.workers = workers
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
                    result.execution_seconds[student] = outcome.seconds
                    if outcome.timing is not None:
                        result.timings[student] = outcome.timing
                    tracker.done(student, outcome.status, "", outcome.seconds)
            if not running:
                break
            time.sleep(1.0)
        for process, log in zip(processes, logs, strict=True):
            if process.returncode != 0:
                last = log.read_text().strip().splitlines()[-1:] or ["no output"]
                progress(f"a grading worker failed (exit {process.returncode}): {last[0]}")
    result.phases["autograde"] = time.perf_counter() - tick
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
    """``python -m course_tools.grade ASSIGNMENT --worker ...`` with this grading's settings."""
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
