"""A JupyterLab server and a headless Debian Chromium driven by Playwright, for the browser tests."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

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
# JupyterLab user settings for the test: timing in cell metadata (to find long cells), no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"recordTiming": True},
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


def free_port() -> int:
    """A localhost TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class JupyterLab:
    """A running ``jupyter lab`` serving ``root`` on localhost with a token set by the test."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
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
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (it shuts its kernels down), then its process group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()


def start_jupyterlab(root: Path, home: Path) -> JupyterLab:
    """Start ``python -m jupyter lab`` of this environment on a free port; ``home`` isolates config.

    The server's working directory is ``root``: nbgrader's Validate reads ``nbgrader_config.py``
    from there, as it would from a student's folder.
    """
    for name in ("config", "data", "runtime", "settings", "workspaces"):
        (home / name).mkdir(parents=True, exist_ok=True)
    for relative, settings in LAB_SETTINGS.items():
        path = home / "settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("NBGRADER_EXECUTION", None)
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
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab = JupyterLab(root, port, token, process, log_path, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            lab.stop()
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "api/status")
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                lab.stop()
                raise RuntimeError(f"jupyter lab did not answer in time:\n{lab.log_tail()}") from None
            time.sleep(0.25)


def launch_chromium(playwright) -> Any:
    """Launch Debian's Chromium headless through Playwright (no Playwright browser download)."""
    return playwright.chromium.launch(
        executable_path=str(require_chromium()), headless=True, args=CHROMIUM_FLAGS
    )


def strip_solution_markers(source: str) -> str:
    """An answer as a student would type it: the source without nbgrader's solution markers."""
    return "\n".join(
        line
        for line in source.splitlines()
        if not re.match(r"\s*#*\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", line)
    )


def solved_notebook(release: Path, source: Path) -> nbformat.NotebookNode:
    """The release notebook with every answer cell filled in from the solution (a solved copy).

    Locked cells keep the release's text and checksums, so Validate also checks they are unchanged.
    """
    answers = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nbformat.read(source, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    notebook = nbformat.read(release, as_version=4)
    filled = set()
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            if meta["grade_id"] not in answers:
                raise ValueError(
                    f"{release} has answer cell {meta['grade_id']!r} that the solution lacks: "
                    "the release is out of date (run `python -m course_tools.release`)."
                )
            cell.source = strip_solution_markers(answers[meta["grade_id"]])
            filled.add(meta["grade_id"])
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
