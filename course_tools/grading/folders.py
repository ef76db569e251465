"""nbgrader's step folders (submitted, autograded, feedback) and one student's output in them."""

import shutil
from pathlib import Path

from course_tools.grading.ids import safe_student_id
from course_tools.grading.status import NOT_GRADED


def folder(coursedir, step: str) -> Path:
    """An nbgrader step folder (``submitted_directory``, ...) as an absolute path."""
    return Path(coursedir.root) / getattr(coursedir, step)


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
