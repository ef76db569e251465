"""The CSV grade sheet of an assignment: per student a status, a total and the points of each exercise.

Scores come from the gradebook (nbgrader's Gradebook API), so manual grades entered in formgrader
show up; students whose submission could not be graded get a status and empty score cells.
"""

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from course_tools.grading.status import Status

FIXED_COLUMNS = ("student_id", "status", "total", "max_total", "timestamp", "late", "late_penalty")
LAST_COLUMNS = ("needs_manual_grade", "message")


@dataclass(frozen=True)
class Exercise:
    """One graded cell: a test cell (autograded) or a manually graded answer."""

    notebook: str
    grade_id: str
    max_score: float
    autograded: bool
    column: str


@dataclass
class SheetRow:
    """One student's line of the sheet."""

    student: str
    status: Status
    message: str = ""
    scores: dict[str, float | None] = field(default_factory=dict)  # by column; None: no score
    needs_manual: list[str] = field(default_factory=list)
    timestamp: str = ""  # when it was submitted (UTC, from timestamp.txt), if known
    late: str = ""  # how late, against the due date; or the LMS's late mark
    late_penalty: float = 0.0  # deducted by nbgrader's LateSubmissionPlugin

    @property
    def graded(self) -> bool:
        """True when the submission was executed (its scores are meaningful)."""
        return Status(self.status).graded

    @property
    def total(self) -> float | None:
        """Sum of the exercise scores less the late penalty; None when not graded or held (flagged)."""
        if not Status(self.status).counts:
            return None
        return max(0.0, sum(s or 0.0 for s in self.scores.values()) - self.late_penalty)


def few(items: list[str], limit: int = 3) -> str:
    """``a, b, c (+2 more)``."""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def exercises(db_url: str, course_id: str, assignment: str) -> list[Exercise]:
    """The graded cells of ``assignment`` in notebook order."""
    from nbgrader.api import Gradebook

    found = []
    with Gradebook(db_url, course_id) as gb:
        notebooks = gb.find_assignment(assignment).notebooks
        for notebook in sorted(notebooks, key=lambda n: n.name):
            grade_cells = {c.name: c for c in notebook.grade_cells}
            answers = {c.name for c in notebook.solution_cells}
            for source in notebook.source_cells:
                cell = grade_cells.get(source.name)
                if cell is None:
                    continue
                column = cell.name if len(notebooks) == 1 else f"{notebook.name}:{cell.name}"
                autograded = cell.cell_type == "code" and cell.name not in answers
                found.append(Exercise(notebook.name, cell.name, cell.max_score, autograded, column))
    return found


def read_scores(gb, assignment: str, student: str, wanted: list[Exercise]) -> SheetRow:
    """A student's scores from an open Gradebook (status left for the caller)."""
    from nbgrader.api import MissingEntry

    row = SheetRow(student, Status.GRADED)
    for exercise in wanted:
        try:
            grade = gb.find_grade(exercise.grade_id, exercise.notebook, assignment, student)
        except MissingEntry:
            row.scores[exercise.column] = None
            continue
        if grade.manual_score is None and grade.auto_score is None:
            row.scores[exercise.column] = None
        else:
            row.scores[exercise.column] = float(grade.score)
        if grade.needs_manual_grade and grade.manual_score is None:
            row.needs_manual.append(exercise.column)
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return row
    if submission.timestamp is not None:
        row.timestamp = submission.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC")
    if seconds := submission.total_seconds_late:
        row.late = f"{late_text(seconds)} late"
    row.late_penalty = sum(nb.late_submission_penalty or 0.0 for nb in submission.notebooks)
    return row


_LATE_PENALTY_LOG = logging.getLogger("course_tools.late_penalties")  # nbgrader logs each late one
_LATE_PENALTY_LOG.addHandler(logging.NullHandler())  # once, not a handler more per sheet
_LATE_PENALTY_LOG.propagate = False


def assign_late_penalties(config, assignment: str) -> None:
    """Apply the course's late policy to every submission of ``assignment`` as scored now.

    nbgrader's ``AssignLatePenalties`` runs when it autogrades, so points given later in Formgrader
    would escape the penalty (a "zero" policy would leave a late submission its manual points).
    This runs that same step, with the course's ``LateSubmissionPlugin``, on the current scores.
    """
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties

    step = AssignLatePenalties(config=config, log=_LATE_PENALTY_LOG)
    if not step.enabled:
        return
    directory = config.CourseDirectory
    with Gradebook(directory.db_url, directory.course_id) as gb:
        notebooks = [
            (notebook.name, submission.student_id)
            for submission in gb.assignment_submissions(assignment)
            for notebook in submission.notebooks
        ]
    for notebook, student in notebooks:
        resources = {
            "nbgrader": {
                "notebook": notebook,
                "assignment": assignment,
                "student": student,
                "db_url": directory.db_url,
            }
        }
        step.preprocess(nbformat.v4.new_notebook(), resources)


def late_text(seconds: float) -> str:
    """``2 d 3 h``, ``1 h 5 min``, ``12 min``, ``30 s``."""
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if days:
        return f"{days} d {hours - 24 * days} h"
    if hours:
        return f"{hours} h {minutes - 60 * hours} min"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


def _number(value: float | None) -> str:
    """A score as the sheet writes it: ``2``, ``0.5`` or empty."""
    return "" if value is None else f"{value:g}"


def write_sheet(path: Path, wanted: list[Exercise], rows: list[SheetRow]) -> Path:
    """Write the sheet, one row per student sorted by id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    max_total = sum(e.max_score for e in wanted)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FIXED_COLUMNS, *(e.column for e in wanted), *LAST_COLUMNS])
        for row in sorted(rows, key=lambda r: r.student):
            scores = [_number(row.scores.get(e.column)) if row.graded else "" for e in wanted]
            writer.writerow(
                [
                    row.student,
                    row.status,
                    _number(row.total),
                    _number(max_total),
                    row.timestamp,
                    row.late,
                    _number(row.late_penalty or None) if row.graded else "",
                    *scores,
                    " ".join(row.needs_manual) if row.graded else "",
                    row.message,
                ]
            )
    return path


def read_sheet(path: Path) -> dict[str, dict[str, str]]:
    """A sheet written by :func:`write_sheet`, by student id (empty if there is none)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}
