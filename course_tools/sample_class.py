"""A sample class built from ``solutions/`` alone, to try or benchmark the grader without students.

:func:`build_course` releases every assignment into a temporary course (its own source build,
release and gradebook); :func:`sample_class` writes an LMS-style folder of full, half-done and
blank submissions. The tests build their hostile and fixture classes on these helpers.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_tools.course import (
    Notebook,
    assignments,
    build_source,
    course_config,
    nbgrader_api,
    notebooks,
)
from course_tools.grading.cells import grade_id, is_answer_cell, without_solution_markers


@dataclass(frozen=True)
class Course:
    """A temporary course with every assignment released and in its gradebook."""

    root: Path
    source: Path
    release: Path

    def release_notebook(self, nb: Notebook) -> nbformat.NotebookNode:
        """The student version of ``nb``."""
        return nbformat.read(nb.release_notebook(self.release), as_version=4)


def build_course(root: Path, db_url: str | None = None, only: list[str] | None = None) -> Course:
    """Build sources, release every assignment (or ``only`` these) and fill the gradebook.

    Everything lives under ``root``; the gradebook too unless ``db_url`` names another.
    """
    course = Course(root, root / "source", root / "release")
    build_source(course.source)
    config = course_config(
        root,
        source_directory=str(course.source),
        release_directory=str(course.release),
        **({"db_url": db_url} if db_url else {}),
    )
    api = nbgrader_api(config)
    for assignment in only or assignments():
        result = api.generate_assignment(assignment, force=True, create=True)
        assert result["success"], result.get("error") or result.get("log")
    return course


def solution_answers(nb: Notebook) -> dict[str, str]:
    """Every answer cell of the instructor's solution, solution markers removed."""
    cells = nb.read().cells
    return {grade_id(c): without_solution_markers(c.source) for c in cells if is_answer_cell(c)}


def filled(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the release with ``answers`` typed into the answer cells."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if is_answer_cell(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


def sample_class(course: Course, assignment: str, folder: Path, size: int) -> Path:
    """An LMS folder of ``size`` submissions of ``assignment``: full, half done and blank in turn."""
    nb = next(n for n in notebooks() if n.assignment == assignment)
    release = course.release_notebook(nb)
    answers = solution_answers(nb)
    half = dict(list(answers.items())[: len(answers) // 2])
    kinds = [filled(release, answers), filled(release, half), copy.deepcopy(release)]
    folder.mkdir(parents=True)
    for i in range(size):
        path = folder / f"student{i:03d}_{i}_{nb.name}.ipynb"
        nbformat.write(kinds[i % len(kinds)], path)
    return folder
