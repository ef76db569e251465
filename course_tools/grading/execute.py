"""Execute preprocessors for grading: a guarded one for worker processes, a replay one for recording.

``GuardedExecute`` is nbgrader's ``Execute`` plus what hostile submissions need:

- each test cell's verdict comes from what the grader observes: the kernel's ``execute_reply``
  status for the cell's code (visible part, then hidden part), never from outputs the student's
  code can shape (``execute_result``, display data, stderr); warnings and prints cost nothing;
- before each part of a test cell the interpreter guard (:mod:`course_tools.grading.kernel_guard`)
  restores hooks student code may have installed; anything it finds flags the submission, and so
  does an answer cell that touches grader internals (:mod:`course_tools.grading.audit`);
- the hidden part of a test cell runs as its own request, not stored in the kernel's history; its
  output is replaced by pass or fail and the instructor's assertion message (only the exception's
  type when it was raised inside the student's code);
- a wall-clock cap per notebook, a dead or stuck kernel stops the execution instead of failing the
  submission, cells not run get an error output, and printed output is capped per cell;
- sandboxed, every process of the kernel's tree lives in cgroups made for this notebook: memory
  and process count are capped for the tree, and whatever is left when the kernel is done is killed.

``ReplayExecute`` takes ``Execute``'s place in the recording process: it copies the outputs and
verdicts of the execution a worker reported (never a file), so nbgrader's own preprocessors record them.
"""

import copy
import os
import queue
import re
import shutil
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import nbformat
from jupyter_core.paths import jupyter_runtime_dir
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

from course_tools.grading import cgroups
from course_tools.grading.audit import audit_answers, instructor_code
from course_tools.grading.cells import grade_id, is_test_cell, split_hidden
from course_tools.grading.kernel_guard import REQUEST
from course_tools.grading.records import NotebookExecution
from course_tools.grading.sandbox import SandboxSpec
from course_tools.grading.scoring import PASSED
from course_tools.grading.status import Status

# Filled by GuardedExecute in the worker process, one record per executed notebook.
EXECUTIONS: list[NotebookExecution] = []
# Filled by the recording process before it calls autograde: (student, notebook) -> its execution.
REPLAYS: dict[tuple[str, str], NotebookExecution] = {}


MEMORY_MARKERS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "bad_alloc")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_FRAME = re.compile(r"Cell In\[(\d+)\]")
GUARD_SECONDS = 10


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    """An error output as a failed cell would have it."""
    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def cell_label(cell: nbformat.NotebookNode, index: int) -> str:
    """``grade_id`` of a cell, or ``cell <index>`` for cells without one."""
    return grade_id(cell) or f"cell {index}"


def raised_in_student_code(traceback: list[str], execution_count: int | None) -> bool:
    """True when a frame of another cell (the student's code) is on the failing stack."""
    counts = {int(n) for n in CELL_FRAME.findall(ANSI.sub("", "\n".join(traceback)))}
    return bool(counts - {execution_count})


def hidden_outcome(reply: dict | None, execution_count: int | None) -> nbformat.NotebookNode:
    """What feedback shows of a hidden part: pass, or fail with the assertion message or type."""
    if reply is None:
        return error_output("HiddenTestsNotRun", "the hidden tests could not run")
    content = reply["content"]
    if content.get("status") == "ok":
        return nbformat.v4.new_output("stream", name="stdout", text="hidden tests: passed\n")
    ename = content.get("ename", "Error")
    if raised_in_student_code(content.get("traceback", []), execution_count):
        return error_output(ename, "raised inside your code during the hidden tests")
    return error_output(ename, content.get("evalue", ""))


