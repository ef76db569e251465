"""The Canvas export (``course_tools.lms_export``) and collect keyed by the Canvas user id.

Fast: the gradebook is built with nbgrader's Gradebook API (no notebook runs); one test runs
``nbgrader export`` itself with the course's ``nbgrader_config.py``.
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from course_tools import collect as collect_module
from course_tools.canvas import CanvasCollectorPlugin
from course_tools.collect import collect
from course_tools.course import REPO, ensure_venv_on_path
from course_tools.grading.checks import COLLECT_NOTES
from course_tools.lms_export import UnlinkedStudents, export

COURSE_ID = "model-compression-lab"  # the course config's; the Gradebook is per course
LAB1, LAB2 = "01_pruning", "02_distillation"
HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", LAB1, LAB2]
# student id -> (first, last, LMS user id, {assignment: (score, needs manual grade)})
STUDENTS = {
    "ada": ("Ada", "Lovelace", "4821", {LAB1: (7.0, False), LAB2: (3.5, False)}),
    "alan": ("Alan", "Turing", "4822", {LAB1: (4.0, False)}),  # did not hand in lab 2
    "grace": ("Grace", "Hopper", "4823", {LAB1: (5.0, False), LAB2: (2.0, True)}),
}
ROSTER = "student_id,lms_user_id,name,email,section\n" + "".join(
    f"{sid},{lms},{first} {last},{sid}@example.org,Section {i % 2 + 1}\n"
    for i, (sid, (first, last, lms, _)) in enumerate(STUDENTS.items())
)


def add_assignment(gb: Gradebook, name: str, max_score: float) -> None:
    """An assignment of one notebook with one autograded cell worth ``max_score``."""
    gb.add_assignment(name)
    gb.add_notebook("nb", name)
    gb.add_grade_cell("total", "nb", name, max_score=max_score, cell_type="code")


def set_score(gb: Gradebook, assignment: str, student: str, score: float, manual: bool) -> None:
    """Hand in ``assignment`` for ``student`` with ``score``; ``manual``: still needs a person."""
    gb.add_submission(assignment, student)
    grade = gb.find_grade("total", "nb", assignment, student)
    grade.auto_score = None if manual else score
    grade.needs_manual_grade = manual
    gb.db.commit()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A course root with a gradebook of three rostered students and two assignments.

    Built once: a new gradebook runs nbgrader's alembic migrations (seconds); tests get a copy.
    """
    ensure_venv_on_path()
    root = tmp_path_factory.mktemp("template") / "course"
    (root / "build" / "grades").mkdir(parents=True)
    (root / "build" / "roster.csv").write_text(ROSTER)
    with Gradebook(f"sqlite:///{root}/gradebook.db", COURSE_ID) as gb:
        add_assignment(gb, LAB1, 10)
        add_assignment(gb, LAB2, 4)
        for sid, (first, last, lms, scores) in STUDENTS.items():
            gb.add_student(sid, first_name=first, last_name=last, lms_user_id=lms)
            for assignment, (score, manual) in scores.items():
                set_score(gb, assignment, sid, score, manual)
    return root


@pytest.fixture
def course(template, tmp_path) -> Path:
    """A copy of the template course of this test's own."""
    root = tmp_path / "course"
    shutil.copytree(template, root)
    return root


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def rows_by_id(path: Path) -> dict[str, list[str]]:
    """The student rows of an export, by their ``ID`` cell."""
    return {row[1]: row for row in read(path)[2:]}


def test_header_and_points_possible_are_canvas_import_columns(course):
    rows = read(export(course))
    assert rows[0] == HEADER
    assert rows[1] == ["Points Possible", "", "", "", "", "10", "4"]


def test_default_output_is_build_grades_canvas_csv(course):
    assert export(course) == course / "build" / "grades" / "canvas.csv"


def test_rows_are_keyed_by_lms_user_id_with_roster_section(course):
    rows = rows_by_id(export(course))
    assert sorted(rows) == ["4821", "4822", "4823"]
    assert rows["4821"][:6] == ["Lovelace, Ada", "4821", "", "", "Section 1", "7"]
    assert rows["4822"][4] == "Section 2"


