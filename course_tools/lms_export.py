"""Export the gradebook as a CSV that Canvas's gradebook import reads as it is.

``nbgrader export --exporter=course_tools.lms_export.CanvasExportPlugin`` (nbgrader's own command,
run at the course root), or ``python -m course_tools.lms_export`` / ``make export``; both write
``build/grades/canvas.csv`` unless ``--to`` names another file.

The columns are the ones Canvas's importer looks for (``lib/gradebook_importer.rb`` in
instructure/canvas-lms)::

    Student,ID,SIS User ID,SIS Login ID,Section,<one column per assignment>
    Points Possible,,,,,<max score of each assignment>

Canvas finds the student by ``ID``, its numeric user id: the roster's ``lms_user_id``, which the
roster import stores in the gradebook (``Student.lms_user_id``). The SIS columns stay empty (the
course does not know them) and Canvas ignores ``Student``. ``Section`` comes from
``build/roster.csv``. An assignment column is matched by the Canvas assignment id in brackets at the
end of its title, ``Lab 1: Pruning (123456)``, else by the exact Canvas title, else Canvas offers to
create a new assignment: map nbgrader names to Canvas titles in ``nbgrader_config.py``::

    c.CanvasExportPlugin.columns = {"01_pruning": "Lab 1: Pruning (123456)"}

(default: the nbgrader assignment name). A cell is the assignment's total from the gradebook minus
nbgrader's late penalty; it is **empty**, never 0, when the student submitted nothing, when grading
held the submission back (its status in ``build/grades/<assignment>.csv`` does not ``count``, e.g.
``flagged`` or ``autograde-error``) or when a written answer still needs a manual grade. Canvas's
import leaves an empty cell's grade unchanged.

A gradebook student without an LMS user id cannot be keyed: the export stops and names every such
student, unless ``--skip-unlinked`` (``c.CanvasExportPlugin.skip_unlinked = True``) leaves them out
with a warning.
"""

import argparse
import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from nbgrader.plugins import ExportPlugin
from traitlets import Bool, Dict

from course_tools.canvas import ROSTER, read_roster
from course_tools.course import REPO
from course_tools.grading.sheet import read_sheet
from course_tools.grading.status import Status

STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "Points Possible"
DEFAULT_OUTPUT = Path("build") / "grades" / "canvas.csv"


class UnlinkedStudents(ValueError):
    """Gradebook students without an LMS user id: their grades cannot reach Canvas."""


@dataclass(frozen=True)
class Cell:
    """One student's cell for one assignment: a score, or None with the reason it is empty."""

    score: float | None
    why_empty: str = ""


def _number(value: float) -> str:
    """A score as Canvas reads it: ``7``, ``6.5``."""
    return f"{value:g}"


