"""Release checks: a prompt above every hand-graded cell, and an introduction that lists every graded
item with its points (the rules are in ``tests/release_layout.py``)."""

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.preprocessors import ClearSolutions, LockCells

from course_tools.course import REPO, course_config, notebooks
from course_tools.grading.cells import grade_id, is_answer_cell
from course_tools.provided import DEFINED, REQUEST, provided_source, requested_names
from tests.release_layout import leaked, points_table_problems, prompt_problems, solution_regions

NOTEBOOKS = notebooks()
IDS = [f"{nb.assignment}/{nb.name}" for nb in NOTEBOOKS]


def _released_cells(built_course, nb) -> list:
    return nbformat.read(nb.release_notebook(built_course / "release"), as_version=4).cells


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_every_hand_graded_cell_follows_a_visible_locked_prompt(built_course, nb):
    problems = prompt_problems(_released_cells(built_course, nb))
    assert not problems, "\n".join(problems)


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_introduction_lists_every_graded_item_with_its_points(built_course, nb):
    problems = points_table_problems(_released_cells(built_course, nb))
    assert not problems, "\n".join(problems)


def _answers() -> dict[str, dict[str, list[str]]]:
    """``{assignment/name: {answer id: its significant solution lines}}`` of every notebook."""
    return {f"{nb.assignment}/{nb.name}": solution_regions(nb.read().cells) for nb in NOTEBOOKS}


def _raw_cells(nb) -> list:
    """The solution text's cells as written (provided answers not filled in)."""
    return jupytext.read(nb.solution_text, fmt="py:percent").cells


def _provided_to(nb) -> set[str]:
    """The grade ids of the earlier answer cells that ``nb``'s solution asks to be given."""
    requests = [c.source for c in _raw_cells(nb) if REQUEST.search(c.source)]
    names = {name for source in requests for name in requested_names(source)}
    return {
        grade_id(cell)
        for other in NOTEBOOKS
        for cell in _raw_cells(other)
        if is_answer_cell(cell) and names & set(DEFINED.findall(cell.source))
    }


def test_lab_utils_holds_no_answer_of_any_notebook():
    sources = "\n".join(p.read_text() for p in sorted((REPO / "lab_utils").rglob("*.py")))
    found = {nb: leaked(regions, sources) for nb, regions in _answers().items()}
    assert not any(found.values()), f"answers in lab_utils: {found}"


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_release_holds_no_answer_except_those_provided_to_it(built_course, nb):
    release = nb.release_notebook(built_course / "release")
    text = "\n".join(c.source for c in nbformat.read(release, as_version=4).cells)
    allowed = _provided_to(nb)
    found = {
        other: [
            a
            for a in leaked(regions, text)
            if other == IDS[NOTEBOOKS.index(nb)] or a not in allowed
        ]
        for other, regions in _answers().items()
    }
    assert not any(found.values()), f"answers readable in {release.name}: {found}"


@pytest.mark.notebooks
@pytest.mark.parametrize(
    "nb", [n for n in NOTEBOOKS if _provided_to(n)], ids=lambda n: n.assignment
)
def test_release_holds_the_reference_answers_it_asks_for_in_a_locked_cell(built_course, nb):
    cells = nbformat.read(nb.release_notebook(built_course / "release"), as_version=4).cells
    requests = [c for c in _raw_cells(nb) if REQUEST.search(c.source)]
    expected = [
        provided_source(requested_names(c.source), nb.assignment).rstrip("\n") for c in requests
    ]
    given = [c for c in cells if c.source in expected]
    assert len(given) == len(expected) and all(c.metadata.get("editable") is False for c in given)
    earlier = {
        a
        for n in NOTEBOOKS
        if n.assignment < nb.assignment
        for a in solution_regions(n.read().cells)
    }
    assert _provided_to(nb) <= earlier, "only answers of earlier assignments may be provided"


# A tiny notebook released by nbgrader's own preprocessors with the course's config, so the checks
# are seen to reject the mistakes they exist for.


def _meta(grade_id: str, *, grade=False, solution=False, locked=False, points=0) -> dict:
    meta = {"grade_id": grade_id, "grade": grade, "solution": solution, "locked": locked}
    meta |= {"schema_version": 3} | ({"points": points} if grade else {})
    return {"nbgrader": meta}


