"""Import the class roster into the gradebook: every student gets a row in every sheet.

``python -m course_tools.roster roster.csv`` (``make roster FROM=roster.csv``) reads a CSV export of
the LMS's roster with the columns ``lms_user_id``, ``name``, ``email``, ``section`` and optionally
``student_id`` (the id the student submits under: a JupyterHub login, or the LMS id itself, the
default). Each student goes into nbgrader's gradebook through its own ``Gradebook`` API (``Student``
with ``first_name``, ``last_name``, ``email`` and ``lms_user_id``), so a student who never submits
still has a row (status ``missing``, no score) in every grade sheet. nbgrader's ``Student`` has no
section, so the validated roster is also kept as ``build/roster.csv`` for the LMS export.

Nothing is written unless the whole file is valid: a bad row is reported with its line number.
"""

import argparse
import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from course_tools.course import REPO, course_config
from course_tools.grading.ids import safe_student_id

REQUIRED = ("lms_user_id", "name")
ROSTER_COPY = Path("build") / "roster.csv"


@dataclass(frozen=True)
class RosterEntry:
    """One student of the roster."""

    student_id: str
    lms_user_id: str
    name: str
    email: str = ""
    section: str = ""

    @property
    def first_and_last(self) -> tuple[str, str]:
        """``("Ada", "Lovelace")`` from ``"Ada Lovelace"``; ``"Lovelace, Ada"`` (LMS style) too."""
        if "," in self.name:
            last, first = (part.strip() for part in self.name.split(",", 1))
            return first, last
        first, _, last = self.name.strip().rpartition(" ")
        return (first, last) if first else (last, "")


class RosterError(ValueError):
    """The roster file cannot be imported as it is; the message says where and why."""


def read_roster(path: Path) -> list[RosterEntry]:
    """The students of a roster CSV, validated (unique safe student ids, unique LMS user ids, required columns filled)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        if missing := [c for c in REQUIRED if c not in columns]:
            raise RosterError(
                f"{path}: missing column(s) {', '.join(missing)}; expected a header with "
                "lms_user_id,name,email,section (and optionally student_id)"
            )
        rows = [
            (line, {k.strip(): (v or "").strip() for k, v in row.items() if k})
            for line, row in enumerate(reader, 2)
        ]
    problems, entries, seen, lms_ids = [], [], {}, {}
    for line, row in rows:
        if not any(row.values()):
            continue
        entry = RosterEntry(
            student_id=row.get("student_id") or row["lms_user_id"],
            lms_user_id=row["lms_user_id"],
            name=row["name"],
            email=row.get("email", ""),
            section=row.get("section", ""),
        )
        if not entry.lms_user_id or not entry.name:
            problems.append(f"line {line}: lms_user_id and name must not be empty")
        elif reason := safe_student_id(entry.student_id):
            problems.append(f"line {line}: student id {entry.student_id!r}: {reason}")
        elif entry.student_id in seen:
            problems.append(
                f"line {line}: student id {entry.student_id!r} already on line {seen[entry.student_id]}"
            )
        elif entry.lms_user_id in lms_ids:  # collect and the LMS export look students up by it
            problems.append(
                f"line {line}: lms_user_id {entry.lms_user_id!r} already on line "
                f"{lms_ids[entry.lms_user_id]}"
            )
        else:
            seen[entry.student_id] = line
            lms_ids[entry.lms_user_id] = line
            entries.append(entry)
    if problems:
        raise RosterError(f"{path}: " + "; ".join(problems) + " (nothing imported)")
    return entries


def import_roster(path: Path, root: Path = REPO) -> list[RosterEntry]:
    """Add or update every student of the roster in the gradebook; keep a copy for the export."""
    from nbgrader.api import Gradebook

    entries = read_roster(path)
    directory = course_config(root).CourseDirectory
    if directory.db_url.startswith("sqlite:///"):  # a roster may come before the first release
        Path(directory.db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(directory.db_url, directory.course_id) as gb:
        for entry in entries:
            first, last = entry.first_and_last
            gb.update_or_create_student(
                entry.student_id,
                first_name=first,
                last_name=last,
                email=entry.email or None,
                lms_user_id=entry.lms_user_id,
            )
    copy = Path(directory.root) / ROSTER_COPY
    copy.parent.mkdir(parents=True, exist_ok=True)
    with copy.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, [f.name for f in fields(RosterEntry)])
        writer.writeheader()
        writer.writerows(asdict(e) for e in entries)
    return entries


def not_on_roster(entries: list[RosterEntry], root: Path = REPO) -> list[str]:
    """Gradebook students the roster does not list (dropped, or created by a submission).

    They keep a row in every sheet; ``nbgrader db student remove <id>`` removes one that left.
    """
    from nbgrader.api import Gradebook

    listed = {e.student_id for e in entries}
    directory = course_config(root).CourseDirectory
    with Gradebook(directory.db_url, directory.course_id) as gb:
        return sorted(s.id for s in gb.students if s.id not in listed)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "roster", type=Path, help="CSV: lms_user_id,name,email,section[,student_id]"
    )
    parser.add_argument("--root", type=Path, default=REPO, help="course root (default: the repo)")
    args = parser.parse_args(argv)
    try:
        entries = import_roster(args.roster, args.root)
    except (RosterError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    sections = sorted({e.section for e in entries if e.section})
    print(
        f"imported {len(entries)} student(s) into the gradebook; sections: {', '.join(sections) or '-'}"
    )
    if others := not_on_roster(entries, args.root):
        print(
            f"{len(others)} gradebook student(s) not on this roster keep a row in every sheet: "
            f"{', '.join(others[:10])}{' ...' if len(others) > 10 else ''} "
            "(remove one who left with `nbgrader db student remove <id>`)"
        )


if __name__ == "__main__":
    main()
