"""Reference answers of earlier notebooks, provided to a later one (the capstone) at release time.

A later notebook's solution text asks for them with one locked cell::

    from course_tools.provided import kd_loss, prune_model

When ``course_tools.course`` reads a solution, that cell becomes the code of those functions, taken
from the answer cells of the earlier assignments' solutions (the ``### BEGIN/END SOLUTION`` marker
lines removed), with the imports they need. So the answers live only in ``solutions/``: never in
``lab_utils`` and never in the release of the notebook that asks for them. The release that
receives them must go out only after the earlier assignments are due (README, "Release order").
Importing a name from this module in-process gives the same function, for running the text as is.
"""

import ast
import re
from functools import cache
from pathlib import Path

import jupytext
from nbformat import NotebookNode

import lab_utils
from course_tools.grading.cells import is_code_answer, without_solution_markers

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
REQUEST = re.compile(r"^from course_tools\.provided import ", re.M)
DEFINED = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w*)", re.M)
# What the provided code may use besides lab_utils' exports, as the import that binds it (in
# ruff's isort order).
IMPORTS = {
    "copy": "import copy",
    "math": "import math",
    "torch": "import torch",
    "F": "import torch.nn.functional as F",
    "nn": "from torch import nn",
    "DataLoader": "from torch.utils.data import DataLoader",
}
STDLIB = ("copy", "math")


@cache
def answer_cells() -> dict[str, tuple[str, str]]:
    """``{function name: (assignment, answer cell source)}`` over every solution notebook."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(SOLUTIONS.glob("*/*.py")):
        if path.name.startswith("_"):
            continue
        for cell in jupytext.read(path, fmt="py:percent").cells:
            if is_code_answer(cell):
                for name in DEFINED.findall(cell.source):
                    found[name] = (path.parent.name, cell.source)
    return found


def requested_names(source: str) -> list[str]:
    """The names a ``from course_tools.provided import ...`` cell asks for, in its order."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "course_tools.provided":
            names += [alias.name for alias in node.names]
    return names


def provided_source(names: list[str], for_assignment: str | None = None) -> str:
    """The code of the answers ``names`` (solution markers removed), with the imports they use.

    ``for_assignment``: the assignment receiving them; only answers of assignments sorted before it
    may be provided (they are due before it is released).
    """
    answers = answer_cells()
    missing = [name for name in names if name not in answers]
    if missing:
        raise KeyError(f"No answer cell in solutions/ defines {missing}.")
    too_late = [n for n in names if for_assignment and answers[n][0] >= for_assignment]
    if too_late:
        raise ValueError(
            f"{for_assignment} may only receive answers of earlier assignments, not {too_late}."
        )
    sources: list[str] = []
    for name in names:
        source = answers[name][1]
        if source not in sources:
            sources.append(source)
    body = "\n\n\n".join(without_solution_markers(source).strip() for source in sources)
    used = {node.id for node in ast.walk(ast.parse(body)) if isinstance(node, ast.Name)}
    lines = [IMPORTS[name] for name in IMPORTS if name in used]
    lab = sorted(name for name in used if name in lab_utils.__all__)
    stdlib = [line for line in lines if line.split()[1] in STDLIB]
    third = [line for line in lines if line not in stdlib]
    blocks = [b for b in (stdlib, third) if b]
    if lab:
        blocks.append([f"from lab_utils import {', '.join(lab)}"])
    origin = sorted({answers[name][0] for name in names})
    header = (
        f"# Reference answers of {', '.join(origin)}, copied from the instructor's solutions\n"
        "# when this notebook was released, after those assignments were due.\n"
    )
    imports = "\n\n".join("\n".join(block) for block in blocks)
    return f"{header}{imports}\n\n\n{body}\n"


def expand(notebook: NotebookNode, assignment: str) -> NotebookNode:
    """``notebook`` with every ``from course_tools.provided import ...`` cell replaced by the code."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and REQUEST.search(cell.source):
            cell.source = provided_source(requested_names(cell.source), assignment).rstrip("\n")
    return notebook


def __getattr__(name: str):
    """``from course_tools.provided import kd_loss`` in-process: the reference answer itself."""
    if name.startswith("__") or name not in answer_cells():
        raise AttributeError(name)
    assignment = answer_cells()[name][0]
    # the answers of one notebook call each other
    siblings = [n for n, (a, _) in answer_cells().items() if a == assignment]
    namespace: dict = {}
    exec(compile(provided_source(siblings), f"<provided by {assignment}>", "exec"), namespace)
    return namespace[name]
