"""Run a solution notebook's code cells in-process, as nbgrader grades them, with answers swapped.

Fast (no kernel start-up), so every plausible wrong answer can be checked against the hidden tests.
"""

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

from course_tools.course import Notebook
from course_tools.grading.cells import grade_id, is_test_cell

matplotlib.use("Agg")


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer: ``source`` replaces answer cell ``answer_id``; ``fails`` must fail."""

    name: str
    answer_id: str
    source: str
    fails: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)  # more answer cells to replace, by grade_id


def run_graded(
    notebook: Notebook, replace: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, BaseException | None]:
    """Execute every code cell in one namespace with ``NBGRADER_EXECUTION`` set (demos skipped).

    Returns ``{test grade_id: None if it passed, else the exception}``. Cells whose grade_id is in
    ``replace`` get that source instead (a student's answer).
    """
    replace = replace or {}
    cells = notebook.read().cells
    unknown = set(replace) - {grade_id(c) for c in cells}
    if unknown:
        raise KeyError(f"{notebook.name} has no cell with grade_id {sorted(unknown)}")
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, BaseException | None] = {}
    old_env = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    old_cwd = os.getcwd()
    os.chdir(cwd or notebook.solution_text.parent)
    try:
        for cell in cells:
            if cell.cell_type != "code":
                continue
            source = replace.get(grade_id(cell), cell.source)
            error = None
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(source, f"<{notebook.name}:{grade_id(cell)}>", "exec"), namespace)
            except Exception as exc:  # a student's cell may raise anything
                error = exc
            if is_test_cell(cell):
                results[grade_id(cell)] = error
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = old_env
        import matplotlib.pyplot as plt

        plt.close("all")
    return results
