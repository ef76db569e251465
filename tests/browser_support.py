"""A JupyterLab server and a headless Debian Chromium driven by Playwright, for the browser tests."""

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from course_tools.grading.cells import grade_id, is_answer_cell, without_solution_markers

CHROMIUM = Path("/usr/bin/chromium")
# Flags that work on this machine's closed network (see the machine notes); Playwright adds a fresh
# --user-data-dir of its own to every launch.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60.0
MAX_SCREENSHOT_HEIGHT = 30_000  # pixels
POLL_MS = 200  # how often the page checks whether a run finished (cheap on the shared CPU)
# JupyterLab user settings for the test: no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def require_chromium() -> Path:
    """Debian's Chromium, or skip (fail under CI, where ``.ci/run`` installs it)."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install chromium`."
    if os.environ.get("CI"):
        pytest.fail(f"{message} (.ci/run installs it when it is missing)", pytrace=False)
    pytest.skip(message)


def require_playwright() -> Any:
    """Playwright's ``sync_playwright``, or skip (fail under CI) if it is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "playwright is not installed: `make setup` installs it from requirements.lock."
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return sync_playwright


def free_port() -> int:
    """A localhost TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the log at ``path`` ("" before it exists), for failure messages."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def terminate(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM a server started in its own process group; SIGKILL the group after ``grace`` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Steps:
    """Lap times of a run's steps: ``steps.lap("name")`` ends step ``name``."""

    def __init__(self) -> None:
        """Start the first step now."""
        self.seconds: dict[str, float] = {}
        self._start = time.monotonic()

    def lap(self, name: str) -> None:
        """Record the time since the previous lap as step ``name``."""
        now = time.monotonic()
        self.seconds[name] = round(now - self._start, 1)
        self._start = now


@dataclass
class JupyterLab:
    """A running ``jupyter lab`` serving ``root`` on localhost with a token set by the test."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
    runtime: Path  # connection files and kernel sockets
    _log: Any = field(repr=False, default=None)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.port}/"

    def lab_url(self, relative: str) -> str:
        """The JupyterLab URL that opens ``relative`` (a path under the root), with the token."""
        return f"{self.base_url}lab/tree/{relative}?token={self.token}"

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API (``path`` like ``api/kernels``); returns the decoded JSON."""
        request = urllib.request.Request(
            self.base_url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel and session of the server (frees the CPU between notebooks)."""
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")
        for kernel in self.api("GET", "api/kernels"):
            self.api("DELETE", f"api/kernels/{kernel['id']}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server log, for failure messages."""
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop the server (it shuts its kernels down), then its process group if it lingers."""
        terminate(self.process, grace=20)
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.runtime, ignore_errors=True)


def start_jupyterlab(root: Path, home: Path) -> JupyterLab:
    """Start ``python -m jupyter lab`` of this environment on a free port, config under ``home``."""
    # The server runs in ``root``: Validate reads nbgrader_config.py from there, as with `make lab`.
    for name in ("config", "data", "settings", "workspaces"):
        (home / name).mkdir(parents=True, exist_ok=True)
    for relative, settings in LAB_SETTINGS.items():
        path = home / "settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    # Kernels talk over local sockets, not TCP ports: a TCP port picked free can be taken by another
    # process before the kernel binds it ("Kernel died before replying"). Validate's kernels too.
    ipc = json.dumps({"KernelManager": {"transport": "ipc"}})
    for name in ("jupyter_server_config.json", "nbgrader_config.json"):
        (home / "config" / name).write_text(ipc)
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("NBGRADER_EXECUTION", None)
    for attempt in range(3):  # another process may take the free port before the server binds it
        try:
            return _launch(root, home, env)
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    """The port picked for the server was taken before it could listen."""


def _launch(root: Path, home: Path, env: dict[str, str]) -> JupyterLab:
    """Start one server on a free port and wait until its API answers."""
    runtime = Path(tempfile.mkdtemp(prefix="jl-"))  # short: socket paths are limited to 107 bytes
    env = {**env, "JUPYTER_RUNTIME_DIR": str(runtime)}
    port, token = free_port(), os.urandom(16).hex()
    log_path = home / "jupyterlab.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # Lets the test read the notebook model (sources, kernel replies); the UI is still
            # what the test drives.
            "--LabApp.expose_app_in_browser=True",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab = JupyterLab(root, port, token, process, log_path, runtime, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            lab.stop()
            tail = lab.log_tail()
            error = PortTaken if "already in use" in tail else RuntimeError
            raise error(f"jupyter lab exited with {process.returncode}:\n{tail}")
        try:
            lab.api("GET", "api/status")
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                lab.stop()
                raise RuntimeError(
                    f"jupyter lab did not answer in time:\n{lab.log_tail()}"
                ) from None
            time.sleep(0.25)


def launch_chromium(playwright: Any) -> Any:
    """Launch Debian's Chromium headless through Playwright (no Playwright browser download)."""
    return playwright.chromium.launch(
        executable_path=str(require_chromium()), headless=True, args=CHROMIUM_FLAGS
    )


def solved_notebook(release: Path, source: Path) -> nbformat.NotebookNode:
    """The release notebook with every answer cell filled in from the solution (a solved copy).

    Locked cells keep the release's text and checksums, so Validate also checks they are unchanged.
    """
    answers = {
        grade_id(cell): without_solution_markers(cell.source)
        for cell in nbformat.read(source, as_version=4).cells
        if is_answer_cell(cell)
    }
    notebook = nbformat.read(release, as_version=4)
    filled = set()
    for cell in notebook.cells:
        if is_answer_cell(cell):
            if grade_id(cell) not in answers:
                raise ValueError(
                    f"{release} has answer cell {grade_id(cell)!r} that the solution lacks: "
                    "the release is out of date (run `python -m course_tools.release`)."
                )
            cell.source = answers[grade_id(cell)]
            filled.add(grade_id(cell))
    missing = set(answers) - filled
    if missing:
        raise ValueError(
            f"{release} lacks answer cells {sorted(missing)}: the release is out of date "
            "(run `python -m course_tools.release`)."
        )
    return notebook


def copy_into(workspace: Path, relative: str, notebook: nbformat.NotebookNode | Path) -> Path:
    """Write a notebook (or copy a file) to ``workspace/relative``; returns its path."""
    target = workspace / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, Path):
        shutil.copyfile(notebook, target)
    else:
        nbformat.write(notebook, target)
    return target


