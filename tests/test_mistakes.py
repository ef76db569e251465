"""Every solution passes its own tests in-process, and every listed wrong answer fails them."""

import importlib.util

import pytest

from course_tools.course import REPO, notebooks
from tests.notebook_harness import Mistake, run_graded


def _mistakes() -> list[tuple[str, Mistake]]:
    """``(assignment, mistake)`` for every ``tests/mistakes/<assignment>.py`` present."""
    found = []
    for nb in notebooks():
        path = REPO / "tests" / "mistakes" / f"{nb.assignment}.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location(f"mistakes_{nb.assignment}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            found += [(nb.assignment, m) for m in module.MISTAKES]
    return found


NOTEBOOKS = {nb.assignment: nb for nb in notebooks()}


@pytest.mark.parametrize("assignment", sorted(NOTEBOOKS))
def test_every_assignment_lists_its_wrong_answers(assignment):
    assert (REPO / "tests" / "mistakes" / f"{assignment}.py").exists(), (
        f"Add tests/mistakes/{assignment}.py with the plausible wrong answers its tests must reject."
    )


@pytest.mark.parametrize("assignment", sorted(NOTEBOOKS))
def test_solution_passes_every_test_cell(assignment):
    results = run_graded(NOTEBOOKS[assignment])
    assert results, "the notebook has no autograded test cell"
    failed = {gid: repr(err) for gid, err in results.items() if err is not None}
    assert not failed


@pytest.mark.parametrize(
    ("assignment", "mistake"), _mistakes(), ids=lambda v: v.name if isinstance(v, Mistake) else v
)
def test_wrong_answer_fails_its_tests(assignment, mistake):
    results = run_graded(
        NOTEBOOKS[assignment], {mistake.answer_id: mistake.source, **mistake.extra}
    )
    for test_id in mistake.fails:
        assert test_id in results, f"no test cell {test_id!r}"
        assert results[test_id] is not None, f"{mistake.name}: {test_id} passed a wrong answer"
