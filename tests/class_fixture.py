"""A fixture class for the grading tests, built from ``solutions/`` and ``tests/mistakes/``.

:func:`build_course` releases every assignment into a temporary course (its own source build,
release and gradebook). :func:`build_class` writes, for one assignment, the files a class hands in
(an LMS download folder and an nbgrader-layout folder) and returns what grading each student must
give: a status, and the points of every autograded test cell, derived from the cells' ``points``
and from running the notebook's cells in-process with the student's answers (``run_graded``).
"""

import copy
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_tools.course import (
    REPO,
    Notebook,
    notebooks,
)
from course_tools.grading.cells import (
    grade_id,
    hidden_lines,
    is_answer_cell,
    is_test_cell,
    points,
    released_source,
)
from course_tools.sample_class import Course, filled, solution_answers
from tests.notebook_harness import Mistake, run_graded

# Limits used by the tests: small, but far above what a correct notebook needs while grading.
CELL_TIMEOUT = 15
NOTEBOOK_TIMEOUT = 40
MEMORY_MB = 3072
HOG_MB = MEMORY_MB + 1024  # more than the kernel may have, well below the machine's memory
LOOP = "while True:  # never ends; it sleeps so that the test burns no CPU\n    time.sleep(0.1)\n"


def run_tool(
    module: str, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``python -m course_tools.<module> ...`` from the repo; fail the test if it fails (``check``)."""
    done = subprocess.run(
        [sys.executable, "-m", f"course_tools.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@dataclass
class Expected:
    """What grading must give one student: status, points per test cell (None: not graded)."""

    student: str
    status: str
    points: dict[str, float] | None
    message: str = ""  # a fragment the sheet's message must contain

    @property
    def total(self) -> float | None:
        """Expected total (manual cells are not graded yet, or 0 when left blank)."""
        return None if self.points is None else sum(self.points.values())


@dataclass
class ClassFiles:
    """Where the class's files are and what grading each must give."""

    lms: Path  # flat folder, Canvas-style names (each with a Canvas user id)
    layout: Path  # nbgrader's <student>/<assignment>/ layout
    roster: Path  # the LMS roster: import it before collecting ``lms`` (maps user id -> student)
    expected: dict[str, Expected] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)  # LMS files collect must report


def mistakes(assignment: str) -> list[Mistake]:
    """``MISTAKES`` of ``tests/mistakes/<assignment>.py`` (empty if there is none)."""
    path = REPO / "tests" / "mistakes" / f"{assignment}.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"class_mistakes_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MISTAKES)


def test_points(nb: Notebook) -> dict[str, float]:
    """``{test cell id: points}`` for the autograded test cells, in notebook order."""
    cells = nb.read().cells
    return {grade_id(c): points(c) for c in cells if is_test_cell(c)}


def position(nb: nbformat.NotebookNode, cell_id: str) -> int:
    """Index of the cell with ``grade_id`` ``cell_id``."""
    return next(i for i, c in enumerate(nb.cells) if grade_id(c) == cell_id)


def with_cells_after(
    nb: nbformat.NotebookNode, cell_id: str, sources: list[str]
) -> nbformat.NotebookNode:
    """A copy of ``nb`` with new code cells (a student's additions) after cell ``cell_id``."""
    nb = copy.deepcopy(nb)
    at = position(nb, cell_id) + 1
    nb.cells[at:at] = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def first_code_answer(nb: nbformat.NotebookNode) -> str:
    """The grade id of the first code answer cell."""
    return next(grade_id(c) for c in nb.cells if c.cell_type == "code" and is_answer_cell(c))


def points_until(points: dict[str, float], last: str) -> dict[str, float]:
    """Full points for the tests up to and including ``last``, 0 for the later ones."""
    ids = list(points)
    return {t: (p if ids.index(t) <= ids.index(last) else 0.0) for t, p in points.items()}


def harness_points(nb: Notebook, replace: dict[str, str]) -> dict[str, float]:
    """Points each test earns with ``replace`` as the answers (cells run in-process)."""
    points = test_points(nb)
    results = run_graded(nb, replace)
    return {t: (p if results[t] is None else 0.0) for t, p in points.items()}


