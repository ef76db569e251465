"""Local users, an environment every user can run, and a JupyterHub process, for tests/test_hub.py."""

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from course_tools.course import REPO
from tests.browser_support import log_tail, terminate

PROXY = "configurable-http-proxy"
HUB_START_TIMEOUT = 60.0
# Console scripts a user's server or nbgrader runs by name (nbgrader shells out to alembic).
SCRIPTS = ("alembic", "jupyter", "jupyter-lab", "jupyter-server", "nbgrader")


def missing_requirement() -> str | None:
    """Why the JupyterHub test cannot run here, or None."""
    if os.geteuid() != 0:
        return "it creates local users and runs JupyterHub's PAM login: run it as root"
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        return "useradd and runuser are missing"
    if shutil.which(PROXY) is None:
        return f"{PROXY} is missing: `npm install -g configurable-http-proxy@5` (.ci/run does it)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is missing (the grade command sandboxes student code)"
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed: `make setup` installs the dev extras"
    return None


def require_hub() -> None:
    """Skip the test (fail under CI) when it cannot run here."""
    reason = missing_requirement()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"JupyterHub test: {reason}", pytrace=False)
    pytest.skip(f"JupyterHub test: {reason}")


def world_readable(path: Path) -> bool:
    """True if any user can reach ``path`` (every parent world-traversable) and list it."""
    path = Path(path).resolve()
    parents_ok = all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
    mode = path.stat().st_mode
    return parents_ok and bool(mode & stat.S_IROTH) and bool(mode & stat.S_IXOTH)


def shared_site_packages() -> Path:
    """The site-packages of the environment running the tests (torch, nbgrader, jupyterhub...)."""
    return Path(sysconfig.get_paths()["purelib"])


def reachable(path: Path, copies: Path, ignore: Any = None) -> Path:
    """``path`` if every user can read it, else a copy of it under ``copies`` (hard links if possible).

    The machine's default Python, and a clone or venv under root's home, sit in a folder only root
    may enter (/root is mode 700): other users could not run or import them.
    """
    path = Path(path).resolve()
    if world_readable(path):
        return path
    dest = copies / path.relative_to("/")
    if not dest.exists():
        shutil.copytree(path, dest, symlinks=True, ignore=ignore, copy_function=_link_or_copy)
    for folder in [copies, *dest.relative_to(copies).parents]:  # the way down stays open
        (copies / folder).chmod((copies / folder).stat().st_mode | 0o755)
    return dest


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (instant, no space) or, across disks, a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def reachable_interpreter(copies: Path) -> Path:
    """This Python (same build as the course environment) in a place every user can run it."""
    executable = Path(sys.executable).resolve()
    base = Path(sys.base_prefix).resolve()
    home = reachable(base, copies, ignore=shutil.ignore_patterns("site-packages", "test"))
    python = home / executable.relative_to(base)
    if home == base:
        return python
    # Its own file (not a link to the original), with the library path made relative: a build
    # like pyenv's finds libpython through an absolute RUNPATH into the unreachable folder.
    data = python.read_bytes()
    python.unlink()
    old = str(base / "lib").encode() + b"\0"
    new = b"$ORIGIN/../lib"
    if data.count(old) == 1:
        data = data.replace(old, new + b"\0" * (len(old) - len(new)))
    python.write_bytes(data)
    python.chmod(0o755)
    return python


