"""Read the student's code cells before running them: flag code that reaches for grader internals.

A flag is not a verdict: the notebook is still graded, and the sheet shows ``flagged`` with each
reason so that a person can look. The student's code is every answer cell and every code cell
that is not, word for word, one of the instructor's. Flagged is code that

- touch the interpreter's hooks or its history (``sys.displayhook``, ``sys.settrace``,
  ``get_ipython``, ``In``/``Out``/``_ih``, ``builtins``, ...), frames and callers
  (``sys._getframe``, ``inspect``, ``traceback``, ``f_back``, ...), the garbage collector's
  referrers, or run code they build at run time (``exec``, ``eval``, ``compile``, ``__import__``);
- look attributes of a module or builtin up by a name computed at run time
  (``getattr(sys, "display" + "hook")``);
- patch what the tests rely on: assign an attribute of an imported module or class
  (``torch.allclose = ...``, also through an alias ``t = torch``), or rebind at the top level a
  name a locked cell imports or defines (a helper the tests call) or a builtin.

IPython syntax (``%magic``, ``!cmd``) is translated first, so ``!cat ...`` counts as
``get_ipython``.
"""

import ast
import builtins

from IPython.core.inputtransformer2 import TransformerManager
from nbformat import NotebookNode

from course_tools.grading.cells import grade_id, is_answer_cell, is_locked

FORBIDDEN_NAMES = frozenset(
    {
        "get_ipython", "In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii", "exec", "eval",
        "quit", "exit",
        "compile", "__import__", "globals", "vars", "breakpoint", "__builtins__", "__loader__",
        "__spec__",
    }
)  # fmt: skip
FORBIDDEN_MODULES = frozenset(
    {
        "builtins", "gc", "inspect", "traceback", "linecache", "ctypes", "importlib", "IPython",
        "ipykernel", "subprocess", "multiprocessing", "threading", "_thread", "signal", "atexit",
        "faulthandler", "pty", "socket", "pickle", "marshal", "types", "code", "codeop", "runpy",
        "zmq", "jupyter_client", "nbgrader", "course_tools", "sqlite3", "sqlalchemy", "dis",
    }
)  # fmt: skip
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "displayhook", "excepthook", "settrace", "setprofile", "gettrace", "_getframe",
        "f_back", "f_globals", "f_locals", "f_code", "tb_frame", "gi_frame", "cr_frame",
        "__traceback__", "__globals__", "__code__", "__closure__", "__subclasses__", "__dict__",
        "__class__", "__bases__", "__mro__", "__builtins__", "ast_transformers",
        "input_transformers_post", "input_transformers_cleanup", "ast_node_interactivity",
        "events", "user_ns", "history_manager", "shell_handlers", "modules", "meta_path",
        "get_referrers", "get_referents", "system", "popen", "spawn", "fork", "_exit",
        "__setattr__", "__delattr__", "__getattribute__", "formatwarning", "showwarning",
        "extract_stack", "extract_tb", "format_stack", "format_tb", "exc_info", "stack_info",
        "walk_stack", "walk_tb", "tb_next", "_ip", "kernel", "session", "shell", "get_ipython",
        "__import__", "_ih", "_oh", "_dh", "linecache", "inspect", "gc", "traceback", "builtins",
        "ctypes", "importlib", "subprocess", "IPython", "ipykernel",
        "last_execution_result", "displayhook_class",
    }
)  # fmt: skip
BUILTIN_NAMES = frozenset(dir(builtins))
IPYTHON = TransformerManager()


def _imports(tree: ast.AST) -> dict[str, str]:
    """``{bound name: what it imports}`` for the import statements in ``tree``."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                found[name] = alias.name if alias.asname else name
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _root_name(node: ast.AST) -> str | None:
    """``torch`` for ``torch.nn.functional.gelu``."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(IPYTHON.transform_cell(source))
    except (SyntaxError, ValueError):
        return None  # it fails when it runs; nothing to flag


def _top_level_bindings(tree: ast.Module, protected: dict[str, str]) -> set[str]:
    """Names a cell binds at module level (what later test cells see); re-imports of the same thing don't count."""
    bound = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            same = {k for k, v in _imports(node).items() if protected.get(k) == v}
            bound |= set(_imports(node)) - same
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    bound.add(target.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Global | ast.Nonlocal):
            bound |= set(node.names)
    return bound


