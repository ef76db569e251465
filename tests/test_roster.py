"""The roster, due dates and late work: every rostered student in the sheet, lateness recorded."""

import csv
from pathlib import Path

import nbformat
import pytest

from course_tools.collect import collect
from course_tools.course import course_config, notebooks
from course_tools.due_dates import DueDateError, apply_due_dates, read_due_dates
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade, rebuild_sheet
from course_tools.grading.sandbox import unavailable
from course_tools.grading.sheet import read_sheet
from course_tools.roster import (
    RosterEntry,
    RosterError,
    import_roster,
    not_on_roster,
    read_roster,
)
from course_tools.sample_class import build_course, filled, solution_answers
from tests.class_fixture import CELL_TIMEOUT, MEMORY_MB, NOTEBOOK_TIMEOUT

ASSIGNMENT = "03_quantization"
ROSTER = """lms_user_id,name,email,section
1001,Ada Lovelace,ada@example.org,A
1002,"Hopper, Grace",grace@example.org,B
1003,Alan Turing,alan@example.org,A
1004,Never Submits,never@example.org,B
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_roster_reads_ids_names_and_sections(tmp_path):
    entries = read_roster(write(tmp_path / "r.csv", ROSTER))
    assert [e.student_id for e in entries] == ["1001", "1002", "1003", "1004"]
    assert entries[1].first_and_last == ("Grace", "Hopper")
    assert entries[0].first_and_last == ("Ada", "Lovelace")
    assert entries[0].section == "A"


def test_roster_student_id_column_overrides_the_lms_id(tmp_path):
    text = "student_id,lms_user_id,name\nada,1001,Ada Lovelace\n"
    assert read_roster(write(tmp_path / "r.csv", text)) == [
        RosterEntry("ada", "1001", "Ada Lovelace")
    ]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("name,email\nAda,a@x\n", "missing column(s) lms_user_id"),
        (
            "lms_user_id,name\n1001,Ada\n1001,Ada again\n",
            "line 3: student id '1001' already on line 2",
        ),
        (
            "student_id,lms_user_id,name\nada,1001,Ada\nada2,1001,Ada again\n",
            "line 3: lms_user_id '1001' already on line 2",
        ),
        ("lms_user_id,name\n*,Mallory\n", "line 2: student id '*'"),
        ("lms_user_id,name\n1001,\n", "line 2: lms_user_id and name must not be empty"),
    ],
)
def test_bad_roster_is_refused_with_its_line_and_nothing_imported(tmp_path, text, reason):
    with pytest.raises(
        RosterError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")
    ):
        read_roster(write(tmp_path / "r.csv", text))


def test_roster_imports_before_the_first_release(tmp_path):
    root = tmp_path / "fresh-clone"  # no build/ folder, no gradebook yet
    root.mkdir()
    config = course_config(root)
    config.CourseDirectory.db_url = f"sqlite:///{root}/build/gradebook.db"  # as in the repo
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("course_tools.roster.course_config", lambda _root: config)
        entries = import_roster(write(tmp_path / "r.csv", ROSTER), root)
    assert (root / "build" / "gradebook.db").is_file() and len(entries) == 4


def test_reimport_names_gradebook_students_the_new_roster_drops(tmp_path):
    import_roster(write(tmp_path / "r.csv", ROSTER), tmp_path)
    shorter = "".join(ROSTER.splitlines(keepends=True)[:3])
    entries = import_roster(write(tmp_path / "r2.csv", shorter), tmp_path)
    assert [e.student_id for e in entries] == ["1001", "1002"]
    assert not_on_roster(entries, tmp_path) == ["1003", "1004"]


def test_rebuilt_sheet_lists_rostered_students_imported_after_grading(private_course, tmp_path):
    import_roster(write(tmp_path / "r.csv", ROSTER), private_course)
    sheet = read_sheet(rebuild_sheet(ASSIGNMENT, private_course).sheet)  # as `--sheet-only`
    assert sorted(sheet) == ["1001", "1002", "1003", "1004"]
    assert {(row["status"], row["total"]) for row in sheet.values()} == {("missing", "")}


def test_due_dates_are_read_as_utc_and_a_bad_one_names_its_line(tmp_path):
    path = write(
        tmp_path / "d.csv", "assignment,due\nhw,2026-12-15T23:59:00+01:00\nhw2,2026-12-20 12:00\n"
    )
    due = read_due_dates(path)
    assert due["hw"].isoformat() == "2026-12-15T22:59:00+00:00"
    assert due["hw2"].isoformat() == "2026-12-20T12:00:00+00:00"
    with pytest.raises(DueDateError, match="line 2"):
        read_due_dates(write(tmp_path / "bad.csv", "assignment,due\nhw,next friday\n"))


@pytest.mark.notebooks
def test_sheet_lists_every_rostered_student_with_timestamp_and_lateness(tmp_path):
    if reason := unavailable():
        pytest.skip(reason)
    course = build_course(tmp_path / "course", only=[ASSIGNMENT])
    root = course.root
    import_roster(write(tmp_path / "roster.csv", ROSTER), root)
    directory = course_config(root).CourseDirectory
    apply_due_dates(
        directory.db_url,
        directory.course_id,
        read_due_dates(
            write(tmp_path / "due.csv", f"assignment,due\n{ASSIGNMENT},2026-12-10T12:00:00Z\n")
        ),
    )
    nb = next(n for n in notebooks() if n.assignment == ASSIGNMENT)
    solved = filled(course.release_notebook(nb), solution_answers(nb))
    layout = tmp_path / "layout"
    for student, when in (("1001", "2026-12-10 11:00:00"), ("1002", "2026-12-11 14:30:00")):
        folder = layout / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(solved, folder / f"{nb.name}.ipynb")
        (folder / "timestamp.txt").write_text(f"{when}.000000 UTC")
    collect(ASSIGNMENT, layout, root)
    lms = tmp_path / "lms"
    lms.mkdir()
    nbformat.write(solved, lms / f"turingalan_LATE_1003_88_{nb.name}.ipynb")  # Canvas's name
    collect(ASSIGNMENT, lms, root)

    limits = Limits(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, MEMORY_MB)
    result = grade(ASSIGNMENT, root, course.source, limits, 2, progress=lambda _: None)
    sheet = read_sheet(result.sheet)
    assert sorted(sheet) == ["1001", "1002", "1003", "1004"]
    assert sheet["1004"]["status"] == "missing" and sheet["1004"]["total"] == ""
    on_time, late, marked = sheet["1001"], sheet["1002"], sheet["1003"]
    assert on_time["timestamp"] == "2026-12-10 11:00:00 UTC" and on_time["late"] == ""
    assert late["timestamp"] == "2026-12-11 14:30:00 UTC" and late["late"] == "1 d 2 h late"
    assert marked["late"] == "marked late by the LMS"
    # the default policy ("none") keeps a late submission's score
    assert late["total"] == on_time["total"] != "" and late["late_penalty"] == ""


@pytest.mark.notebooks
def test_zero_late_policy_gives_a_late_submission_zero_in_the_sheet_and_canvas_export(
    tmp_path, monkeypatch
):
    if reason := unavailable():
        pytest.skip(reason)
    from nbgrader.api import Gradebook

    from course_tools.grading import config as grading_config_module
    from course_tools.lms_export import export

    def with_zero_policy(*args, **kwargs):  # as if nbgrader_config.py said "zero"
        config = course_config(*args, **kwargs)
        config.LateSubmissionPlugin.penalty_method = "zero"
        return config

    monkeypatch.setattr(grading_config_module, "course_config", with_zero_policy)
    course = build_course(tmp_path / "course", only=[ASSIGNMENT])
    root = course.root
    import_roster(write(tmp_path / "roster.csv", "lms_user_id,name\n1002,Grace Hopper\n"), root)
    directory = course_config(root).CourseDirectory
    due = write(tmp_path / "due.csv", f"assignment,due\n{ASSIGNMENT},2026-12-10T12:00:00Z\n")
    apply_due_dates(directory.db_url, directory.course_id, read_due_dates(due))
    nb = next(n for n in notebooks() if n.assignment == ASSIGNMENT)
    folder = tmp_path / "layout" / "1002" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(
        filled(course.release_notebook(nb), solution_answers(nb)), folder / f"{nb.name}.ipynb"
    )
    (folder / "timestamp.txt").write_text("2026-12-11 14:30:00.000000 UTC")
    collect(ASSIGNMENT, tmp_path / "layout", root)

    limits = Limits(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, MEMORY_MB)
    run = grade(ASSIGNMENT, root, course.source, limits, 1, progress=lambda _: None)
    row = read_sheet(run.sheet)["1002"]
    scored = sum(float(row[e.column]) for e in run.exercises if row[e.column])
    assert row["status"] == "graded" and row["late"] == "1 d 2 h late"
    assert scored > 0 and float(row["late_penalty"]) == scored
    assert row["total"] == "0"

    written = next(e for e in run.exercises if not e.autograded)  # graded later, in Formgrader
    with Gradebook(directory.db_url, directory.course_id) as gb:
        cell = gb.find_grade(written.grade_id, written.notebook, ASSIGNMENT, "1002")
        cell.manual_score, cell.needs_manual_grade = 1.0, False
        gb.db.commit()
    row = read_sheet(rebuild_sheet(ASSIGNMENT, root).sheet)["1002"]  # as `--sheet-only`
    assert float(row["late_penalty"]) == scored + 1.0 and row["total"] == "0"
    with export(root).open(newline="") as handle:
        header, _, student = csv.reader(handle)
    assert header[-1] == ASSIGNMENT and student[1] == "1002" and student[-1] == "0"
