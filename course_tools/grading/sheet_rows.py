"""The grade sheet's rows: each student's scores from the gradebook, with the grading's status."""

import os
from pathlib import Path

from course_tools.grading.discover import lms_marked_late
from course_tools.grading.ids import safe_student_id
from course_tools.grading.sheet import SheetRow, exercises, few, read_scores, read_sheet
from course_tools.grading.status import NOT_GRADED, Status


def sheet_rows(
    db_url: str,
    course_id: str,
    assignment: str,
    statuses: dict[str, tuple[Status, str]],
    sheet: Path,
    only: list[str] | None,
    submitted: Path | None = None,
) -> list[SheetRow]:
    """Rows for every student: scores from the gradebook, status from this grading (or the last sheet).

    ``statuses`` maps a student to the status and message this grading gave; with ``only``, the
    other students keep those of the sheet already at ``sheet``. With ``submitted``, a submission
    the LMS marked late (``LATE_`` in its file name, noted by collect) says so in ``late``.
    A student of the gradebook (the roster) listed nowhere and without a submission folder is
    ``missing``: a roster imported after the last grading shows in a rebuilt sheet.
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