# --- Driving one notebook in JupyterLab --------------------------------------------------------

PANEL = "window.jupyterapp.shell.currentWidget"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Runs silently in the kernel before Run All. It remembers every figure matplotlib renders (the
# inline backend renders each displayed figure through ``print_figure``) with its titles and axis
# labels, and the CPU and wall seconds of every cell the notebook runs, by JupyterLab cell id.
KERNEL_AUDIT = """
def _browser_test_install_audit():
    import time

    from IPython import get_ipython
    from matplotlib.backend_bases import FigureCanvasBase

    figures, cells, started = {}, {}, {}

    def describe(fig):
        axes = []
        for ax in fig.axes:
            axes.append({
                "title": ax.get_title() or ax.get_title("left") or ax.get_title("right"),
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
                "axis_on": bool(ax.axison) and ax.get_visible(),
                "xticks": [t.get_text() for t in ax.get_xticklabels()],
                "yticks": [t.get_text() for t in ax.get_yticklabels()],
                "xticks_shown": len(ax.get_xticks()) > 0 and ax.xaxis.get_visible(),
                "yticks_shown": len(ax.get_yticks()) > 0 and ax.yaxis.get_visible(),
                "colorbar": ax.get_label() == "<colorbar>",
            })
        return {"suptitle": fig.get_suptitle(), "axes": axes}

    original = FigureCanvasBase.print_figure

    def print_figure(self, *args, **kwargs):
        figures[id(self.figure)] = (self.figure, describe(self.figure))
        return original(self, *args, **kwargs)

    def pre_run_cell(info):
        started["cell"] = (info.cell_id, time.process_time(), time.perf_counter())

    def post_run_cell(result):
        cell_id, cpu, wall = started.pop("cell", (None, 0.0, 0.0))
        if cell_id:
            cells[cell_id] = [time.process_time() - cpu, time.perf_counter() - wall]

    FigureCanvasBase.print_figure = print_figure
    get_ipython().events.register("pre_run_cell", pre_run_cell)
    get_ipython().events.register("post_run_cell", post_run_cell)
    return lambda: {"figures": [info for _, info in figures.values()], "cells": cells}


_browser_test_report = _browser_test_install_audit()
del _browser_test_install_audit
"""
# Records, while cells run, the index of every cell whose output shows a progress bar (a tqdm.auto
# bar is an ipywidgets FloatProgress; a bar closed at the end with leave=False is still seen).
PROGRESS_OBSERVER = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const selector = '.widget-progress, .widget-hprogress, progress';
  window.__progressObserver?.disconnect();
  window.__progressCells = new Set();
  const check = (node) => {
    if (!(node instanceof Element)) return;
    const hit = node.matches(selector) ? node : node.querySelector(selector);
    if (!hit) return;
    const index = panel.content.widgets.findIndex((w) => w.node.contains(hit));
    if (index >= 0) window.__progressCells.add(index);
  };
  window.__progressObserver = new MutationObserver((records) =>
    records.forEach((r) => r.addedNodes.forEach(check)));
  window.__progressObserver.observe(panel.content.node, {childList: true, subtree: true});
}"""
# True once the kernel is idle, no prompt shows [*] and cell ``target`` ran (or some cell failed).
RUN_FINISHED = """(target) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  const prompts = [...panel.content.node.querySelectorAll('.jp-InputPrompt')];
  if (prompts.some((p) => p.textContent.includes('*'))) return false;
  const cells = panel.content.model.cells;
  if (cells.get(target).executionCount) return true;
  for (let i = 0; i < cells.length; i++) {
    const outputs = cells.get(i).outputs;
    for (let j = 0; outputs && j < outputs.length; j++) {
      if (outputs.get(j).type === 'error') return true;
    }
  }
  return false;
}"""


@dataclass
class Outcome:
    """What nbgrader's Validate dialog said."""

    success: bool
    text: str


