"""A throwaway PostgreSQL server on a unix socket, for the tests and the grading benchmark.

Debian's ``postgresql`` package puts the server in ``/usr/lib/postgresql/<version>/bin``. ``initdb``
refuses to run as root, so as root the server runs as a system user made for it (``mcl-postgres``).
The server listens on a socket in its own folder only (no TCP port), with trust authentication and
``fsync`` off: it holds nothing that must survive the machine, and anything that can reach the
socket is already on the machine as root or that user.
"""

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "mcl-postgres"
ROLE = "grader"  # the superuser role initdb creates; clients name it in the URL


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> tuple[int, ...]:
    version = Path(path).parts[-3]
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def unavailable() -> str:
    """Why a local server cannot start here (empty when it can)."""
    if server_binaries() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    return ""


@dataclass(frozen=True)
class LocalPostgres:
    """A running server: its folder (data, socket, log) and the user it runs as."""

    folder: Path
    user: str

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3, unix socket)."""
        return f"postgresql+psycopg://{ROLE}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        import psycopg

        with psycopg.connect(
            dbname="postgres", user=ROLE, host=str(self.socket_dir), autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        _run_as(
            self.user,
            [server_binaries() / "pg_ctl", "-D", self.folder / "data", "-m", "fast", "-w", "stop"],
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_as(user: str, command: list) -> None:
    """Run ``command`` as ``user`` (via ``runuser`` when that is not who we are)."""
    command = [str(part) for part in command]
    if pwd.getpwuid(os.getuid()).pw_name != user:
        command = ["runuser", "-u", user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")


def _server_user() -> str:
    """Who runs the server: a system user made for it when we are root, else ourselves."""
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    known = {entry.pw_name for entry in pwd.getpwall()}
    if SERVER_USER not in known:
        done = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode not in (0, 9):  # 9: made meanwhile by another process
            raise RuntimeError(f"useradd {SERVER_USER} failed: {done.stderr}")
    return SERVER_USER


def start(folder: Path) -> LocalPostgres:
    """Initialise and start a server in ``folder`` (created; must not exist yet)."""
    if reason := unavailable():
        raise RuntimeError(reason)
    user = _server_user()
    folder.mkdir(parents=True)
    folder.chmod(0o755)  # the server user must reach its folders; clients the socket
    for name in ("data", "socket"):
        (folder / name).mkdir()
    entry = pwd.getpwnam(user)
    for path in (folder, folder / "data", folder / "socket"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in folder.parents:  # e.g. pytest's 700 temp folders: traversable, not listable
        if parent.stat().st_mode & 0o001 == 0:
            parent.chmod(parent.stat().st_mode | 0o001)
    binaries = server_binaries()
    _run_as(
        user, [binaries / "initdb", "-A", "trust", "--no-sync", "-U", ROLE, "-D", folder / "data"]
    )
    options = f"-k {folder / 'socket'} -c listen_addresses='' -c fsync=off -c max_connections=200"
    _run_as(
        user,
        [
            binaries / "pg_ctl",
            "-D",
            folder / "data",
            "-l",
            folder / "server.log",
            "-o",
            options,
            "-w",
            "start",
        ],
    )
    return LocalPostgres(folder, user)
