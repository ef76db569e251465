"""Look at a student's submitted files before nbgrader does: name the problem, never grade it as 0.

Every notebook of a submission gets a status. ``ok`` notebooks are autograded; the others are not,
and the grade sheet shows why instead of a score (a broken file is never a silent zero).
"""

import json
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_tools.grading.cells import grade_id, metadata_problem, released_source
from course_tools.grading.status import Status, most_telling

COLLECT_NOTES = ".collect.json"  # written by course_tools.collect; nbgrader ignores dot files
MAX_NOTEBOOK_BYTES = 50 * 2**20  # a released notebook is well under 1 MB
MAX_JSON_DEPTH = 64  # a notebook nests about 8 deep; deeper is a crafted file


@dataclass(frozen=True)
class NotebookSpec:
    """What the gradebook knows of one released notebook."""

    assignment: str
    name: str
    cell_ids: frozenset[str]
    grade_ids: tuple[str, ...]
    released_locked: dict[str, str] = field(hash=False)  # locked cell id -> source as released

    @property
    def label(self) -> str:
        """``assignment/notebook``."""
        return f"{self.assignment}/{self.name}"


@dataclass
class NotebookCheck:
    """The verdict on one expected notebook of one submission."""

    notebook: str
    status: Status
    message: str = ""
    path: Path | None = None
    notes: list[str] = field(default_factory=list)


def load_specs(db_url: str, course_id: str) -> list[NotebookSpec]:
    """Every notebook of every assignment in the gradebook."""
    from nbgrader.api import Gradebook

    specs = []
    with Gradebook(db_url, course_id) as gb:
        for assignment in gb.assignments:
            for notebook in assignment.notebooks:
                specs.append(
                    NotebookSpec(
                        assignment=assignment.name,
                        name=notebook.name,
                        cell_ids=frozenset(c.name for c in notebook.source_cells),
                        grade_ids=tuple(sorted(g.name for g in notebook.grade_cells)),
                        released_locked={
                            c.name: released_source(c.source)
                            for c in notebook.source_cells
                            if c.locked
                        },
                    )
                )
    return specs


def _depth(value, limit: int) -> int:
    """Nesting depth of parsed JSON, counted without recursion, stopping past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return deepest


def unsafe_file(path: Path) -> str | None:
    """Why ``path`` must not be opened (a symlink, a special file, too big), or None."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return f"{path.name} is a symbolic link: not followed"
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name} is not a regular file"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return f"{path.name} is {info.st_size // 2**20} MB, more than a notebook can be"
    return None


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, Status, str]:
    """``(notebook, OK, "")`` or ``(None, status, message)`` for a file that is not a notebook."""
    if reason := unsafe_file(path):
        return None, Status.UNSAFE_FILE, reason
    raw = path.read_bytes()
    if not raw.strip():
        return None, Status.EMPTY, f"{path.name} is empty ({len(raw)} bytes)"
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        return None, Status.INVALID_JSON, f"{path.name} is not valid JSON ({reason})"
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, Status.NOT_A_NOTEBOOK, f"{path.name} nests deeper than any notebook"
    try:
        with warnings.catch_warnings():  # old notebooks without cell ids are fine
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(json.dumps(data), as_version=4)
            nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several kinds for a JSON file that is no notebook
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            None,
            Status.NOT_A_NOTEBOOK,
            f"{path.name} is JSON but not a notebook ({first[:120]})",
        )
    for index, cell in enumerate(notebook.cells):
        if problem := metadata_problem(cell):
            return None, Status.BAD_METADATA, f"{path.name} cell {index}: {problem}"
    return notebook, Status.OK, ""


def nbgrader_ids(notebook: nbformat.NotebookNode) -> set[str]:
    """The nbgrader ``grade_id`` of every cell that has one."""
    return {grade_id(cell) for cell in notebook.cells if grade_id(cell)}


def identify(notebook: nbformat.NotebookNode, specs: list[NotebookSpec]) -> NotebookSpec | None:
    """The released notebook sharing the most cell ids with ``notebook``, if any."""
    ids = nbgrader_ids(notebook)
    best = max(specs, key=lambda s: (len(ids & s.cell_ids), s.label), default=None)
    return best if best is not None and ids & best.cell_ids else None


def tampering_notes(notebook: nbformat.NotebookNode, spec: NotebookSpec) -> list[str]:
    """Locked cells the student deleted or edited (nbgrader restores them; the sheet says so)."""
    present = {grade_id(cell): cell.source for cell in notebook.cells if grade_id(cell)}
    notes = []
    for cell_id, source in spec.released_locked.items():
        if cell_id not in present:
            if cell_id in spec.grade_ids:
                notes.append(f"test cell {cell_id} was deleted: restored and graded")
        elif released_source(present[cell_id]) != source:
            notes.append(f"locked cell {cell_id} was edited: graded with the original")
    return notes