def test_graded_score_is_the_gradebook_total(course):
    assert rows_by_id(export(course))["4821"][5:] == ["7", "3.5"]


def test_missing_submission_is_empty_not_zero(course):
    assert rows_by_id(export(course))["4822"][5:] == ["4", ""]


def test_submission_needing_manual_grade_is_empty(course):
    assert rows_by_id(export(course))["4823"][5:] == ["5", ""]


@pytest.mark.parametrize("status", ["flagged", "autograde-error", "missing"])
def test_status_that_does_not_count_gives_empty_cell(course, status):
    sheet = course / "build" / "grades" / f"{LAB1}.csv"
    sheet.write_text(f"student_id,status,total\nada,{status},\nalan,graded,4\n")
    rows = rows_by_id(export(course))
    assert rows["4821"][5] == ""
    assert rows["4822"][5] == "4"


def test_late_penalty_is_subtracted(course):
    with Gradebook(f"sqlite:///{course}/gradebook.db", COURSE_ID) as gb:
        for notebook in gb.find_submission(LAB1, "ada").notebooks:
            notebook.late_submission_penalty = 1.5
        gb.db.commit()
    assert rows_by_id(export(course))["4821"][5] == "5.5"


def add_unlinked(course: Path) -> None:
    with Gradebook(f"sqlite:///{course}/gradebook.db", COURSE_ID) as gb:
        gb.add_student("bob", first_name="Bob")
        gb.add_student("eve", lms_user_id="  ")


def test_students_without_lms_user_id_stop_the_export_by_name(course):
    add_unlinked(course)
    with pytest.raises(SystemExit, match=r"2 student\(s\) have no LMS user id.*: bob, eve"):
        export(course)
    assert not (course / "build" / "grades" / "canvas.csv").exists()


def test_skip_unlinked_leaves_them_out(course):
    add_unlinked(course)
    assert sorted(rows_by_id(export(course, skip_unlinked=True))) == ["4821", "4822", "4823"]


def test_only_the_named_assignments_and_students(course):
    rows = read(export(course, assignments=[LAB2], students=["ada"]))
    assert rows[0] == HEADER[:5] + [LAB2]
    assert [r[1] for r in rows[2:]] == ["4821"]


def test_plugin_refuses_unlinked_students_with_its_own_error(course):
    from course_tools.lms_export import CanvasExportPlugin

    add_unlinked(course)
    plugin = CanvasExportPlugin(to=str(course / "out.csv"))
    with Gradebook(f"sqlite:///{course}/gradebook.db", COURSE_ID) as gb:
        with pytest.raises(UnlinkedStudents, match="bob, eve"):
            plugin.export(gb)


