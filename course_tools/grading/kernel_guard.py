"""Inside the grading kernel: put back what student code may have hooked, before each test cell.

Loaded as an IPython extension when the kernel starts, before any student code, it records the
pristine interpreter: display and exception hooks, trace and profile functions, builtins, IPython's
AST and input transformers, event callbacks, ``ast_node_interactivity`` and the shell and kernel
methods that run a cell. The grader sends ``mcl_guard_request`` on the shell channel before every
part of a test cell; the reply lists what was found changed (and has been put back). After a hidden
part it sends one with ``forget``: the source IPython cached for it leaves ``linecache``. A reply that does not
come, or that lists anything, flags the submission for review.
"""

import builtins
import linecache
import sys
import threading
from collections.abc import Callable

from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult

REQUEST = "mcl_guard_request"
REPLY = "mcl_guard_reply"
SHELL_METHODS = (
    "run_cell",
    "run_cell_async",
    "run_ast_nodes",
    "run_code",
    "transform_cell",
    "transform_ast",
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
)
KERNEL_METHODS = ("do_execute", "execute_request", "dispatch_shell")
MACHINERY_MODULES = ("IPython", "ipykernel", "jupyter_client", "traitlets", "zmq")
# Code of the environment, not of a cell: its prefixes and every site-packages folder on the path
# (an environment may reuse another one's packages through a .pth file, as the JupyterHub test's).
INSTALLED = tuple(
    dict.fromkeys(
        [sys.prefix, sys.base_prefix, *(p for p in sys.path if p.endswith("/site-packages"))]
    )
)
UNSETTABLE = frozenset({"__dict__", "__weakref__", "__doc__", "__module__"})
MISSING = object()


