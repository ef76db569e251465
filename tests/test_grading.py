"""Grading a whole class end to end with ``course_tools.collect`` and ``course_tools.grade``.

For every assignment a fixture class (tests/class_fixture.py) is collected from an LMS folder and
an nbgrader-layout folder, graded on two workers, and each student's status and points checked
against values derived from the test cells. The class is graded once per assignment and shared
by the tests (and by pytest-xdist workers, through a file lock).
"""

import html
import json
import re
import shutil
import sqlite3
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from course_tools.collect import DEFAULT_REGEXP, match_flat, notebook_name
from course_tools.course import assignments, notebooks
from course_tools.grading.checks import read_notebook
from course_tools.grading.sheet import FIXED_COLUMNS, LAST_COLUMNS, read_sheet
from course_tools.sample_class import Course, build_course
from tests.class_fixture import (
    CELL_TIMEOUT,
    MEMORY_MB,
    NOTEBOOK_TIMEOUT,
    Expected,
    build_class,
    hidden_test_lines,
    run_tool,
)

ASSIGNMENTS = assignments()
STUDENTS = [
    "full",
    "blank",
    "partial1",
    "raises",
    "loop",
    "deafloop",
    "slow",
    "crash",
    "memory",
    "editedtest",
    "deletedtest",
    "hugeoutput",
    "duplicate",
    "invalidjson",
    "empty",
    "wrongname",
    "otherassignment",
    "nometadata",
]
REGRADED = ["crash", "invalidjson"]


def command(module: str, *args: str) -> str:
    """Run ``python -m course_tools.<module> ...``; its output (fails the test if it fails)."""
    return run_tool(module, *args).stdout


def grade_args(assignment: str, root: Path, source: Path, *extra: str) -> list[str]:
    """``grade`` arguments for a test course, with the tests' small limits."""
    return [
        assignment,
        "--root",
        str(root),
        "--source",
        str(source),
        "--cell-timeout",
        str(CELL_TIMEOUT),
        "--notebook-timeout",
        str(NOTEBOOK_TIMEOUT),
        "--memory-mb",
        str(MEMORY_MB),
        "--workers",
        "2",
        *extra,
    ]


@pytest.fixture(scope="session")
def shared(tmp_path_factory, worker_id) -> Path:
    """A folder shared by all xdist workers of this run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base


@pytest.fixture(scope="session")
def course(shared) -> Course:
    """Every assignment released into one temporary course (built once per run)."""
    root = shared / "grading-course"
    with FileLock(str(root) + ".lock"):
        if not (root / "built").exists():
            shutil.rmtree(root, ignore_errors=True)
            build_course(root)
            (root / "built").write_text("")
    return Course(root, root / "source", root / "release")


class GradedClass:
    """One assignment's fixture class after collect and grade, read back from disk."""

    def __init__(self, folder: Path, course: Course, assignment: str):
        self.folder, self.course, self.assignment = folder, course, assignment
        self.root = folder / "course"
        data = json.loads((folder / "result.json").read_text())
        self.expected = {k: Expected(**v) for k, v in data["expected"].items()}
        self.unmatched = data["unmatched"]
        self.collect_output = data["collect"]
        self.grade_output = data["grade"]
        self.sheet_path = self.root / "build" / "grades" / f"{assignment}.csv"
        self.sheet = read_sheet(self.sheet_path)

    def feedback(self, student: str) -> list[Path]:
        """The student's feedback HTML files."""
        return sorted((self.root / "build" / "feedback" / student / self.assignment).glob("*.html"))


def grade_class(folder: Path, course: Course, assignment: str) -> None:
    """Build the class, copy the gradebook, collect both folders, grade; store the results."""
    shutil.rmtree(folder, ignore_errors=True)
    root = folder / "course"
    root.mkdir(parents=True)
    shutil.copy(course.root / "gradebook.db", root / "gradebook.db")
    files = build_class(course, assignment, folder / "handed-in")
    collected = command("collect", assignment, str(files.layout), "--root", str(root))
    command("roster", str(files.roster), "--root", str(root))  # Canvas user id -> student
    collected += command("collect", assignment, str(files.lms), "--root", str(root))
    graded = command("grade", *grade_args(assignment, root, course.source))
    result = {
        "expected": {k: asdict(v) for k, v in files.expected.items()},
        "unmatched": files.unmatched,
        "collect": collected,
        "grade": graded,
    }
    (folder / "result.json").write_text(json.dumps(result, indent=1))


def grade_once(shared: Path, course: Course, assignment: str, wait: bool) -> bool:
    """Grade ``assignment``'s class unless done; False if another worker holds it and not ``wait``."""
    folder = shared / f"grading-{assignment}"
    try:
        with FileLock(str(folder) + ".lock", timeout=-1 if wait else 0):
            if not (folder / "result.json").exists():
                grade_class(folder, course, assignment)
    except Timeout:
        return False
    return True