class CanvasExportPlugin(ExportPlugin):
    """Canvas gradebook import CSV, one row per gradebook student keyed by the LMS user id."""

    columns = Dict(
        {},
        help="nbgrader assignment name -> Canvas column title, e.g. 'Lab 1: Pruning (123456)' "
        "(Canvas matches the assignment id in brackets); default: the nbgrader name",
    ).tag(config=True)
    skip_unlinked = Bool(
        False, help="leave out students without an LMS user id instead of stopping"
    ).tag(config=True)
    points_possible = Bool(True, help="write Canvas's 'Points Possible' second row").tag(
        config=True
    )

    @property
    def root(self) -> Path:
        """The course root (nbgrader's ``CourseDirectory.root``)."""
        coursedir = getattr(self.parent, "coursedir", None)
        if coursedir is None:
            from nbgrader.coursedir import CourseDirectory

            coursedir = CourseDirectory(config=self.config)
        return Path(coursedir.root)

    def cell(self, gradebook, assignment: str, student: str, sheet: dict) -> Cell:
        """What goes to Canvas for ``student`` on ``assignment``."""
        from nbgrader.api import MissingEntry

        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return Cell(None, "no submission")
        status = sheet.get(student, {}).get("status")
        if status and not Status(status).counts:
            return Cell(None, f"status {status}")
        if submission.needs_manual_grade:
            return Cell(None, "needs manual grade")
        penalty = submission.late_submission_penalty or 0.0
        return Cell(max(0.0, submission.score - penalty))

    def export(self, gradebook) -> None:
        """Write the CSV to ``--to`` (default ``<course root>/build/grades/canvas.csv``)."""
        dest = Path(self.to) if self.to else self.root / DEFAULT_OUTPUT
        wanted = [str(a) for a in self.assignment]
        only = {str(s) for s in self.student}
        assignments = sorted(
            (a for a in gradebook.assignments if not wanted or a.name in wanted),
            key=lambda a: (a.duedate is None, a.duedate or 0, a.name),
        )
        unknown = sorted(set(wanted) - {a.name for a in assignments})
        if unknown:
            raise ValueError(f"not in the gradebook: {', '.join(unknown)}")
        students = sorted(
            (s for s in gradebook.students if not only or s.id in only), key=lambda s: s.id
        )
        unlinked = [s.id for s in students if not (s.lms_user_id or "").strip()]
        if unlinked and not self.skip_unlinked:
            raise UnlinkedStudents(
                f"{len(unlinked)} student(s) have no LMS user id, so Canvas cannot match them: "
                f"{', '.join(unlinked)}. Import the roster with their Canvas user ids, or export "
                "without them (--skip-unlinked)."
            )
        if unlinked:
            self.log.warning("Left out (no LMS user id): %s", ", ".join(unlinked))
        sections = {e.student_id: e.section for e in read_roster(self.root / ROSTER)}
        sheets = {
            a.name: read_sheet(self.root / "build" / "grades" / f"{a.name}.csv")
            for a in assignments
        }
        empty: dict[str, list[str]] = {}
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                [*STUDENT_COLUMNS, *(self.columns.get(a.name, a.name) for a in assignments)]
            )
            if self.points_possible:
                blanks = [""] * (len(STUDENT_COLUMNS) - 1)
                writer.writerow(
                    [POINTS_POSSIBLE, *blanks, *(_number(a.max_score) for a in assignments)]
                )
            for student in students:
                if student.id in unlinked:
                    continue
                cells = []
                for a in assignments:
                    cell = self.cell(gradebook, a.name, student.id, sheets[a.name])
                    cells.append("" if cell.score is None else _number(cell.score))
                    if cell.why_empty:
                        empty.setdefault(cell.why_empty, []).append(f"{student.id}/{a.name}")
                name = ", ".join(n for n in (student.last_name, student.first_name) if n)
                writer.writerow(
                    [
                        name or student.id,
                        student.lms_user_id.strip(),
                        "",
                        "",
                        sections.get(student.id, ""),
                        *cells,
                    ]
                )
        self.log.info("Exported %d student(s) to %s", len(students) - len(unlinked), dest)
        for why, which in sorted(empty.items()):
            self.log.info("Empty (%s): %s", why, ", ".join(which))


def main(argv: list[str] | None = None) -> None:
    """Command line: the same export as ``nbgrader export --exporter=...CanvasExportPlugin``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", type=Path, help=f"CSV path (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--assignment", action="append", help="only this one (repeatable)")
    parser.add_argument("--student", action="append", help="only this student (repeatable)")
    parser.add_argument(
        "--skip-unlinked", action="store_true", help="leave out students without an LMS user id"
    )
    parser.add_argument("--root", type=Path, default=REPO, help="course root (default: the repo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = export(args.root, args.to, args.assignment, args.student, args.skip_unlinked)
    print(f"wrote {path}")


def export(
    root: Path = REPO,
    to: Path | None = None,
    assignments: list[str] | None = None,
    students: list[str] | None = None,
    skip_unlinked: bool = False,
) -> Path:
    """Run :class:`CanvasExportPlugin` with the course's config; the path written."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory

    from course_tools.course import course_config

    config = course_config(root)
    coursedir = CourseDirectory(config=config)
    database = coursedir.db_url.removeprefix("sqlite:///")
    if database != coursedir.db_url and not Path(database).exists():
        raise SystemExit(f"no gradebook at {database}: release and grade first (make release).")
    plugin = CanvasExportPlugin(config=config, log=logging.getLogger("lms_export"))
    plugin.to = str(to or Path(coursedir.root) / DEFAULT_OUTPUT)
    plugin.assignment = assignments or []
    plugin.student = students or []
    plugin.skip_unlinked = skip_unlinked or plugin.skip_unlinked
    try:
        with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
            plugin.export(gb)
    except (UnlinkedStudents, ValueError) as error:
        raise SystemExit(str(error)) from error
    return Path(plugin.to)


if __name__ == "__main__":
    main()
