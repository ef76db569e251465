"""Look at a student's submitted files before nbgrader does: name the problem, never grade it as 0.

Every notebook of a submission gets a status. ``ok`` notebooks are autograded; the others are not,
and the grade sheet shows why instead of a score (a broken file is never a silent zero).
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

OK = "ok"
# Not graded, most telling first: a student with several problems shows the first.
NOT_GRADED = (
    "empty",
    "invalid-json",
    "not-a-notebook",
    "no-metadata",
    "other-assignment",
    "wrong-notebook",
    "missing",
    "autograde-error",
)
# Graded as far as possible, most serious first.
GRADED_WITH_PROBLEMS = ("kernel-died", "memory", "timeout", "duplicate")
GRADED = "graded"
COLLECT_NOTES = ".collect.json"  # written by course_tools.collect; nbgrader ignores dot files


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
    status: str
    message: str = ""
    path: Path | None = None
    notes: list[str] = field(default_factory=list)


def released_source(source: str) -> str:
    """A gradebook cell source as students see it: hidden tests removed, whitespace normalised."""
    lines, inside = [], False
    for line in source.splitlines():
        if "BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            lines.append(line.rstrip())
    return "\n".join(lines).strip()


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


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str, str]:
    """``(notebook, OK, "")`` or ``(None, status, message)`` for a file that is not a notebook."""
    raw = path.read_bytes()
    if not raw.strip():
        return None, "empty", f"{path.name} is empty ({len(raw)} bytes)"
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        return None, "invalid-json", f"{path.name} is not valid JSON ({exc})"
    try:
        with warnings.catch_warnings():  # old notebooks without cell ids are fine
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(json.dumps(data), as_version=4)
            nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several kinds for a JSON file that is no notebook
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, "not-a-notebook", f"{path.name} is JSON but not a notebook ({first[:120]})"
    return notebook, OK, ""


def nbgrader_ids(notebook: nbformat.NotebookNode) -> set[str]:
    """The nbgrader ``grade_id`` of every cell that has one."""
    return {
        cell.metadata["nbgrader"]["grade_id"]
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade_id")
    }


def identify(notebook: nbformat.NotebookNode, specs: list[NotebookSpec]) -> NotebookSpec | None:
    """The released notebook sharing the most cell ids with ``notebook``, if any."""
    ids = nbgrader_ids(notebook)
    best = max(specs, key=lambda s: (len(ids & s.cell_ids), s.label), default=None)
    return best if best is not None and ids & best.cell_ids else None


def tampering_notes(notebook: nbformat.NotebookNode, spec: NotebookSpec) -> list[str]:
    """Locked cells the student deleted or edited (nbgrader restores them; the sheet says so)."""
    present = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade_id")
    }
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
    if not expected.exists():
        others = [
            p
            for p in assignment_files
            if p.stem not in {s.name for s in specs if s.assignment == spec.assignment}
        ]
        if not others:
            return NotebookCheck(spec.name, "missing", f"no {expected.name} was submitted")
        names = ", ".join(p.name for p in others)
        for other in others:
            notebook, status, _ = read_notebook(other)
            found = identify(notebook, specs) if notebook is not None else None
            if found is not None and found.assignment != spec.assignment:
                return NotebookCheck(
                    spec.name,
                    "other-assignment",
                    f"{other.name} is {found.label}, not {spec.label}",
                    other,
                )
        return NotebookCheck(
            spec.name,
            "wrong-notebook",
            f"found {names} but expected {expected.name}: rename it and grade again",
            others[0],
        )
    notebook, status, message = read_notebook(expected)
    if notebook is None:
        return NotebookCheck(spec.name, status, message, expected)
    if not nbgrader_ids(notebook):
        return NotebookCheck(
            spec.name,
            "no-metadata",
            f"{expected.name} has no nbgrader cells: it was not started from the released notebook",
            expected,
        )
    found = identify(notebook, specs)
    if found is None or found.label != spec.label:
        what = found.label if found else "a notebook this course did not release"
        status = (
            "wrong-notebook"
            if found and found.assignment == spec.assignment
            else "other-assignment"
        )
        return NotebookCheck(
            spec.name, status, f"{expected.name} is {what}, not {spec.label}", expected
        )
    return NotebookCheck(spec.name, OK, "", expected, tampering_notes(notebook, spec))


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
    collected = json.loads(notes_file.read_text()) if notes_file.exists() else {}
    for check in checks:
        duplicates = collected.get("duplicates", {}).get(f"{check.notebook}.ipynb")
        if duplicates:
            check.notes.append(
                f"duplicate submission: graded the newest file, ignored {', '.join(duplicates)}"
            )
        if check.status == OK and extras:
            check.notes.append(f"ignored extra file(s): {', '.join(extras)}")
    return checks


def overall_status(checks: list[NotebookCheck], run_statuses: list[str] = ()) -> str:
    """One status for a student: the most telling problem, else ``graded``."""
    statuses = {c.status for c in checks} | set(run_statuses)
    for status in NOT_GRADED:
        if status in statuses:
            return status
    for status in GRADED_WITH_PROBLEMS:
        if status in statuses:
            return status
    if any(note.startswith("duplicate submission") for c in checks for note in c.notes):
        return "duplicate"
    return GRADED