@pytest.fixture(
    scope="module",
    params=[pytest.param(a, marks=pytest.mark.xdist_group(f"grading-{a}")) for a in ASSIGNMENTS],
)
def graded(request, shared, course) -> GradedClass:
    """The graded fixture class of one assignment (graded once, whichever worker comes first).

    With ``--dist loadgroup`` an assignment's tests stay on one worker. Otherwise a worker that
    finds the class being graded by another grades a class nobody has started meanwhile, so two
    xdist workers grade two assignments at once instead of waiting.
    """
    assignment = request.param
    if not grade_once(shared, course, assignment, wait=False):
        for other in ASSIGNMENTS:
            pending = not (shared / f"grading-{other}" / "result.json").exists()
            if pending and grade_once(shared, course, other, wait=False):
                break
        grade_once(shared, course, assignment, wait=True)
    return GradedClass(shared / f"grading-{assignment}", course, assignment)


def numbers(row: dict[str, str], columns: list[str]) -> dict[str, float | None]:
    """Sheet cells as floats (None for empty)."""
    return {c: float(row[c]) if row[c] else None for c in columns}


@pytest.mark.notebooks
@pytest.mark.parametrize("student", STUDENTS)
def test_student_gets_expected_status_and_points(graded, student):
    expected = graded.expected.get(student)
    if expected is None:
        pytest.skip(f"{graded.assignment} has no wrong answers for {student}")
    row = graded.sheet[student]
    assert row["status"] == expected.status, row["message"]
    assert expected.message in row["message"]
    if expected.points is None:
        assert row["total"] == ""
        assert all(row[c] == "" for c in expected_columns(graded))
    else:
        assert numbers(row, list(expected.points)) == expected.points, row["message"]
        assert float(row["total"]) == expected.total


def expected_columns(graded: GradedClass) -> list[str]:
    """The exercise columns of the sheet."""
    fixed = {*FIXED_COLUMNS, *LAST_COLUMNS}
    return [c for c in next(iter(graded.sheet.values())) if c not in fixed]


@pytest.mark.notebooks
def test_class_has_at_least_twelve_submissions(graded):
    assert len(graded.sheet) >= 12
    assert set(graded.sheet) == set(graded.expected)


@pytest.mark.notebooks
def test_sheet_max_total_is_sum_of_cell_points(graded):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded.root / 'gradebook.db'}", "model-compression-lab") as gb:
        cells = [
            c for nb in gb.find_assignment(graded.assignment).notebooks for c in nb.grade_cells
        ]
        total = sum(c.max_score for c in cells)
    assert {row["max_total"] for row in graded.sheet.values()} == {f"{total:g}"}


@pytest.mark.notebooks
def test_collect_reports_each_unmatched_file(graded):
    for name in graded.unmatched:
        assert re.search(rf"^\s+{re.escape(name)}: \S", graded.collect_output, re.M), name


@pytest.mark.notebooks
def test_collect_reports_duplicate_and_keeps_newest(graded):
    assert "duplicate: duplicate sent" in graded.collect_output
    assert graded.sheet["duplicate"]["total"] == graded.sheet["full"]["total"]


@pytest.mark.notebooks
def test_summary_names_failures_and_pass_rates(graded):
    for student, expected in graded.expected.items():
        if expected.points is None:
            assert f"not graded  {student}: {expected.status}" in graded.grade_output
    for test_id in graded.expected["full"].points:
        assert re.search(rf"^\s+{re.escape(test_id)}\s.*passed \d+/\d+", graded.grade_output, re.M)


@pytest.mark.notebooks
def test_progress_line_for_every_submission(graded):
    lines = re.findall(r"^\[\s*\d+/(\d+)\] (\S+)", graded.grade_output, re.M)
    assert sorted(s for _, s in lines) == sorted(graded.sheet)
    assert {int(n) for n, _ in lines} == {len(graded.sheet)}


@pytest.mark.notebooks
def test_feedback_only_for_graded_submissions(graded):
    for student, expected in graded.expected.items():
        assert bool(graded.feedback(student)) == (expected.points is not None), student