def check_notebook(
    folder: Path, spec: NotebookSpec, specs: list[NotebookSpec], assignment_files: list[Path]
) -> NotebookCheck:
    """The verdict on ``<folder>/<spec.name>.ipynb`` (``assignment_files``: every notebook there)."""
    expected = folder / f"{spec.name}.ipynb"
    if not os.path.lexists(expected):
        others = [
            p
            for p in assignment_files
            if p.stem not in {s.name for s in specs if s.assignment == spec.assignment}
        ]
        if not others:
            return NotebookCheck(spec.name, Status.MISSING, f"no {expected.name} was submitted")
        names = ", ".join(p.name for p in others)
        for other in others:
            notebook, status, _ = read_notebook(other)
            found = identify(notebook, specs) if notebook is not None else None
            if found is not None and found.assignment != spec.assignment:
                return NotebookCheck(
                    spec.name,
                    Status.OTHER_ASSIGNMENT,
                    f"{other.name} is {found.label}, not {spec.label}",
                    other,
                )
        return NotebookCheck(
            spec.name,
            Status.WRONG_NOTEBOOK,
            f"found {names} but expected {expected.name}: rename it and grade again",
            others[0],
        )
    notebook, status, message = read_notebook(expected)
    if notebook is None:
        return NotebookCheck(spec.name, status, message, expected)
    if not nbgrader_ids(notebook):
        return NotebookCheck(
            spec.name,
            Status.NO_METADATA,
            f"{expected.name} has no nbgrader cells: it was not started from the released notebook",
            expected,
        )
    found = identify(notebook, specs)
    if found is None or found.label != spec.label:
        what = found.label if found else "a notebook this course did not release"
        status = (
            Status.WRONG_NOTEBOOK
            if found and found.assignment == spec.assignment
            else Status.OTHER_ASSIGNMENT
        )
        return NotebookCheck(
            spec.name, status, f"{expected.name} is {what}, not {spec.label}", expected
        )
    if problem := cell_id_problem(notebook, spec):
        return NotebookCheck(
            spec.name, Status.BAD_METADATA, f"{expected.name}: {problem}", expected
        )
    return NotebookCheck(spec.name, Status.OK, "", expected, tampering_notes(notebook, spec))


def cell_id_problem(notebook: nbformat.NotebookNode, spec: NotebookSpec) -> str | None:
    """A grade_id used twice, or one the release never had (nbgrader fails on both), or None."""
    ids = [grade_id(cell) for cell in notebook.cells if grade_id(cell)]
    for cell_id in ids:
        if ids.count(cell_id) > 1:
            return f"grade_id {cell_id!r} appears {ids.count(cell_id)} times (a copied cell?)"
    unknown = sorted(set(ids) - spec.cell_ids)
    if unknown:
        return f"cell {unknown[0]!r} is not in the released notebook"
    return None


def check_submission(
    folder: Path, assignment: str, specs: list[NotebookSpec]
) -> list[NotebookCheck]:
    """One verdict per notebook of ``assignment`` for the submission in ``folder``."""
    files = sorted(folder.glob("*.ipynb"))
    mine = [s for s in specs if s.assignment == assignment]
    checks = [check_notebook(folder, spec, specs, files) for spec in mine]
    expected = {f"{s.name}.ipynb" for s in mine}
    extras = [p.name for p in files if p.name not in expected]
    notes_file = folder / COLLECT_NOTES
    try:
        collected = json.loads(notes_file.read_text()) if notes_file.is_file() else {}
    except (OSError, ValueError):
        collected = {}
    collected = collected if isinstance(collected, dict) else {}
    for check in checks:
        duplicates = collected.get("duplicates", {}).get(f"{check.notebook}.ipynb")
        if duplicates:
            check.notes.append(
                f"duplicate submission: graded the newest file, ignored {', '.join(duplicates)}"
            )
        if check.status == Status.OK and extras:
            check.notes.append(f"ignored extra file(s): {', '.join(extras)}")
    return checks


def overall_status(checks: list[NotebookCheck], run_statuses: list[Status] = ()) -> Status:
    """One status for a student: the most telling problem, else ``graded``."""
    statuses = {c.status for c in checks} | set(run_statuses)
    if any(note.startswith("duplicate submission") for c in checks for note in c.notes):
        statuses.add(Status.DUPLICATE)
    return most_telling(statuses)