def build_class(course: Course, assignment: str, folder: Path) -> ClassFiles:
    """Write the class's files for ``assignment`` under ``folder``; return the expectations."""
    mine = [nb for nb in notebooks() if nb.assignment == assignment]
    assert len(mine) == 1, "the fixture class covers one notebook per assignment"
    nb = mine[0]
    files = ClassFiles(folder / "lms", folder / "layout", folder / "roster.csv")
    files.lms.mkdir(parents=True)
    lms_ids: dict[str, int] = {}
    release = course.release_notebook(nb)
    answers = solution_answers(nb)
    points = test_points(nb)
    full = filled(release, answers)
    tests = list(points)
    first_answer = first_code_answer(release)
    stubs = {
        grade_id(c): c.source for c in release.cells if c.cell_type == "code" and is_answer_cell(c)
    }

    def lms(
        student: str, nb_: nbformat.NotebookNode | str, name: str = nb.name, n: int = 1
    ) -> Path:
        lms_id = lms_ids.setdefault(student, 1000 + len(lms_ids))
        path = files.lms / f"{student}_{lms_id}_{5000 + n}_{name}.ipynb"
        path.write_text(nb_ if isinstance(nb_, str) else nbformat.writes(nb_))
        return path

    def layout(student: str, nb_: nbformat.NotebookNode) -> None:
        path = files.layout / student / assignment / f"{nb.name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb_, path)

    def expect(student: str, status: str, pts: dict | None, message: str = "") -> None:
        files.expected[student] = Expected(student, status, pts, message)

    full_points = dict(points)
    layout("full", full)
    expect("full", "graded", full_points)
    layout("blank", release)
    expect("blank", "graded", harness_points(nb, stubs))

    picked = mistakes(assignment)[:1]
    for i, mistake in enumerate(picked, 1):
        replace = {mistake.answer_id: mistake.source, **mistake.extra}
        lms(f"partial{i}", filled(release, {**answers, **replace}))
        expect(f"partial{i}", "graded", harness_points(nb, replace))

    broken = {first_answer: 'raise ValueError("my answer is broken")\n'}
    lms("raises", filled(release, {**answers, **broken}))
    expect("raises", "graded", harness_points(nb, broken), "exception in")

    if picked:
        mistake = picked[0]
        replace = {mistake.answer_id: mistake.source, **mistake.extra}
        cheat = filled(release, {**answers, **replace})
        target = mistake.fails[0]
        cheat.cells[position(cheat, target)].source = "pass  # the test was in my way\n"
        layout("editedtest", cheat)
        expect("editedtest", "graded", files.expected["partial1"].points, "was edited")
        deleted = filled(release, {**answers, **replace})
        del deleted.cells[position(deleted, target)]
        lms("deletedtest", deleted)
        expect("deletedtest", "graded", files.expected["partial1"].points, "was deleted")

    endless = "import time\n\n" + LOOP
    lms("loop", with_cells_after(full, first_answer, [endless]))
    expect("loop", "timeout", full_points, "cut off by the time limit")
    sleeps = NOTEBOOK_TIMEOUT // (CELL_TIMEOUT - 5) + 2
    slow = [f"import time\n\ntime.sleep({CELL_TIMEOUT - 5})\n"] * sleeps
    lms("slow", with_cells_after(full, tests[0], slow))
    expect("slow", "timeout", points_until(points, tests[0]), "ran past its")
    deaf = (  # swallows the interrupt: killed
        "import time\n\nwhile True:\n    try:\n        time.sleep(0.1)\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    lms("deafloop", with_cells_after(full, tests[0], [deaf]))
    expect("deafloop", "timeout", points_until(points, tests[0]), "the kernel stopped answering")
    lms("crash", with_cells_after(full, tests[0], ["import os\n\nos.kill(os.getpid(), 9)\n"]))
    expect("crash", "kernel-died", points_until(points, tests[0]), "the kernel died")
    hog = f"hog = bytearray({HOG_MB} * 2**20)  # more than the grading kernel may use\n"
    lms("memory", with_cells_after(full, first_answer, [hog]))
    expect("memory", "memory", full_points, "ran out of memory")
    flood = "print('x' * 3_000_000)\nfor i in range(50_000):\n    print(i)\n"
    lms("hugeoutput", with_cells_after(full, first_answer, [flood]))
    expect("hugeoutput", "graded", full_points, "output truncated")

    older = lms("duplicate", release, n=1)
    newer = lms("duplicate", full, name=f"{nb.name}-1", n=2)
    os.utime(older, (1_700_000_000, 1_700_000_000))
    os.utime(newer, (1_700_000_600, 1_700_000_600))
    expect("duplicate", "duplicate", full_points, older.name)

    text = nbformat.writes(full)
    lms("invalidjson", text[: len(text) // 2])
    expect("invalidjson", "invalid-json", None, "is not valid JSON")
    lms("empty", "")
    expect("empty", "empty", None, "is empty")
    lms("wrongname", full, name="Untitled")
    expect("wrongname", "wrong-notebook", None, "Untitled.ipynb")
    lms("otherassignment", other_assignment(course, assignment), n=3)
    expect("otherassignment", "other-assignment", None, "not ")
    stripped = copy.deepcopy(full)
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    lms("nometadata", stripped)
    expect("nometadata", "no-metadata", None, "no nbgrader cells")

    (files.lms / "readme.txt").write_text("my notebook is attached\n")
    (files.lms / f"{nb.name}.ipynb").write_text(nbformat.writes(full))  # no student id
    files.unmatched = ["readme.txt", f"{nb.name}.ipynb"]
    rows = [f"{lms_id},{student},{student}\n" for student, lms_id in lms_ids.items()]
    files.roster.write_text("lms_user_id,name,student_id\n" + "".join(rows))
    return files


def other_assignment(course: Course, assignment: str) -> nbformat.NotebookNode:
    """A filled notebook of another assignment (or, alone, one with foreign cell ids)."""
    others = [nb for nb in notebooks() if nb.assignment != assignment]
    if others:
        other = others[0]
        return filled(course.release_notebook(other), solution_answers(other))
    mine = next(nb for nb in notebooks() if nb.assignment == assignment)
    nb = course.release_notebook(mine)
    for cell in nb.cells:
        if grade_id(cell):
            cell.metadata["nbgrader"]["grade_id"] = "foreign_" + grade_id(cell)
    return nb


def hidden_test_lines(nb: Notebook) -> list[str]:
    """Lines of hidden tests found nowhere else in the solution: neither release nor feedback may show them."""
    cells = nb.read().cells
    secret = [line for cell in cells for line in hidden_lines(cell.source) if len(line) >= 10]
    visible = "\n".join(
        line.strip() for cell in cells for line in released_source(cell.source).splitlines()
    )
    return [line for line in dict.fromkeys(secret) if line not in visible]