class _Text(HTMLParser):
    """Collects the visible text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def page_text(path: Path) -> str:
    """The text of a feedback page, whitespace collapsed."""
    parser = _Text()
    parser.feed(path.read_text())
    return re.sub(r"\s+", " ", html.unescape("".join(parser.parts)))


@pytest.mark.notebooks
def test_feedback_never_shows_hidden_tests(graded):
    nb = next(nb for nb in notebooks() if nb.assignment == graded.assignment)
    secret = [re.sub(r"\s+", " ", line) for line in hidden_test_lines(nb)]
    pages = [p for s in graded.expected for p in graded.feedback(s)]
    assert pages
    for page in pages:
        text = page_text(page)
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{page} shows hidden test lines {leaked}"


@pytest.mark.notebooks
def test_failed_hidden_test_shows_message_not_traceback(graded):
    nb = next(nb for nb in notebooks() if nb.assignment == graded.assignment)
    if not hidden_test_lines(nb):
        pytest.skip("no hidden tests in this assignment")
    text = page_text(graded.feedback("blank")[0])
    assert "traceback hidden: this test cell contains hidden tests" in text


@pytest.mark.notebooks
def test_release_never_contains_hidden_tests(graded):
    nb = next(nb for nb in notebooks() if nb.assignment == graded.assignment)
    release = nb.release_notebook(graded.course.release).read_text()
    assert "BEGIN HIDDEN TESTS" not in release
    assert not [line for line in hidden_test_lines(nb) if json.dumps(line)[1:-1] in release]


@pytest.mark.notebooks
def test_huge_output_keeps_feedback_small(graded):
    pages = graded.feedback("hugeoutput")
    assert pages and all(p.stat().st_size < 3_000_000 for p in pages)


@pytest.mark.notebooks
def test_gradebook_intact_after_parallel_grading(graded):
    with sqlite3.connect(graded.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        graded_ids = {s for s, e in graded.expected.items() if e.points is not None}
        rows = db.execute(
            "SELECT student_id FROM submitted_assignment JOIN assignment"
            " ON assignment.id = submitted_assignment.assignment_id WHERE assignment.name = ?",
            (graded.assignment,),
        ).fetchall()
    assert {r[0] for r in rows} == graded_ids


@pytest.mark.notebooks
def test_regrading_keeps_manual_grade_and_gives_same_sheet(graded):
    from nbgrader.api import Gradebook

    root = graded.folder / "regraded"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(graded.root, root)
    column = expected_columns(graded)[0]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "model-compression-lab") as gb:
        grade = gb.find_grade(column, column_notebook(graded), graded.assignment, "blank")
        grade.manual_score = 0.5
        gb.db.commit()
    args = [a for s in REGRADED + ["blank"] for a in ("--student", s)]
    command("grade", *grade_args(graded.assignment, root, graded.course.source, *args))
    before = graded.sheet
    after = read_sheet(root / "build" / "grades" / f"{graded.assignment}.csv")
    assert after["blank"][column] == "0.5"
    feedback = root / "build" / "feedback" / "blank" / graded.assignment
    assert re.search(
        rf"{re.escape(column)} Score: 0\.5 /", page_text(next(feedback.glob("*.html")))
    )
    assert (
        float(after["blank"]["total"])
        == float(before["blank"]["total"]) - float(before["blank"][column]) + 0.5
    )
    del after["blank"], before["blank"]
    assert after == before


def test_sheet_flags_a_score_above_the_maximum(graded):
    """A gradebook written by anything but the grader (say, 13 extra points) is held for review."""
    from nbgrader.api import Gradebook

    root = graded.folder / "forged"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(graded.root, root)
    column = expected_columns(graded)[0]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "model-compression-lab") as gb:
        grade = gb.find_grade(column, column_notebook(graded), graded.assignment, "full")
        grade.manual_score = grade.max_score + 13
        gb.db.commit()
    command("grade", graded.assignment, "--root", str(root), "--sheet-only")
    row = read_sheet(root / "build" / "grades" / f"{graded.assignment}.csv")["full"]
    assert row["status"] == "flagged" and row["total"] == ""
    assert f"above the maximum: {column}" in row["message"]


def column_notebook(graded: GradedClass) -> str:
    """The notebook of the assignment (one per assignment in the fixture class)."""
    return next(nb.name for nb in notebooks() if nb.assignment == graded.assignment)


def test_lms_copy_suffixes_map_to_the_released_name():
    expected = ["head_pruning", "distillation"]
    assert notebook_name("head_pruning-1", expected) == "head_pruning"
    assert notebook_name("head_pruning (2)", expected) == "head_pruning"
    assert notebook_name("1234_head_pruning-Copy1", expected) == "head_pruning"
    assert notebook_name("Untitled", expected) == "Untitled"


def test_lms_file_without_student_id_is_not_matched(tmp_path):
    pattern = re.compile(DEFAULT_REGEXP)
    bare = tmp_path / "head_pruning.ipynb"
    named = tmp_path / "alice_12_34_head_pruning.ipynb"
    assert isinstance(match_flat(bare, pattern, ["head_pruning"]), str)
    found = match_flat(named, pattern, ["head_pruning"])
    assert (found.student, found.name) == ("alice", "head_pruning")


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"cells": [', "invalid-json"),
        (b"[1, 2]", "not-a-notebook"),
    ],
)
def test_unreadable_file_gets_its_own_status(tmp_path, content, status):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    notebook, found, message = read_notebook(path)
    assert (notebook, found) == (None, status)
    assert "x.ipynb" in message


def test_hidden_test_traceback_is_cut_to_its_message():
    import nbformat

    from course_tools.grading.feedback import HideHiddenTestOutput

    source = "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(-1) == -2, 'negative inputs'\n### END HIDDEN TESTS"
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1, "solution": False}
    cell.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="negative inputs",
            traceback=["\x1b[0;32m----> 3\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m f(-1) == -2"],
        ),
        nbformat.v4.new_output(
            "stream", name="stdout", text="checking assert f(-1) == -2, 'negative inputs'\nok\n"
        ),
    ]
    HideHiddenTestOutput().preprocess_cell(cell, {}, 0)
    error, stream = cell.outputs
    assert error.traceback[0] == "AssertionError: negative inputs"
    assert "f(-1)" not in "".join(error.traceback) + stream.text
    assert stream.text == "ok\n"