class Guard:
    """The pristine state of one kernel and the means to restore it."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        self.displayhook = sys.displayhook
        self.excepthook = sys.excepthook
        self.builtins = dict(builtins.__dict__)
        self.ast_transformers = list(shell.ast_transformers)
        self.input_post = list(shell.input_transformers_post)
        manager = shell.input_transformer_manager
        self.cleanup = list(manager.cleanup_transforms)
        self.line = list(manager.line_transforms)
        self.interactivity = shell.ast_node_interactivity
        # IPython adds and removes these around every cell (its builtin trap)
        self.managed = set(getattr(shell.builtin_trap, "auto_builtins", {})) | {"exit", "quit"}
        self.displayhook_object = shell.displayhook
        self.trap_hook = shell.display_trap.hook
        self.callbacks = [c for found in shell.events.callbacks.values() for c in found]
        self.cached_sources = set(linecache.cache)
        self.shell_methods = self._methods(shell, SHELL_METHODS)
        self.kernel_methods = self._methods(self.kernel, KERNEL_METHODS) if self.kernel else {}
        objects = [shell, shell.events, shell.displayhook, shell.display_pub, shell.compile]
        objects += [sys.stdout, sys.stderr, getattr(sys.stdout, "pub_thread", None)]
        objects.append(getattr(objects[-1], "socket", None))
        if self.kernel is not None:
            kernel = self.kernel
            objects += [kernel, kernel.session, getattr(kernel, "iopub_socket", None)]
            objects += [getattr(kernel, n, None) for n in ("iopub_thread", "shell_stream")]
            objects += [getattr(kernel, "control_stream", None)]
        objects = [obj for obj in objects if obj is not None and hasattr(obj, "__dict__")]
        classes = {c for obj in objects for c in type(obj).__mro__}
        classes |= set(ExecutionResult.__mro__) | set(ExecutionInfo.__mro__)
        self.classes = {
            c: dict(vars(c)) for c in classes if c.__module__.startswith(MACHINERY_MODULES)
        }
        self.instances = [
            (obj, {k: v for k, v in vars(obj).items() if callable(v)}) for obj in objects
        ]

    @staticmethod
    def _methods(obj, names: tuple[str, ...]) -> dict[str, tuple]:
        """``{name: (the class's function, the instance's own value or None)}``."""
        return {n: (getattr(type(obj), n), vars(obj).get(n)) for n in names}

    def forget_new_sources(self) -> list[str]:
        """Drop the sources IPython cached since the last restore (a hidden part's): nothing run
        later can read them back from ``linecache``."""
        for key in [k for k in linecache.cache if k not in self.cached_sources]:
            del linecache.cache[key]
        return []

    def restore(self) -> list[str]:
        """Put everything back; return what had been changed."""
        self.cached_sources = set(linecache.cache)
        found: list[str] = []
        shell = self.shell
        if sys.displayhook is not self.displayhook:
            found.append("sys.displayhook")
            sys.displayhook = self.displayhook
        if shell.displayhook is not self.displayhook_object:
            found.append("IPython displayhook")
            shell.displayhook = self.displayhook_object
        if shell.display_trap.hook is not self.trap_hook:
            found.append("IPython display trap")
            shell.display_trap.hook = self.trap_hook
        if sys.excepthook is not self.excepthook:
            found.append("sys.excepthook")
            sys.excepthook = self.excepthook
        if sys.gettrace() is not None or threading.gettrace() is not None:
            found.append("a trace function")
        if sys.getprofile() is not None or threading.getprofile() is not None:
            found.append("a profile function")
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        found += self._restore_builtins()
        for name, now, pristine in (
            ("ast_transformers", shell.ast_transformers, self.ast_transformers),
            ("input_transformers_post", shell.input_transformers_post, self.input_post),
            (
                "cleanup_transforms",
                shell.input_transformer_manager.cleanup_transforms,
                self.cleanup,
            ),
            ("line_transforms", shell.input_transformer_manager.line_transforms, self.line),
        ):
            if list(now) != pristine:
                found.append(f"IPython {name}")
                now[:] = pristine
        if shell.ast_node_interactivity != self.interactivity:
            found.append("IPython ast_node_interactivity")
            shell.ast_node_interactivity = self.interactivity
        found += self._restore_methods(shell, self.shell_methods, "shell")
        if self.kernel is not None:
            found += self._restore_methods(self.kernel, self.kernel_methods, "kernel")
        found += self._remove_user_callbacks()
        found += self._restore_objects()
        return list(dict.fromkeys(found))

    def _restore_builtins(self) -> list[str]:
        current = builtins.__dict__
        pristine = {k: v for k, v in self.builtins.items() if k not in self.managed}
        changed = [k for k, v in pristine.items() if current.get(k, object()) is not v]
        added = [k for k in current if k not in self.builtins and k not in self.managed]
        for key in added:
            del current[key]
        current.update(pristine)
        if self.shell.user_ns.get("__builtins__") not in (builtins, builtins.__dict__):
            self.shell.user_ns["__builtins__"] = builtins
            changed.append("__builtins__")
        return [f"builtins {', '.join(sorted(changed + added))}"] if changed or added else []

    @staticmethod
    def _restore_methods(obj, pristine: dict[str, tuple], label: str) -> list[str]:
        found = []
        for name, (method, own) in pristine.items():
            if vars(obj).get(name) is not own:
                found.append(f"{label}.{name}")
                if own is None:
                    delattr(obj, name)
                else:
                    setattr(obj, name, own)
            if getattr(type(obj), name) is not method:
                found.append(f"{label} class {name}")
                setattr(type(obj), name, method)
        return found

    def _remove_user_callbacks(self) -> list[str]:
        found = []
        for event, callbacks in self.shell.events.callbacks.items():
            for callback in list(callbacks):
                if not (installed_code(callback) or any(callback is c for c in self.callbacks)):
                    found.append(f"IPython {event} callback")
                    callbacks.remove(callback)
        return found

    def _restore_objects(self) -> list[str]:
        """Put back every method, property or callable of the machinery that runs a cell."""
        found = []
        for cls, pristine in self.classes.items():
            current = vars(cls)
            for key, value in pristine.items():
                if current.get(key, MISSING) is not value and key not in UNSETTABLE:
                    found.append(f"{cls.__name__}.{key}")
                    setattr(cls, key, value)
            for key in [k for k in current if k not in pristine and k not in UNSETTABLE]:
                found.append(f"{cls.__name__}.{key}")
                delattr(cls, key)
        for obj, pristine in self.instances:  # the machinery sets some itself: trust its own code
            current = vars(obj)
            for key, value in pristine.items():
                now = current.get(key, MISSING)
                if now is not value and not (now is not MISSING and installed_code(now)):
                    found.append(f"{type(obj).__name__}.{key}")
                    setattr(obj, key, value)
            for key, value in list(current.items()):
                if key not in pristine and callable(value) and not installed_code(value):
                    found.append(f"{type(obj).__name__}.{key}")
                    delattr(obj, key)
        return found


def installed_code(callback) -> bool:
    """True when ``callback`` is Python code of the installed environment, not of a notebook cell."""
    target = getattr(callback, "__func__", callback)
    while isinstance(getattr(target, "func", None), Callable):  # functools.partial and kin
        target = target.func
    code = getattr(target, "__code__", None) or getattr(type(target).__call__, "__code__", None)
    if code is None:  # C code (operator.methodcaller, setattr, ...) says nothing of who placed it
        return False
    return code.co_filename.startswith(INSTALLED)


def load_ipython_extension(shell) -> None:
    """Record the pristine state and answer the grader's guard requests on the shell channel."""
    guard = Guard(shell)
    kernel = guard.kernel
    if kernel is None:
        return

    def handle(stream, idents, parent) -> None:
        if parent["content"].get("forget"):
            content = {"changed": guard.forget_new_sources()}
        else:
            content = {"changed": guard.restore()}
        kernel.session.send(stream, REPLY, content, parent, ident=idents)

    kernel.shell_handlers[REQUEST] = handle
