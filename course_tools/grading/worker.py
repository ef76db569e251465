"""A worker process of a grading run: runs nbgrader autograde on its own copy of the gradebook.

Each worker has a private course root whose ``gradebook.db`` is a snapshot of the real one, so
workers never write to the same sqlite file. They leave the executed notebooks in a shared folder
(one sub-folder per student, each student handled by exactly one worker); the main process then
records the scores in the real gradebook, one student at a time.
"""

import os
import shutil
import time
import warnings
from pathlib import Path

from course_tools.course import nbgrader_api
from course_tools.grading.config import Limits, grading_config, use_grading_kernel

_API = None


def quiet() -> None:
    """Silence warnings nbgrader's stack prints on every submission (they are harmless)."""
    warnings.filterwarnings("ignore", message=".*not in session.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def start(
    scratch: str,
    gradebook: str,
    root: str,
    directories: dict[str, str],
    limits: Limits,
    threads: int,
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
    config = grading_config(Path(root), limits, **directories)
    config.CourseDirectory.db_url = gradebook
    _API = nbgrader_api(config)


def error_summary(result: dict) -> str:
    """The first error line of an nbgrader API result."""
    for text in (result.get("error") or "", result.get("log") or ""):
        lines = [line for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or "[ERROR]" in line]
        if errors:
            return errors[-1].strip()[:300]
    return "nbgrader autograde failed"


def execute(assignment: str, student: str) -> dict:
    """Autograde one student's staged submission and write its feedback; report what happened.

    The feedback comes from this worker's gradebook copy, which holds the same scores as the real
    one will: the same notebook, nbgrader's own ``SaveAutoGrades``, the manual grades of the
    snapshot. Writing it here keeps the main process's serial work down to recording the scores.
    """
    from course_tools.grading.execute import RUN_RECORDS

    RUN_RECORDS.clear()
    start_time = time.perf_counter()
    result = _API.autograde(assignment, student, force=True, create=True)
    seconds = round(time.perf_counter() - start_time, 2)
    report = {
        "student": student,
        "success": bool(result["success"]),
        "error": "" if result["success"] else error_summary(result),
        "records": list(RUN_RECORDS),
        "seconds": seconds,
        "feedback_error": "",
    }
    if result["success"]:
        feedback = _API.generate_feedback(assignment, student, force=True)
        if not feedback["success"]:
            report["feedback_error"] = error_summary(feedback)
    report["feedback_seconds"] = round(time.perf_counter() - start_time - seconds, 2)
    return report