class NotebookPage:
    """One notebook open in a JupyterLab page, with its own kernel."""

    def __init__(self, page: Any, lab: JupyterLab, relative: str, fresh: bool) -> None:
        """Open ``relative``: load JupyterLab (``fresh``) or use File > Open from Path; wait idle."""
        self.page, self.lab, self.relative = page, lab, relative
        if fresh:
            page.goto(lab.lab_url(relative).replace("?", "?reset&", 1))  # reset: no old tabs
        else:
            self.menu("File", "Open from Path…")
            dialog = page.locator(".jp-Dialog")
            dialog.locator("input").fill(relative)
            dialog.locator("input").press("Enter")
            dialog.wait_for(state="detached")
        page.wait_for_function(
            """(path) => {
              const panel = window.jupyterapp?.shell?.currentWidget;
              return panel?.context?.path === path
                && panel.sessionContext?.session?.kernel?.status === 'idle';
            }""",
            arg=relative,
            timeout=90_000,
        )
        self.cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        self.cells.first.wait_for()
        if page.locator("#jp-left-stack").is_visible():  # more room for the notebook
            page.keyboard.press("Control+b")
            page.locator("#jp-left-stack").wait_for(state="hidden")

    def close_tab(self) -> None:
        """File > Close Tab, discarding unsaved changes if JupyterLab asks."""
        self.menu("File", "Close Tab")
        discard = self.page.locator(".jp-Dialog button", has_text="Discard")
        panels = self.page.locator(".jp-NotebookPanel")
        deadline = time.monotonic() + 10
        while panels.count() and time.monotonic() < deadline:
            if discard.count():
                discard.click()
            time.sleep(0.1)
        if panels.count():
            raise RuntimeError(f"the tab of {self.relative} did not close")

    def model(self) -> dict:
        """The notebook as JupyterLab holds it (nbformat JSON: sources, outputs, metadata)."""
        return self.page.evaluate(f"() => {PANEL}.content.model.toJSON()")

    def count(self) -> int:
        """Number of cells in the notebook model."""
        return self.page.evaluate(f"() => {PANEL}.content.model.cells.length")

    def source(self, index: int) -> str:
        """The source of cell ``index`` in the notebook model."""
        return self.page.evaluate(
            f"(i) => {PANEL}.content.model.cells.get(i).sharedModel.getSource()", index
        )

    def select(self, index: int) -> None:
        """Select cell ``index`` in command mode by clicking its prompt area, as a student would."""
        self.cells.nth(index).locator(".jp-InputPrompt").click()
        self.page.wait_for_function(
            f"(i) => {PANEL}.content.activeCellIndex === i && {PANEL}.content.mode === 'command'",
            arg=index,
        )

    def try_to_type(self, index: int, text: str) -> None:
        """Double-click cell ``index``, press Enter and type ``text``, as a student editing it."""
        self.cells.nth(index).locator(".jp-InputArea").dblclick()
        self.page.keyboard.press("Enter")
        self.page.keyboard.type(text)
        self.page.keyboard.press("Escape")

    def try_to_delete(self, index: int) -> None:
        """Select cell ``index`` and press D D (delete), then X (cut)."""
        self.select(index)
        for key in ("d", "d", "x"):
            self.page.keyboard.press(key)

    def menu(self, top: str, item: str) -> None:
        """Click ``top`` in the menu bar, then the entry labelled exactly ``item``."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        menu = self.page.locator(".lm-Menu").last
        menu.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def wait_finished(self, target: int, timeout: float) -> None:
        """Wait until the kernel is idle and cell ``target`` ran (or a cell failed)."""
        self.page.wait_for_function(
            RUN_FINISHED, arg=target, timeout=timeout * 1000, polling=POLL_MS
        )

    def run_selected(self, timeout: float) -> None:
        """Shift+Enter on the selected cell (runs it, selects the next) and wait for it."""
        index = self.page.evaluate(f"() => {PANEL}.content.activeCellIndex")
        self.page.keyboard.press("Shift+Enter")
        if self.model()["cells"][index]["cell_type"] == "code":
            self.wait_finished(index, timeout)

    def kernel_execute_silently(self, code: str, expression: str | None = None) -> Any:
        """Run ``code`` in the notebook's kernel without touching the notebook; eval ``expression``."""
        reply = self.page.evaluate(
            """async ([code, expression]) => {
              const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
              const future = kernel.requestExecute({code, silent: true, store_history: false,
                user_expressions: expression ? {value: expression} : {}});
              const reply = await future.done;
              return reply.content;
            }""",
            [code, expression],
        )
        if reply["status"] != "ok":
            raise RuntimeError(f"kernel refused the test's code: {reply}")
        if expression is None:
            return None
        value = reply["user_expressions"]["value"]
        if value["status"] != "ok":
            raise RuntimeError(f"kernel could not evaluate {expression}: {value}")
        return value["data"]["text/plain"]

    def start_watching(self) -> None:
        """Install the figure audit in the kernel and the progress-bar observer in the page."""
        self.kernel_execute_silently(KERNEL_AUDIT)
        self.page.evaluate(PROGRESS_OBSERVER)

    def kernel_report(self) -> dict:
        """Since :meth:`start_watching`: ``figures`` (titles, labels), ``cells`` (id: [CPU, wall])."""
        text = self.kernel_execute_silently("", "__import__('json').dumps(_browser_test_report())")
        return json.loads(ast.literal_eval(text))

    def progress_cells(self) -> set[int]:
        """Indices of cells that showed a progress bar since :meth:`start_watching`."""
        return set(self.page.evaluate("() => [...(window.__progressCells || [])]"))

    def rendered_images(self) -> list[dict]:
        """Every image in the output areas: decoded size and displayed width."""
        return self.page.evaluate(
            """async () => {
              const imgs = [...window.jupyterapp.shell.currentWidget.content.node.querySelectorAll('.jp-OutputArea-output img')];
              await Promise.all(imgs.map((img) => img.decode().catch(() => null)));
              return imgs.map((img) => ({natural: img.naturalWidth, naturalHeight: img.naturalHeight,
                                        shown: img.getBoundingClientRect().width}));
            }"""
        )

    def validate(self, timeout: float) -> Outcome:
        """Click nbgrader's Validate toolbar button; return what its dialog reports, then close it."""
        self.page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
        dialog = self.page.locator(".jp-Dialog")
        dialog.wait_for(timeout=timeout * 1000)
        message = dialog.locator("#validation-message")
        if message.count():
            classes = message.get_attribute("class") or ""
            outcome = Outcome("validation-success" in classes, message.inner_text())
        else:
            outcome = Outcome(False, dialog.inner_text())
        dialog.locator(".jp-mod-accept").first.click()
        dialog.wait_for(state="detached")
        return outcome

    def screenshot(self, path: Path, full: bool = True) -> Path:
        """A screenshot of the whole notebook (the window is made as tall as it), else the window."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not full:
            self.page.screenshot(path=str(path))
            return path
        size = self.page.viewport_size
        height = size["height"]
        try:
            for _ in range(4):  # cells scrolled into view may grow the notebook: measure again
                wanted = self.page.evaluate(
                    """() => {
                      const panel = window.jupyterapp.shell.currentWidget;
                      const scroller = panel.content.node.querySelector('.jp-WindowedPanel-outer')
                        || panel.content.node;
                      scroller.scrollTop = 0;  // the page shows the notebook from the top
                      const cells = panel.content.node.querySelectorAll('.jp-Cell');
                      const last = cells[cells.length - 1].getBoundingClientRect().bottom;
                      const top = scroller.getBoundingClientRect().top;
                      const content = last - top + scroller.scrollTop + 40;  // below the last cell
                      return window.innerHeight + Math.max(0, content - scroller.clientHeight);
                    }"""
                )
                wanted = min(int(wanted), MAX_SCREENSHOT_HEIGHT)
                if wanted <= height:
                    break
                height = wanted
                self.page.set_viewport_size({"width": size["width"], "height": height})
                self.rendered_images()  # let the newly visible outputs decode
            self.page.evaluate(
                """() => {
                  const panel = window.jupyterapp.shell.currentWidget;
                  const scroller = panel.content.node.querySelector('.jp-WindowedPanel-outer')
                    || panel.content.node;
                  scroller.scrollTop = 0;
                }"""
            )
            self.page.screenshot(path=str(path))
        finally:
            self.page.set_viewport_size(size)
        return path


def error_outputs(model: dict) -> list[tuple[int, dict]]:
    """``(cell index, output)`` for every error output of a notebook model."""
    return [
        (i, out)
        for i, cell in enumerate(model["cells"])
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def traceback_text(output: dict) -> str:
    """An error output's traceback without terminal colours."""
    return ANSI.sub("", "\n".join(output.get("traceback", [])))
