"""A worker process of a grading run: executes submissions and writes their feedback.

Each worker has a private course root whose ``gradebook.db`` is a snapshot of the real one, so
workers never write to the same sqlite file. It runs nbgrader's ``autograde`` (execution guarded,
in the sandbox) and ``generate_feedback`` there, and returns a :class:`WorkerReport` holding every
verdict and the executed notebooks; the main process records the scores from that report alone.
"""

import os
import re
import shutil
import time
import warnings
from pathlib import Path

from course_tools.course import nbgrader_api
from course_tools.grading.config import Limits, grading_config, use_grading_kernel
from course_tools.grading.records import WorkerReport
from course_tools.grading.sandbox import (
    SPEC_VARIABLE,
    SandboxSpec,
    course_environment,
    package_dirs,
)

_API = None
SANDBOX_UID = 100_000  # first uid of grading kernels (root only): neither root nor the instructor
UID_RANGE = 50_000  # worker uids: base .. base + UID_RANGE, none of them a real user's


def quiet() -> None:
    """Silence warnings nbgrader's stack prints on every submission (they are harmless)."""
    warnings.filterwarnings("ignore", message=".*not in session.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def sandbox_spec(runtime: Path, limits: Limits, uid: int) -> SandboxSpec:
    """The sandbox of this worker's kernels: its connection folder, the limits, its own uid."""
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)  # each kernel gets a folder inside
    packages = package_dirs()
    return SandboxSpec(
        memory_mb=limits.memory_mb,
        uid=uid,
        readable=course_environment() + packages,
        writable=str(runtime),
        pythonpath=tuple(dict.fromkeys(str(Path(p).parent) for p in packages)),
    )


def start(
    scratch: str,
    gradebook: str,
    root: str,
    directories: dict[str, str],
    limits: Limits,
    threads: int,
    uid: int,
) -> None:
    """Pool initializer: a private course root with ``gradebook`` copied (or shared, if not sqlite)."""
    global _API
    quiet()
    own = Path(scratch) / f"worker-{os.getpid()}"
    own.mkdir(parents=True, exist_ok=True)
    if gradebook.startswith("sqlite:///"):
        shutil.copy(gradebook.removeprefix("sqlite:///"), own / "gradebook.db")
        gradebook = f"sqlite:///{own / 'gradebook.db'}"
    use_grading_kernel(Path(scratch) / "jupyter", threads)
    runtime = own / "runtime"
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    if limits.sandbox:  # a uid per worker: no two concurrent kernels share one
        own_uid = uid + os.getpid() % UID_RANGE
        os.environ[SPEC_VARIABLE] = sandbox_spec(runtime, limits, own_uid).to_env()
    config = grading_config(Path(root), limits, **directories)
    config.CourseDirectory.db_url = gradebook
    _API = nbgrader_api(config)


GENERIC = ("see the above traceback", "There was an error processing", "Removing failed")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:")


def error_line(result: dict) -> str:
    """The most telling error line of an nbgrader API result: the exception, not "see above"."""
    lines = [
        line.strip()
        for text in (result.get("error") or "", result.get("log") or "")
        for line in text.splitlines()
        if line.strip() and not any(g in line for g in GENERIC)
    ]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    errors = [line for line in lines if "Error" in line or "[ERROR]" in line]
    for found in (exceptions, errors):
        if found:
            return found[-1][:300]
    return "nbgrader autograde failed"


def grade_submission(assignment: str, student: str) -> WorkerReport:
    """Autograde one student's staged submission and write its feedback; report what happened.

    The feedback comes from this worker's gradebook copy, which holds the same scores as the real
    one will: the same verdicts, the manual grades of the snapshot. Writing it here keeps the main
    process's serial work down to recording the scores.
    """
    from course_tools.grading.execute import EXECUTIONS

    EXECUTIONS.clear()
    start_time = time.perf_counter()
    result = _API.autograde(assignment, student, force=True, create=True)
    report = WorkerReport(
        student=student,
        success=bool(result["success"]),
        error="" if result["success"] else error_line(result),
        executions=list(EXECUTIONS),
        seconds=round(time.perf_counter() - start_time, 2),
    )
    if report.success and any(e.flags for e in report.executions):
        # what flagged code printed may quote hidden tests: a person looks before the student does
        held = Path(_API.coursedir.root) / _API.coursedir.feedback_directory / student / assignment
        shutil.rmtree(held, ignore_errors=True)
        report.feedback_held = True
    elif report.success:
        feedback = _API.generate_feedback(assignment, student, force=True)
        if not feedback["success"]:
            report.feedback_error = error_line(feedback)
    report.feedback_seconds = round(time.perf_counter() - start_time - report.seconds, 2)
    return report
