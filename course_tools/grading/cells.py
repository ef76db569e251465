"""The one reader of nbgrader cell metadata and hidden-test markers, shared by tools and tests."""

from nbformat import NotebookNode
from nbgrader.utils import is_grade, is_locked, is_solution

HIDDEN_BEGIN = "BEGIN HIDDEN TESTS"
HIDDEN_END = "END HIDDEN TESTS"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
_FLAGS = ("grade", "solution", "locked", "task")


class MetadataError(ValueError):
    """A cell's nbgrader metadata is not what nbgrader expects (types, ids)."""


def metadata_problem(cell: NotebookNode) -> str | None:
    """Why ``cell``'s ``metadata.nbgrader`` would crash nbgrader, or None when it is fine."""
    meta = cell.get("metadata", {}).get("nbgrader")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return f"its nbgrader metadata is a {type(meta).__name__}, not an object"
    for flag in _FLAGS:
        if flag in meta and not isinstance(meta[flag], bool):
            return f"nbgrader.{flag} is {meta[flag]!r}, not true/false"
    grade_id = meta.get("grade_id")
    if grade_id is not None and not (isinstance(grade_id, str) and grade_id):
        return f"nbgrader.grade_id is {grade_id!r}, not a non-empty string"
    points = meta.get("points")
    if points is not None and (isinstance(points, bool) or not isinstance(points, int | float)):
        return f"nbgrader.points is {points!r}, not a number"
    return None


def grade_id(cell: NotebookNode) -> str | None:
    """The cell's nbgrader ``grade_id``, or None (metadata must have passed ``metadata_problem``)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") or None if isinstance(meta, dict) else None


def points(cell: NotebookNode) -> float:
    """The points nbgrader awards for a graded cell (0 for others)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return float(meta.get("points", 0)) if isinstance(meta, dict) else 0.0


def is_test_cell(cell: NotebookNode) -> bool:
    """An autograded test cell: a graded code cell that is not an answer."""
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def is_answer_cell(cell: NotebookNode) -> bool:
    """A cell the student writes (code or written answer)."""
    return bool(is_solution(cell))


def is_code_answer(cell: NotebookNode) -> bool:
    """An answer code cell that test cells check (nbgrader: solution, not grade)."""
    return bool(cell.cell_type == "code" and is_solution(cell) and not is_grade(cell))


def is_manual_cell(cell: NotebookNode) -> bool:
    """A graded answer a person scores (nbgrader: grade and solution)."""
    return bool(is_grade(cell) and is_solution(cell))


def is_read_only(cell: NotebookNode) -> bool:
    """Read-only for the student: locked in its nbgrader metadata or by ``lock_all_cells``."""
    return not is_solution(cell) and bool(
        is_locked(cell) or cell.get("metadata", {}).get("editable") is False
    )


def without_solution_markers(source: str) -> str:
    """An answer as a student would type it: ``source`` without its solution marker lines."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def solution_lines(source: str) -> list[str]:
    """The lines between an answer cell's solution markers (what the release replaces by a stub)."""
    lines, inside = [], False
    for line in source.splitlines():
        if SOLUTION_MARKERS[0] in line:
            inside = True
        elif SOLUTION_MARKERS[1] in line:
            inside = False
        elif inside:
            lines.append(line)
    return lines


def split_hidden(source: str) -> tuple[str, str]:
    """``(visible, hidden)`` parts of a test cell; marker lines belong to neither."""
    visible, hidden, inside = [], [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            inside = True
        elif HIDDEN_END in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(visible), "\n".join(hidden)


def hidden_lines(source: str) -> list[str]:
    """The stripped lines of the hidden part that are long enough to be recognised if quoted."""
    return [line.strip() for line in split_hidden(source)[1].splitlines() if len(line.strip()) >= 4]


def released_source(source: str) -> str:
    """A cell source as students see it: hidden tests removed, trailing whitespace normalised."""
    visible = split_hidden(source)[0]
    return "\n".join(line.rstrip() for line in visible.splitlines()).strip()


__all__ = [
    "MetadataError",
    "grade_id",
    "hidden_lines",
    "is_answer_cell",
    "is_code_answer",
    "is_grade",
    "is_locked",
    "is_manual_cell",
    "is_read_only",
    "is_solution",
    "is_test_cell",
    "metadata_problem",
    "points",
    "released_source",
    "solution_lines",
    "split_hidden",
    "without_solution_markers",
]