class GuardedExecute(Execute):
    """nbgrader's ``Execute`` with verdicts, the interpreter guard, hidden parts and caps."""

    notebook_timeout = Integer(
        300, help="Wall-clock seconds for a whole notebook; later cells are not run."
    ).tag(config=True)
    max_text_bytes = Integer(
        100_000, help="Characters of printed text kept per cell; the rest is dropped."
    ).tag(config=True)
    max_output_bytes = Integer(
        5_000_000, help="Bytes of rich output (figures) kept per cell; the rest is dropped."
    ).tag(config=True)
    sandboxed = Bool(False, help="Kernels run in the bubblewrap sandbox, in cgroups.").tag(
        config=True
    )
    source_directory = Unicode("", help="The instructor's source notebooks, for the audit.").tag(
        config=True
    )

    def preprocess(self, nb, resources=None, km=None):
        """Run the notebook; record what happened in ``EXECUTIONS`` and the verdicts in ``resources``."""
        start = self._started = time.monotonic()
        self._deadline = start + self.notebook_timeout
        self._stopped = ""
        self._output_sizes: dict[int, int] = {}
        self._last_reply: dict | None = None
        self._runtime: Path | None = None
        info = (resources or {}).get("nbgrader", {})
        self._execution = NotebookExecution(notebook=info.get("notebook", ""))
        self._execution.flags += audit_answers(nb, self._instructor_code(info))
        group = cgroups.KernelGroup.create() if self.sandboxed else None
        try:
            with group or nullcontext():
                nb, resources = super().preprocess(nb, resources, km)
        finally:
            if group is not None:
                self._execution.leftover_processes = group.leftover
                if group.out_of_memory and not self._execution.memory:
                    self._execution.memory.append("the kernel's process tree")
                    if self._execution.stopped == Status.KERNEL_DIED:
                        self._execution.stopped = Status.MEMORY
            if self._runtime is not None:
                shutil.rmtree(self._runtime, ignore_errors=True)
            self._execution.seconds = round(time.monotonic() - start, 2)
            self._execution.executed = nbformat.writes(nb)
            EXECUTIONS.append(self._execution)
        resources[PASSED] = dict(self._execution.passed)
        return nb, resources

    def _instructor_code(self, info: dict) -> frozenset[str]:
        """The released code cells of this notebook, read from the instructor's source."""
        path = Path(
            self.source_directory, info.get("assignment", ""), f"{info.get('notebook')}.ipynb"
        )
        if not self.source_directory or not path.is_file():
            raise FileNotFoundError(f"no source notebook {path} to audit the submission against")
        return instructor_code(nbformat.read(path, as_version=4))

    async def async_start_new_kernel(self, **kwargs):
        """Start the kernel with its connection file in a folder of its own, which the sandbox binds.

        The kernel's uid owns the folder until the kernel is up (it makes its sockets there), then
        root takes it back: nothing the student runs can write to the host after that.
        """
        if self.sandboxed:
            self._runtime = Path(jupyter_runtime_dir()) / f"kernel-{uuid.uuid4().hex[:12]}"
            self._runtime.mkdir(mode=0o700, parents=True)
            if os.geteuid() == 0:
                uid = SandboxSpec.from_env().uid
                os.chown(self._runtime, uid, uid)
            self.km.connection_file = str(self._runtime / "kernel.json")
        await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)

    async def async_start_new_kernel_client(self):
        """Connect to the kernel, then take its folder back from the kernel's uid."""
        client = await super().async_start_new_kernel_client()
        self._execution.kernel_seconds = round(time.monotonic() - self._started, 2)
        if self.sandboxed and os.geteuid() == 0:
            for path in (self._runtime, *self._runtime.iterdir()):
                os.chown(path, 0, 0, follow_symlinks=False)
        return client

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def _get_timeout(self, cell):
        """The per-cell timeout, shortened so no cell runs past the notebook's deadline."""
        timeout = super()._get_timeout(cell)
        remaining = max(1, int(self._deadline - time.monotonic()) + 1)
        return remaining if timeout is None else min(timeout, remaining)

    def preprocess_cell(self, cell, resources, index):
        """Execute one cell unless execution has stopped; a dead or stuck kernel stops it."""
        runnable = cell.cell_type == "code" and cell.source.strip()
        if runnable and not self._stopped and time.monotonic() >= self._deadline:
            self._stop(f"the notebook ran past its {self.notebook_timeout} s limit", Status.TIMEOUT)
        test = is_test_cell(cell)
        if test:
            self._execution.passed[grade_id(cell)] = False
        if self._stopped:
            if runnable:
                cell.outputs = [error_output("NotRun", f"not run: {self._stopped}")]
            return cell, self.resources
        try:
            if test:
                self._run_test_cell(cell, index)
            else:
                super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(error_output("DeadKernelError", "the kernel died in this cell"))
            self._stop(f"the kernel died in {cell_label(cell, index)}", Status.KERNEL_DIED)
        except CellTimeoutError:
            cell.outputs.append(error_output("CellTimeoutError", "the kernel stopped answering"))
            self._execution.timed_out.append(cell_label(cell, index))
            self._stop(f"the kernel stopped answering in {cell_label(cell, index)}", Status.TIMEOUT)
        return cell, self.resources

    def _run_test_cell(self, cell, index: int) -> None:
        """Visible part, then hidden part, each after the guard; the verdict is both replies ok."""
        visible, hidden = split_hidden(cell.source)
        passed = self._part(cell, visible, index, store_history=True)
        if hidden.strip() and passed:
            part = copy.deepcopy(cell)
            part.outputs = []
            passed = self._part(part, hidden, index, store_history=False)
            reply = self._last_reply
            if run_sync(self._ask_guard)(forget=True) is None:
                self._flag(f"the interpreter guard did not answer after {cell_label(cell, index)}")
            count = reply["content"].get("execution_count") if reply else None
            cell.outputs.append(hidden_outcome(reply, count))
        self._execution.passed[grade_id(cell)] = passed

    def _part(self, cell, source: str, index: int, store_history: bool) -> bool:
        """Run ``source`` as ``cell`` after the guard; True when the kernel replied ``ok``."""
        self._check_guard(cell_label(cell, index))
        original = cell.source
        cell.source = source
        self._last_reply = None
        try:
            self.execute_cell(cell, index, store_history=store_history)
        finally:
            cell.source = original
        reply = self._last_reply
        return reply is not None and reply["content"].get("status") == "ok"

    def _check_guard(self, label: str) -> None:
        """Ask the kernel's guard to restore the interpreter; flag what it found or its silence."""
        changed = run_sync(self._ask_guard)()
        if changed is None:
            self._flag(f"the interpreter guard did not answer before {label}")
        elif changed:
            self._flag(f"before {label} the grader had to restore {', '.join(changed)}")

    async def _ask_guard(self, forget: bool = False) -> list[str] | None:
        message = self.kc.session.msg(REQUEST, {"forget": forget})
        self.kc.shell_channel.send(message)
        deadline = time.monotonic() + GUARD_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                reply = await self.kc.shell_channel.get_msg(timeout=remaining)
            except queue.Empty:
                return None
            if reply["parent_header"].get("msg_id") == message["header"]["msg_id"]:
                changed = reply["content"].get("changed")
                return [str(c) for c in changed] if isinstance(changed, list) else None
        return None

    def _flag(self, reason: str) -> None:
        if reason not in self._execution.flags:
            self._execution.flags.append(reason)

    def _stop(self, reason: str, status: Status) -> None:
        """Run no further cell."""
        self._stopped = reason
        self._execution.stopped = status
        self._execution.reason = reason

    def on_cell_executed(self, **kwargs):
        """Keep the reply for the verdict; record timeouts, memory errors and exceptions."""
        super().on_cell_executed(**kwargs)
        self._last_reply = kwargs["execute_reply"]
        content = kwargs["execute_reply"]["content"]
        if content.get("status") != "error":
            return
        label = cell_label(kwargs["cell"], kwargs["cell_index"])
        text = f"{content.get('ename', '')}: {content.get('evalue', '')}"
        if content.get("ename") == "CellTimeoutError":
            if time.monotonic() >= self._deadline:  # which cell the cap hits depends on timing
                limit = f"the notebook ran past its {self.notebook_timeout} s limit"
                self._stop(limit, Status.TIMEOUT)
            else:
                self._execution.timed_out.append(label)
        elif any(marker in text for marker in MEMORY_MARKERS):
            self._execution.memory.append(label)
        elif not is_test_cell(kwargs["cell"]):
            self._execution.raised.append(f"{label} ({content.get('ename', 'error')})")

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most ``max_text_bytes`` of text and ``max_output_bytes`` of other output per cell."""
        content = msg.get("content", {})
        if msg.get("msg_type") == "stream":
            used = self._output_sizes.get(cell_index, 0)
            text = content.get("text", "")
            room = self.max_text_bytes - used
            if len(text) > room:
                self._truncate(outs, cell_index)
                if room <= 0:
                    return None
                content["text"] = text[:room]
            self._output_sizes[cell_index] = used + len(content["text"])
        else:
            size = sum(len(str(value)) for value in content.get("data", {}).values())
            used = self._output_sizes.get(-1 - cell_index, 0)
            if used + size > self.max_output_bytes:
                self._truncate(outs, cell_index)
                return None
            self._output_sizes[-1 - cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)

    def _truncate(self, outs, cell_index: int) -> None:
        """Note once per cell that output was dropped."""
        label = f"cell {cell_index}"
        if label not in self._execution.truncated:
            self._execution.truncated.append(label)
            notice = "\n[grader: output truncated, too long]\n"
            outs.append(nbformat.v4.new_output("stream", name="stdout", text=notice))


class ReplayExecute(NbGraderPreprocessor):
    """Stands in for ``Execute``: copies outputs and verdicts from the worker's report."""

    def preprocess(self, nb, resources):
        """Give every code cell the outputs the worker recorded; refuse a notebook that differs."""
        info = resources["nbgrader"]
        execution = REPLAYS[(info["student"], info["notebook"])]
        executed = nbformat.reads(execution.executed, as_version=4)
        if [c.source for c in executed.cells] != [c.source for c in nb.cells]:
            raise ValueError(
                f"the worker's execution of {info['notebook']} is not the notebook graded"
            )
        for cell, done in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs = done.outputs
                cell.execution_count = done.execution_count
        if "language_info" in executed.metadata:
            nb.metadata["language_info"] = executed.metadata["language_info"]
        resources[PASSED] = dict(execution.passed)
        return nb, resources
