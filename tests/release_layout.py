"""What a student must find in a released notebook before any grading happens.

1. **A prompt above every hand-graded cell.** The cell right before a manually graded cell (nbgrader
   ``grade`` and ``solution``) must be a visible, locked markdown cell that asks the question in
   real words and states the cell's points, e.g. ``**Written question (2 points, graded by
   hand).** Why ...?``. A question written inside the answer cell is replaced by the release.
2. **A points table in the introduction.** The introduction is every markdown cell before the
   first code cell. It must hold exactly one markdown table with a ``points`` column::

       | exercise | function | points |
       | --- | --- | --- |
       | 1 | `simulate_int8_quantization(tensor)` | 2 |
       | written | per-channel scales and an exact zero | 2 |
       | | **total** | **15** |

   Graded items are found from nbgrader's metadata: every autograded test cell belongs to the
   function (first ``def`` or ``class``) of the answer cell before it, and its points add up per
   function; every hand-graded cell is an item of its own. A row lists a function item when it
   names the function in backticks (`` `name` `` or `` `name(...)` ``); rows whose first column
   starts with ``written`` list the hand-graded cells, in notebook order. Each row's points must
   equal the item's points in the metadata, every row must list an item, and the rows must add up
   to the notebook's total points. A row with a ``total`` cell is optional; if present, it must
   equal that total.

Cells are classified by :mod:`course_tools.grading.cells` (nbgrader's own ``is_grade``, ``is_solution``
and ``is_locked``).
"""

import re
from dataclasses import dataclass, field

from nbformat import NotebookNode

from course_tools.grading.cells import (
    grade_id,
    is_code_answer,
    is_grade,
    is_manual_cell,
    is_read_only,
    is_test_cell,
    points,
    solution_lines,
)

TEXT_STUB = "YOUR ANSWER HERE"  # c.ClearSolutions.text_stub in nbgrader_config.py
MIN_PROMPT_WORDS = 12
DEFINED = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w*)", re.M)
BACKTICKED = re.compile(r"`([A-Za-z_]\w*)")


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{2,}", text)


def prompt_problems(cells: list[NotebookNode]) -> list[str]:
    """Every hand-graded cell without a visible, locked prompt right before it (empty: all fine)."""
    problems = []
    for i, cell in enumerate(cells):
        if not is_manual_cell(cell):
            continue
        name = f"hand-graded cell {grade_id(cell)!r} ({points(cell):g} points)"
        prompt = cells[i - 1] if i > 0 else None
        if prompt is None or prompt.cell_type != "markdown":
            kind = "nothing" if prompt is None else f"a {prompt.cell_type} cell"
            problems.append(f"{name} follows {kind}, not a markdown prompt")
        elif not is_read_only(prompt):
            problems.append(f"{name}: the prompt before it is not locked (the student can edit it)")
        elif prompt.metadata.get("jupyter", {}).get("source_hidden"):
            problems.append(f"{name}: the prompt before it is hidden")
        elif len(_words(prompt.source.replace(TEXT_STUB, ""))) < MIN_PROMPT_WORDS:
            problems.append(f"{name}: the prompt before it has no real question: {prompt.source!r}")
        elif not re.search(rf"\(\s*{points(cell):g}\s+points?\b", prompt.source):
            problems.append(
                f"{name}: the prompt before it does not state '({points(cell):g} points'"
            )
    return problems


@dataclass
class GradedItem:
    """What the points table must list: one function's test cells, or one hand-graded cell."""

    label: str  # the function, or the hand-graded cell's grade_id
    names: tuple[str, ...]  # names a row may use for it (functions defined by the answer cell)
    written: bool
    points: float = 0.0
    grade_ids: list[str] = field(default_factory=list)


def graded_items(cells: list[NotebookNode]) -> tuple[list[GradedItem], list[str]]:
    """The graded items of a notebook in order, and problems finding them."""
    items: list[GradedItem] = []
    problems = []
    answer: GradedItem | None = None  # the item of the last answer cell
    for cell in cells:
        if is_code_answer(cell):
            names = tuple(DEFINED.findall(cell.source))
            answer = GradedItem(names[0] if names else grade_id(cell), names, written=False)
            added = False
        elif is_manual_cell(cell):
            item = GradedItem(grade_id(cell), (), written=True, points=points(cell))
            item.grade_ids.append(grade_id(cell))
            items.append(item)
        elif is_test_cell(cell):
            if answer is None or not answer.names:
                problems.append(
                    f"test cell {grade_id(cell)!r} follows no answer cell defining a function"
                )
                continue
            if not added:
                items.append(answer)
                added = True
            answer.points += points(cell)
            answer.grade_ids.append(grade_id(cell))
    return items, problems