def audit_cell(source: str, protected: dict[str, str]) -> list[str]:
    """Why ``source`` (one answer cell) needs a person's review.

    ``protected``: what the locked cells import, ``{name: module or object}``; the cell must not
    patch or rebind those names, nor builtins.
    """
    tree = _parse(source)
    if tree is None:
        return []
    found = []
    imported = _imports(tree)
    modules = set(imported) | set(_aliases(tree, {**protected, **imported}))
    # ``model.modules()`` is nn.Module's method; ``sys.modules`` is a dict and is never called.
    called_modules = {
        id(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "modules"
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"line {line}: uses {node.id}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in FORBIDDEN_ATTRIBUTES
            and id(node) not in called_modules
        ):
            found.append(f"line {line}: uses .{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names]  # ``from tracemalloc import linecache`` too
            for module in names:
                if module.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {line}: imports {module}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in FORBIDDEN_ATTRIBUTES | FORBIDDEN_NAMES:
                found.append(f"line {line}: names {node.value!r}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute | ast.Subscript):
                    root = _root_name(target)
                    if root in protected or root in BUILTIN_NAMES:
                        found.append(f"line {line}: patches {ast.unparse(target)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            computed = len(node.args) > 1 and not isinstance(node.args[1], ast.Constant)
            on = _root_name(node.args[0]) if node.args else None
            reachable = on in modules or on in protected or on in BUILTIN_NAMES
            if (
                node.func.id in {"getattr", "setattr", "delattr", "hasattr"}
                and computed
                and reachable
            ):
                found.append(f"line {line}: {node.func.id} on {on} with a computed name")
            if node.func.id in {"setattr", "delattr"} and node.args:
                root = _root_name(node.args[0])
                if root in protected or root in BUILTIN_NAMES:
                    found.append(f"line {line}: patches {root} with {node.func.id}")
    if isinstance(tree, ast.Module):
        shadowed = _top_level_bindings(tree, protected) & (set(protected) | BUILTIN_NAMES)
        found += [f"rebinds {name}" for name in sorted(shadowed)]
    return list(dict.fromkeys(found))


def _aliases(tree: ast.AST, protected: dict[str, str]) -> dict[str, str]:
    """Names assigned from a protected name (``t = torch``): patching them patches the original."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            root = _root_name(node.value)
            if root in protected or root in BUILTIN_NAMES:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            found[name.id] = f"alias of {root}"
    return found


def _locked_definitions(tree: ast.Module) -> dict[str, str]:
    """Top-level functions and classes of a locked cell (helpers the tests call)."""
    return {
        node.name: "defined by a locked cell"
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def is_student_cell(cell: NotebookNode, instructor: frozenset[str]) -> bool:
    """Code the student wrote: an answer cell, or a code cell nbgrader does not restore (not
    locked, no test) whose text is not the instructor's."""
    if cell.cell_type != "code":
        return False
    return is_answer_cell(cell) or not (is_locked(cell) or cell.source in instructor)


def instructor_code(source: NotebookNode) -> frozenset[str]:
    """The text of every code cell of the instructor's source notebook that is not an answer."""
    return frozenset(
        c.source for c in source.cells if c.cell_type == "code" and not is_answer_cell(c)
    )


def audit_answers(nb: NotebookNode, instructor: frozenset[str]) -> list[str]:
    """Every reason to review the student's code cells of ``nb``, each naming its cell.

    ``instructor``: the code cells as released (:func:`instructor_code`); an edited copy of one of
    them is the student's code too.
    """
    protected: dict[str, str] = {}
    for source in sorted(instructor):
        if isinstance(tree := _parse(source), ast.Module):
            protected |= _imports(tree)
            protected |= {k: v for k, v in _locked_definitions(tree).items() if k not in protected}
    for cell in nb.cells:
        if is_student_cell(cell, instructor) and (tree := _parse(cell.source)) is not None:
            protected |= {k: v for k, v in _aliases(tree, protected).items() if k not in protected}
    reasons = []
    for index, cell in enumerate(nb.cells):
        if is_student_cell(cell, instructor):
            label = grade_id(cell) or f"added cell {index}"
            reasons += [f"{label} {reason}" for reason in audit_cell(cell.source, protected)]
    return reasons