def make_user_environment(dest: Path) -> Path:
    """A venv every user can run that sees this environment's packages and the repo; its python.

    Made in a second instead of installing 1.6 GB: a ``.pth`` file puts the repo first (so
    ``lab_utils`` and ``course_tools`` are the ones under test) and adds this environment's
    site-packages (and its own ``.pth`` files) after it. Console scripts are written for it.
    What other users cannot reach (the interpreter, a repo or venv under /root) is copied next to
    ``dest`` with hard links.
    """
    copies = dest.parent / "reachable"
    interpreter = reachable_interpreter(copies)
    repo = reachable(REPO, copies, ignore=shutil.ignore_patterns(".git", ".venv", "build"))
    shared = reachable(shared_site_packages(), copies)
    subprocess.run([interpreter, "-m", "venv", "--without-pip", dest], check=True)
    python = dest / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "model_compression_lab_test.pth").write_text(
        f"{repo}\nimport site; site.addsitedir({str(shared)!r})\n"
    )
    # Jupyter's data and config of this environment: JupyterLab's build and extensions (nbgrader's
    # Assignment List and Formgrader among them), kernelspecs, enabled server extensions.
    shutil.copytree(Path(sys.prefix, "etc", "jupyter"), dest / "etc" / "jupyter")
    data = Path(sys.prefix, "share", "jupyter")
    for item in data.iterdir():
        if item.name != "lab":
            (dest / "share" / "jupyter" / item.name).parent.mkdir(parents=True, exist_ok=True)
            (dest / "share" / "jupyter" / item.name).symlink_to(item)
    for item in (data / "lab").iterdir():  # a real folder: the test adds lab settings to it
        (dest / "share" / "jupyter" / "lab" / item.name).parent.mkdir(parents=True, exist_ok=True)
        (dest / "share" / "jupyter" / "lab" / item.name).symlink_to(item)
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name in SCRIPTS}
    for name, ep in scripts.items():
        script = dest / "bin" / name
        script.write_text(
            f"#!{python}\nimport sys\nfrom {ep.module} import {ep.attr.split('.')[0]}\n"
            f"sys.exit({ep.attr}())\n"
        )
        script.chmod(0o755)
    return python


@dataclass(frozen=True)
class LocalUser:
    """A local account made for the test."""

    name: str
    password: str

    @property
    def home(self) -> Path:
        """The home folder ``useradd -m`` made."""
        return Path(pwd.getpwnam(self.name).pw_dir)

    def run(
        self, argv: list[str], cwd: Path | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` as this user (``runuser`` keeps root's PATH: give full paths)."""
        return subprocess.run(
            ["runuser", "-u", self.name, "--", *map(str, argv)],
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def chown(self, path: Path) -> None:
        """Give ``path`` (and everything under it) to this user."""
        entry = pwd.getpwnam(self.name)
        for item in [path, *Path(path).rglob("*")] if Path(path).is_dir() else [path]:
            os.chown(item, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def create_user(name: str) -> LocalUser:
    """``useradd -m`` a user with a random password."""
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
    user = LocalUser(name, secrets.token_urlsafe(12))
    subprocess.run(
        ["chpasswd"], input=f"{name}:{user.password}\n", text=True, check=True, capture_output=True
    )
    return user


def delete_user(name: str) -> None:
    """Kill what is left of ``name``'s processes, then ``userdel -r`` (quietly if already gone)."""
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "-r", name], capture_output=True)


@dataclass
class RunningHub:
    """A JupyterHub process serving on ``http://127.0.0.1:<port>/``."""

    process: subprocess.Popen
    port: int
    log_path: Path
    _log: Any

    @property
    def url(self) -> str:
        """The public URL (the proxy)."""
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, lines: int = 60) -> str:
        """The end of the hub's log (the single-user servers log there too)."""
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM the hub (it stops the proxy and the users' servers), then kill what is left."""
        terminate(self.process, grace=30)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # a proxy left behind
        except ProcessLookupError:
            pass
        self._log.close()


def start_hub(python: Path, config: Path, port: int, log_path: Path) -> RunningHub:
    """Start ``python -m jupyterhub -f config`` and wait until the proxy on ``port`` serves it."""
    log = log_path.open("w")
    env = {**os.environ, "PATH": f"{python.parent}:{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)  # the users' environment finds the repo by itself
    process = subprocess.Popen(
        [python, "-m", "jupyterhub", "-f", config],
        cwd=config.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    hub = RunningHub(process, port, log_path, log)
    deadline = time.monotonic() + HUB_START_TIMEOUT
    while True:
        if process.poll() is not None:
            hub.stop()
            raise RuntimeError(f"jupyterhub exited with {process.returncode}:\n{hub.log_tail()}")
        try:
            with urllib.request.urlopen(hub.url + "hub/login", timeout=5) as response:
                if response.status == 200:
                    return hub
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            hub.stop()
            raise RuntimeError(f"jupyterhub did not answer in time:\n{hub.log_tail()}")
        time.sleep(0.25)
