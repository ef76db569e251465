"""The build and grading round trip, for every assignment present in ``solutions/``."""

import json
from pathlib import Path

import nbformat
import pytest

from course_tools.course import RELEASE, Notebook, course_config, nbgrader_api, notebooks, submit
from course_tools.headless import read_summary
from tests.class_fixture import hidden_test_lines

pytestmark = pytest.mark.notebooks

NOTEBOOKS = notebooks()
IDS = [f"{nb.assignment}/{nb.name}" for nb in NOTEBOOKS]


def _validator(invert: bool = False):
    """nbgrader's Validator with the course config (``nbgrader validate`` exits 0 on failure)."""
    from nbgrader.validator import Validator

    return Validator(config=course_config(), invert=invert)


def _autograde(root: Path, nb: Notebook, student: str):
    """Autograde one submission and return its gradebook row as a dict."""
    from nbgrader.api import Gradebook

    config = course_config(root, release_directory=str(root / "release"))
    result = nbgrader_api(config).autograde(nb.assignment, student)
    assert result["success"], result.get("error") or result.get("log")
    with Gradebook(config.CourseDirectory.db_url, config.CourseDirectory.course_id) as gb:
        sub = gb.find_submission_notebook(nb.name, nb.assignment, student)
        return {
            "code_score": sub.code_score,
            "max_code_score": sub.max_code_score,
            "needs_manual_grade": sub.needs_manual_grade,
            "manual_cells": [g.name for g in sub.grades if g.auto_score is None],
        }


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_release_is_up_to_date(built_course, nb):
    fresh = json.loads(nb.release_notebook(built_course / "release").read_text())
    committed = nb.release_notebook()
    assert committed.exists(), f"{committed} is missing: run `make release` and commit notebooks/."
    assert json.loads(committed.read_text()) == fresh, (
        f"{committed} differs from solutions/: run `make release` and commit notebooks/."
    )


def test_release_holds_only_built_notebooks(built_course):
    fresh = {p.relative_to(built_course / "release") for p in (built_course / "release").rglob("*")}
    committed = {p.relative_to(RELEASE) for p in RELEASE.rglob("*")}
    assert committed == fresh, "notebooks/ holds files not generated from solutions/"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_release_has_no_solution_and_no_hidden_tests(built_course, nb):
    release = nb.release_notebook(built_course / "release").read_text()
    assert "BEGIN SOLUTION" not in release and "END SOLUTION" not in release
    assert "HIDDEN TESTS" not in release
    hidden_lines = hidden_test_lines(nb)
    assert hidden_lines, "every assignment should have hidden tests"
    cells = nbformat.reads(release, as_version=4).cells
    sources = "\n".join(cell.source for cell in cells)
    leaked = sorted(line for line in hidden_lines if line in sources)
    assert not leaked, f"hidden test lines appear in the release: {leaked[:3]}"
    assert all(not cell.get("outputs") for cell in cells if cell.cell_type == "code")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_solution_passes_validator(built_course, nb):
    assert _validator().validate(str(nb.source_notebook())) == {}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_release_fails_every_test_cell(built_course, nb):
    result = _validator(invert=True).validate(str(nb.release_notebook(built_course / "release")))
    assert result == {}, f"test cells pass on the untouched release: {result}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_autograde_gives_full_marks_to_the_solution(private_course, nb):
    submit(private_course, nb, "reference", nb.source_notebook())
    row = _autograde(private_course, nb, "reference")
    assert row["max_code_score"] > 0
    assert row["code_score"] == row["max_code_score"], row
    assert row["needs_manual_grade"] == bool(row["manual_cells"]), row


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_autograde_gives_zero_to_the_untouched_release(private_course, nb):
    submit(private_course, nb, "blank", nb.release_notebook(private_course / "release"))
    row = _autograde(private_course, nb, "blank")
    assert row["max_code_score"] > 0
    assert row["code_score"] == 0, row


@pytest.mark.parametrize(
    "nb",
    [
        pytest.param(nb, id=id_, marks=pytest.mark.xdist_group(f"papermill-{nb.assignment}"))
        for nb, id_ in zip(NOTEBOOKS, IDS, strict=True)
    ],
)
def test_papermill_runs_the_solution_headless(executed_notebook, nb):
    values = read_summary(executed_notebook(nb))
    assert isinstance(values, dict) and values, "the summary cell printed no measured result"