def introduction(cells: list[NotebookNode]) -> str:
    """The markdown cells before the first code cell, joined."""
    intro = []
    for cell in cells:
        if cell.cell_type == "code":
            break
        if cell.cell_type == "markdown":
            intro.append(cell.source)
    return "\n\n".join(intro)


def _plain(text: str) -> str:
    return text.replace("*", "").replace("_", " ").strip().lower()


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in ``text`` as rows of stripped cells (header first, no separator)."""
    tables: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.strip().startswith("|") and line.strip().endswith("|"):
            cells = [c.strip() for c in line.strip()[1:-1].split("|")]
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def points_table_problems(cells: list[NotebookNode]) -> list[str]:
    """Where the introduction's points table disagrees with the graded cells (empty: all fine)."""
    items, problems = graded_items(cells)
    total = sum(points(c) for c in cells if is_grade(c))
    tables = [t for t in markdown_tables(introduction(cells)) if "points" in map(_plain, t[0])]
    if len(tables) != 1:
        return [
            *problems,
            f"the introduction (markdown before the first code cell) has {len(tables)} tables with "
            f"a 'points' column, not 1: list every graded item with its points ({total:g} in all)",
        ]
    header, *rows = tables[0]
    column = list(map(_plain, header)).index("points")
    listed = 0.0
    times = dict.fromkeys(range(len(items)), 0)  # how often each item is listed
    written = [i for i, item in enumerate(items) if item.written]
    for row in rows:
        try:
            row_points = float(_plain(row[column]))
        except (IndexError, ValueError):
            problems.append(f"row {row} has no number in its points column")
            continue
        if any(_plain(c) == "total" for c in row):
            if row_points != total:
                problems.append(
                    f"the total row says {row_points:g}, the graded cells give {total:g}"
                )
            continue
        listed += row_points
        if _plain(row[0]).startswith("written"):
            found = written[:1]
            written = written[1:]
        else:
            named = set(BACKTICKED.findall(" ".join(row)))
            found = [i for i, item in enumerate(items) if named & set(item.names)]
        if len(found) != 1:
            problems.append(f"row {row} lists {len(found)} graded items, not 1")
            continue
        item = items[found[0]]
        times[found[0]] += 1
        if row_points != item.points:
            problems.append(
                f"row {row} gives {row_points:g} points, the graded cells of {item.label} "
                f"({', '.join(item.grade_ids)}) give {item.points:g}"
            )
    for i, item in enumerate(items):
        if times[i] != 1:
            problems.append(
                f"{item.label} ({item.points:g} points) is listed {times[i]} times in the points "
                "table, not once"
            )
    if listed != total:
        problems.append(f"the points table adds up to {listed:g}, the graded cells to {total:g}")
    return problems


# 3. **No answer where a student of its notebook can read it.** The solution region of every answer
#    cell is absent from ``lab_utils`` and from every release, except the release of a later
#    notebook that asks for it with ``from course_tools.provided import ...`` (released only after
#    the answer's notebook is due).

MIN_ANSWER_LINE = 16  # shorter lines (``return x``, ``else:``) may appear anywhere by chance


def solution_regions(cells: list[NotebookNode]) -> dict[str, list[str]]:
    """``{answer grade_id: the significant stripped lines between its solution markers}``."""
    return {
        grade_id(cell): [
            line.strip()
            for line in solution_lines(cell.source)
            if len(line.strip()) >= MIN_ANSWER_LINE
        ]
        for cell in cells
        if is_code_answer(cell)
    }


def leaked(regions: dict[str, list[str]], text: str) -> list[str]:
    """The answers of which more than two thirds of the significant lines are lines of ``text``.

    A copied answer has them all; a generic training loop shares about half of ``distill``'s.
    """
    present = {line.strip() for line in text.splitlines()}
    return [
        answer
        for answer, lines in regions.items()
        if lines and sum(line in present for line in lines) * 3 > 2 * len(lines)
    ]