def nbgrader_export(course: Path, *options: str) -> subprocess.CompletedProcess:
    """``nbgrader export --exporter=...CanvasExportPlugin`` at the repo (its nbgrader_config.py)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]}
    env.pop("MCL_GRADEBOOK_URL", None)
    command = [
        sys.executable,
        "-m",
        "nbgrader",
        "export",
        "--exporter=course_tools.lms_export.CanvasExportPlugin",
        f"--CourseDirectory.root={course}",
        f"--db=sqlite:///{course}/gradebook.db",
        *options,
    ]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_nbgrader_export_command_uses_the_plugin_and_config(course):
    result = nbgrader_export(
        course, '--CanvasExportPlugin.columns={"01_pruning": "Lab 1: Pruning (123456)"}'
    )
    assert result.returncode == 0, result.stderr
    rows = read(course / "build" / "grades" / "canvas.csv")
    assert rows[0] == [*HEADER[:5], "Lab 1: Pruning (123456)", LAB2]
    assert rows_by_id(course / "build" / "grades" / "canvas.csv")["4822"][5:] == ["4", ""]


# Collect keyed by the Canvas user id

NOTEBOOK = "head_pruning"
NOTEBOOK_BYTES = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


@pytest.fixture
def download(tmp_path, monkeypatch) -> Path:
    """A Canvas download: Ada on time, Alan late, and a student the roster does not know."""
    monkeypatch.setattr(collect_module, "released_notebooks", lambda config: {LAB1: [NOTEBOOK]})
    folder = tmp_path / "download"
    folder.mkdir()
    for name in (
        f"lovelaceada_4821_99001_{NOTEBOOK}.ipynb",
        f"turingalan_LATE_4822_99002_{NOTEBOOK}-1.ipynb",
        f"strangerx_5000_99003_{NOTEBOOK}.ipynb",
    ):
        (folder / name).write_bytes(NOTEBOOK_BYTES)
    return folder


def collected(root: Path) -> list[str]:
    submitted = root / "build" / "submitted"
    return sorted(str(p.relative_to(submitted)) for p in submitted.rglob("*.ipynb"))


def test_collect_keys_students_by_lms_id_through_the_roster(course, download):
    report, _ = collect(LAB1, download, course, key="lms-id")
    assert collected(course) == [f"ada/{LAB1}/{NOTEBOOK}.ipynb", f"alan/{LAB1}/{NOTEBOOK}.ipynb"]
    assert report.unmatched == [
        (
            f"strangerx_5000_99003_{NOTEBOOK}.ipynb",
            "LMS user id 5000 is not in the roster (build/roster.csv)",
        )
    ]


def test_collect_keys_by_the_lms_id_itself_without_a_roster(course, download):
    (course / "build" / "roster.csv").unlink()
    collect(LAB1, download, course, key="lms-id")
    assert [p.split("/")[0] for p in collected(course)] == ["4821", "4822", "5000"]


def test_collect_keys_by_the_lms_id_by_default(course, download):
    report, _ = collect(LAB1, download, course)
    assert [p.split("/")[0] for p in collected(course)] == ["5000", "ada", "alan"]
    assert report.warnings == [
        (
            f"strangerx_5000_99003_{NOTEBOOK}.ipynb",
            "LMS user id 5000 is not in the roster (build/roster.csv): collected as is",
        )
    ]


def test_collect_keeps_two_students_of_the_same_name_apart(course, download):
    for path in download.iterdir():
        path.unlink()
    for name in (
        f"smithjohn_4821_99001_{NOTEBOOK}.ipynb",
        f"smithjohn_4822_99002_{NOTEBOOK}.ipynb",
    ):
        (download / name).write_bytes(NOTEBOOK_BYTES)
    report, _ = collect(LAB1, download, course)
    assert collected(course) == [f"ada/{LAB1}/{NOTEBOOK}.ipynb", f"alan/{LAB1}/{NOTEBOOK}.ipynb"]
    assert not report.duplicates and not report.unmatched


def test_collect_keys_names_without_a_user_id_by_the_name(course, download):
    (download / f"hopper_LATE_{NOTEBOOK}.ipynb").write_bytes(NOTEBOOK_BYTES)
    collect(LAB1, download, course)
    assert [p.split("/")[0] for p in collected(course)] == ["5000", "ada", "alan", "hopper"]


def test_late_marker_of_a_file_keyed_by_lms_id_reaches_the_collect_notes(course, download):
    collect(LAB1, download, course)
    notes = course / "build" / "submitted" / "alan" / LAB1 / COLLECT_NOTES
    assert '"lms_late": true' in notes.read_text()
    assert not (course / "build" / "submitted" / "ada" / LAB1 / COLLECT_NOTES).exists()


def test_collect_by_name_on_request(course, download):
    collect(LAB1, download, course, key="name")
    assert [p.split("/")[0] for p in collected(course)] == [
        "lovelaceada",
        "strangerx",
        "turingalan",
    ]


def test_canvas_collector_plugin_maps_the_roster(course):
    plugin = CanvasCollectorPlugin(roster=str(course / "build" / "roster.csv"))
    found = plugin.collect(f"sub/turingalan_LATE_4822_99002_{NOTEBOOK}.ipynb")
    assert found["student_id"] == "alan"
    assert found["lms_user_id"] == "4822"
    assert found["file_id"] == f"{NOTEBOOK}.ipynb"
    assert plugin.collect(f"strangerx_5000_99003_{NOTEBOOK}.ipynb") is None
    assert plugin.collect(f"anon_x7Kq2_99004_{NOTEBOOK}.ipynb") is None
