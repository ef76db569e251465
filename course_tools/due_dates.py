"""Per-assignment due dates, kept in ``due_dates.csv`` and written into nbgrader's gradebook.

The file has the columns ``assignment`` and ``due`` (ISO 8601 with a time zone, e.g.
``2026-12-15T23:59:00+01:00``; no zone means UTC). ``make release`` applies it to the gradebook's
assignments (nbgrader's ``Assignment.duedate``), where nbgrader's own late-submission handling
(``AssignLatePenalties`` with the ``LateSubmissionPlugin`` configured in ``nbgrader_config.py``)
and the grade sheet's ``late`` column read it.
"""

import csv
from datetime import UTC, datetime
from pathlib import Path

from course_tools.course import REPO

DUE_DATES = REPO / "due_dates.csv"


class DueDateError(ValueError):
    """A due date that cannot be read; the message names the line."""


def read_due_dates(path: Path = DUE_DATES) -> dict[str, datetime]:
    """``{assignment: due (aware, UTC)}``; empty when the file does not exist."""
    if not path.exists():
        return {}
    found = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.DictReader(handle), 2):
            assignment, text = (row.get("assignment") or "").strip(), (row.get("due") or "").strip()
            if not assignment and not text:
                continue
            try:
                due = datetime.fromisoformat(text)
            except ValueError:
                raise DueDateError(
                    f"{path}, line {line}: due {text!r} is not ISO 8601 (2026-12-15T23:59:00+01:00)"
                ) from None
            found[assignment] = (due if due.tzinfo else due.replace(tzinfo=UTC)).astimezone(UTC)
    return found


def apply_due_dates(db_url: str, course_id: str, due: dict[str, datetime]) -> None:
    """Set each listed assignment's due date in the gradebook (nbgrader stores naive UTC)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        for assignment, when in due.items():
            gb.update_or_create_assignment(assignment, duedate=when.replace(tzinfo=None))
