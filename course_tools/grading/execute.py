"""Execute preprocessors for grading: a guarded one for worker processes, a replay one for the gradebook.

``GuardedExecute`` is nbgrader's ``Execute`` plus what hostile submissions need: a wall-clock cap
on the whole notebook (on top of the per-cell timeout), a kernel that dies or stops answering ends
the run instead of failing the whole submission, cells that could not run get an error output (so
their tests score 0, never full marks for "no output"), and a cap on the text a cell may print.

``ReplayExecute`` takes ``Execute``'s place in the main process: it copies the outputs of the
notebook a worker already executed, so nbgrader's own ``SaveAutoGrades`` writes the scores.
"""

import os
import signal
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.utils import is_grade
from traitlets import Integer, Unicode

# Filled by GuardedExecute in the worker process, one record per executed notebook, read by grade_worker.
RUN_RECORDS: list[dict] = []

MEMORY_MARKERS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "bad_alloc")


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    """An error output as a failed cell would have it."""
    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def cell_label(cell: nbformat.NotebookNode, index: int) -> str:
    """``grade_id`` of a cell, or ``cell <index>`` for cells without one."""
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"


class GuardedExecute(Execute):
    """nbgrader's ``Execute`` with a notebook wall-clock cap, dead-kernel handling and output caps."""

    notebook_timeout = Integer(
        300, help="Wall-clock seconds for a whole notebook; later cells are not run."
    ).tag(config=True)
    max_text_bytes = Integer(
        100_000, help="Characters of printed text kept per cell; the rest is dropped."
    ).tag(config=True)
    max_output_bytes = Integer(
        5_000_000, help="Bytes of rich output (figures) kept per cell; the rest is dropped."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        """Run the notebook; record what went wrong in ``RUN_RECORDS``."""
        start = time.monotonic()
        self._deadline = start + self.notebook_timeout
        self._stopped = ""
        self._output_sizes: dict[int, int] = {}
        self._record = {
            "notebook": (resources or {}).get("nbgrader", {}).get("notebook", ""),
            "stopped": "",
            "timed_out": [],
            "memory": [],
            "raised": [],
            "truncated": [],
        }
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self._record["seconds"] = round(time.monotonic() - start, 2)
            RUN_RECORDS.append(self._record)

    def _get_timeout(self, cell):
        """The per-cell timeout, shortened so no cell runs past the notebook's deadline."""
        timeout = super()._get_timeout(cell)
        remaining = max(1, int(self._deadline - time.monotonic()) + 1)
        return remaining if timeout is None else min(timeout, remaining)

    def preprocess_cell(self, cell, resources, index):
        """Execute one cell unless the run has stopped; a dead or stuck kernel stops the run."""
        runnable = cell.cell_type == "code" and cell.source.strip()
        if runnable and not self._stopped and time.monotonic() >= self._deadline:
            self._stop(f"the notebook ran past its {self.notebook_timeout} s limit", "timeout")
        if self._stopped:
            if runnable:
                cell.outputs = [error_output("NotRun", f"not run: {self._stopped}")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(error_output("DeadKernelError", "the kernel died in this cell"))
            self._stop(f"the kernel died in {cell_label(cell, index)}", "kernel-died")
        except CellTimeoutError:
            self._kill_kernel()
            cell.outputs.append(error_output("CellTimeoutError", "the kernel stopped answering"))
            self._record["timed_out"].append(cell_label(cell, index))
            self._stop(f"the kernel stopped answering in {cell_label(cell, index)}", "timeout")
        return cell, self.resources

    def _stop(self, reason: str, status: str) -> None:
        """Run no further cell."""
        self._stopped = reason
        self._record["stopped"] = status
        self._record["reason"] = reason

    def _kill_kernel(self) -> None:
        """SIGKILL the kernel's process group (it ignored the interrupt)."""
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if pid:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                    return
                except OSError:
                    continue

    def on_cell_executed(self, **kwargs):
        """Record timeouts, memory errors and exceptions, as nbgrader's ``Execute`` shows them."""
        super().on_cell_executed(**kwargs)
        content = kwargs["execute_reply"]["content"]
        if content.get("status") != "error":
            return
        label = cell_label(kwargs["cell"], kwargs["cell_index"])
        text = f"{content.get('ename', '')}: {content.get('evalue', '')}"
        if content.get("ename") == "CellTimeoutError":
            if time.monotonic() >= self._deadline:  # which cell the cap hits depends on timing
                self._stop(f"the notebook ran past its {self.notebook_timeout} s limit", "timeout")
            else:
                self._record["timed_out"].append(label)
        elif any(marker in text for marker in MEMORY_MARKERS):
            self._record["memory"].append(label)
        elif not is_grade(kwargs["cell"]):
            self._record["raised"].append(f"{label} ({content.get('ename', 'error')})")

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
        if label not in self._record["truncated"]:
            self._record["truncated"].append(label)
            outs.append(
                nbformat.v4.new_output(
                    "stream", name="stderr", text="\n[grader: output truncated, too long]\n"
                )
            )


class ReplayExecute(NbGraderPreprocessor):
    """Stands in for ``Execute``: copies outputs from ``<executed_directory>/<student>/<assignment>/``."""

    executed_directory = Unicode("", help="Where the workers' executed notebooks are.").tag(
        config=True
    )

    def preprocess(self, nb, resources):
        """Give every code cell the outputs the worker recorded; refuse a notebook that differs."""
        info = resources["nbgrader"]
        path = (
            Path(self.executed_directory)
            / info["student"]
            / info["assignment"]
            / f"{info['notebook']}.ipynb"
        )
        executed = nbformat.read(path, as_version=4)
        if [c.source for c in executed.cells] != [c.source for c in nb.cells]:
            raise ValueError(f"{path} is not the notebook being graded")
        for cell, done in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs = done.outputs
                cell.execution_count = done.execution_count
        if "language_info" in executed.metadata:
            nb.metadata["language_info"] = executed.metadata["language_info"]
        return nb, resources