TABLE = """\
# Doubling

| exercise | function | points |
| --- | --- | --- |
| 1 | `double(x)` | 3 |
| written | why doubling is exact | 2 |
| | **total** | **5** |
"""
QUESTION = (
    "**Written question (2 points, graded by hand).** Why is doubling a float exact, while "
    "adding a third of it is not? Answer in a few sentences."
)
MODEL_ANSWER = "**Model answer.** Doubling only changes the exponent."


def intro(text: str = TABLE):
    return new_markdown_cell(text)


def answer():
    source = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    return new_code_cell(source, metadata=_meta("double_answer", solution=True))


def check_cell(grade_id: str = "double_tests", points: int = 2):
    meta = _meta(grade_id, grade=True, locked=True, points=points)
    return new_code_cell("assert double(2) == 4", metadata=meta)


def written(text: str = MODEL_ANSWER, grade_id: str = "why_exact"):
    meta = _meta(grade_id, grade=True, solution=True, points=2)
    return new_markdown_cell(text, metadata=meta)


def prompt(text: str = QUESTION):
    return new_markdown_cell(text)


def released(*cells) -> list:
    """``cells`` as the release shows them: solutions replaced by stubs, other cells locked."""
    kernelspec = {"name": "python3", "language": "python", "display_name": "Python 3"}
    notebook = new_notebook(cells=list(cells), metadata={"kernelspec": kernelspec})
    config = course_config()
    for preprocessor in (ClearSolutions(config=config), LockCells(config=config)):
        notebook, _ = preprocessor.preprocess(notebook, {})
    return notebook.cells


def good() -> list:
    """Answer, two test cells (2 + 1 points), a prompt and a hand-graded cell (2 points)."""
    return [answer(), check_cell(), check_cell("double_edge_tests", 1), prompt(), written()]


def test_checks_accept_a_prompt_cell_and_a_full_points_table():
    cells = released(intro(), *good())
    assert prompt_problems(cells) == []
    assert points_table_problems(cells) == []


def test_prompt_check_rejects_a_question_inside_the_answer_cell():
    # notebook 3 before issue 10: a demo cell, then the question and model answer in one cell
    demo = new_code_cell("print(double(3))")
    cells = released(intro(), *good()[:3], demo, written(QUESTION + "\n\n" + MODEL_ANSWER))
    assert cells[-1].source == "YOUR ANSWER HERE"
    problems = prompt_problems(cells)
    assert len(problems) == 1 and "follows a code cell" in problems[0], problems


def test_prompt_check_rejects_a_prompt_without_a_question():
    cells = released(intro(), prompt("Your answer (2 points):"), written())
    assert "no real question" in " ".join(prompt_problems(cells))


def test_prompt_check_rejects_a_prompt_that_does_not_state_the_points():
    cells = released(intro(), prompt(QUESTION.replace("2 points", "3 points")), written())
    assert "does not state '(2 points'" in " ".join(prompt_problems(cells))


def test_prompt_check_rejects_an_editable_prompt():
    cells = released(intro(), prompt(), written())
    cells[-2].metadata["editable"] = True
    assert "not locked" in " ".join(prompt_problems(cells))


def test_points_check_rejects_an_introduction_without_a_points_table():
    # notebook 2 before issue 10: the exercises state no points anywhere in the introduction
    cells = released(intro("# Doubling\n\nYou will write `double`."), answer(), check_cell())
    assert "0 tables with a 'points' column" in " ".join(points_table_problems(cells))


def test_points_check_rejects_points_that_differ_from_the_metadata():
    cells = released(intro(), answer(), check_cell(points=3), *good()[2:])
    problems = " ".join(points_table_problems(cells))
    assert (
        "gives 3 points, the graded cells of double (double_tests, double_edge_tests) give 4"
        in (problems)
    )
    assert "the total row says 5, the graded cells give 6" in problems


def test_points_check_rejects_a_graded_item_missing_from_the_table():
    cells = released(intro(), *good(), prompt(), written(grade_id="why_again"))
    problems = " ".join(points_table_problems(cells))
    assert "why_again (2 points) is listed 0 times" in problems


def test_points_check_rejects_a_row_that_lists_nothing_graded():
    table = TABLE.replace("| written |", "| 2 | `triple(x)` | 1 |\n| written |")
    cells = released(intro(table), *good())
    assert "lists 0 graded items" in " ".join(points_table_problems(cells))
