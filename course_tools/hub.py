"""A JupyterHub for one class on one machine, with nbgrader's exchange (README "Running a class on JupyterHub").

``python -m course_tools.hub --instructor NAME --student A --student B --course-dir DIR`` writes
what a one-machine deployment needs, then ``python -m jupyterhub -f <state>/jupyterhub_config.py``
(as root, from the same environment) serves the class:

- ``<prefix>/etc/jupyter/nbgrader_config.py``: the settings every user's server reads (the course
  id, the exchange folder, the course's cell timeout for Validate);
- ``<prefix>/etc/jupyter/mcl-student/``: config only the students' servers read; it turns off
  Formgrader, Create Assignment and the course list, which are the instructor's;
- the exchange folder, writable by everyone (nbgrader's file exchange works by file permissions);
- ``<state>/jupyterhub_config.py``, which calls :func:`configure` with these settings.

The instructor's server reads the course's own ``nbgrader_config.py`` from ``course_dir`` (their
checkout of this repo), so Formgrader and every nbgrader command they run grade that course.
"""

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from course_tools.course import REPO, course_config

DEFAULT_EXCHANGE = "/srv/nbgrader/exchange"
DEFAULT_STATE = "/srv/jupyterhub"
STUDENT_CONFIG = "mcl-student"  # folder under <prefix>/etc/jupyter
# What only the instructor needs: hidden from students' JupyterLab and their servers.
STUDENT_DISABLED_LAB_PLUGINS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)
STUDENT_DISABLED_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.course_list",
)


@dataclass(frozen=True)
class ClassHub:
    """One class on one machine: who logs in, where the course and the exchange live, the ports."""

    instructor: str
    students: tuple[str, ...]
    course_dir: str  # the instructor's checkout of this repo (holds nbgrader_config.py)
    exchange: str = DEFAULT_EXCHANGE
    state_dir: str = DEFAULT_STATE  # the hub's database, cookie secret and config
    ip: str = ""  # "" listens on every interface
    port: int = 8000  # what browsers connect to (the proxy)
    hub_port: int = 8081  # the hub's own API, for the single-user servers
    proxy_api_port: int = 8001
    prefix: str = field(default_factory=lambda: sys.prefix)  # the environment users' servers run in

    @property
    def python(self) -> str:
        """The interpreter of :attr:`prefix` (every user must be able to run it)."""
        return str(Path(self.prefix) / "bin" / "python")

    @property
    def student_config_dir(self) -> Path:
        """Config read only by the students' servers."""
        return Path(self.prefix) / "etc" / "jupyter" / STUDENT_CONFIG

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClassHub":
        """The settings :meth:`to_dict` wrote."""
        return cls(**{**data, "students": tuple(data["students"])})

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data."""
        return {**asdict(self), "students": list(self.students)}


def configure(c: Any, hub: ClassHub) -> None:
    """Apply ``hub`` to a JupyterHub config object ``c`` (the ``c`` of ``jupyterhub_config.py``)."""
    state = Path(hub.state_dir)
    c.JupyterHub.bind_url = f"http://{hub.ip}:{hub.port}/"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub.hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    # Local accounts log in with their system password (PAM, JupyterHub's default).
    c.Authenticator.allowed_users = {hub.instructor, *hub.students}
    c.Authenticator.admin_users = {hub.instructor}
    c.Spawner.cmd = [hub.python, "-m", "jupyterhub.singleuser"]
    c.Spawner.default_url = "/lab"
    # nbgrader shells out to alembic for the gradebook: the environment's bin/ comes first.
    c.Spawner.environment = {"PATH": f"{Path(hub.python).parent}:/usr/local/bin:/usr/bin:/bin"}
    c.Spawner.pre_spawn_hook = _per_user(hub)


def _per_user(hub: ClassHub):
    """The hook that gives the instructor the course's nbgrader config and students theirs."""

    def hook(spawner: Any) -> None:
        """Point the server at its extra config folder before it starts."""
        name = spawner.user.name
        extra = hub.course_dir if name == hub.instructor else str(hub.student_config_dir)
        # A fresh dict: the configured one is shared by every spawner.
        spawner.environment = {**spawner.environment, "JUPYTER_CONFIG_PATH": extra}

    return hook


def nbgrader_settings(exchange: str, root: Path = REPO) -> str:
    """The text of the nbgrader config every user reads, with the course's id and cell timeout."""
    course = course_config(root)
    return (
        '"""nbgrader settings for every user of the class hub (written by course_tools.hub)."""\n\n'
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course.CourseDirectory.course_id!r}\n"
        f"c.Exchange.root = {exchange!r}\n"
        f"c.Execute.timeout = {course.Execute.timeout!r}  # Validate runs torch cells\n"
    )


def student_settings() -> dict[str, dict]:
    """Files of the students' config folder (relative path: JSON content)."""
    return {
        "labconfig/page_config.json": {
            "disabledExtensions": dict.fromkeys(STUDENT_DISABLED_LAB_PLUGINS, True)
        },
        "jupyter_server_config.json": {
            "ServerApp": {
                "jpserver_extensions": dict.fromkeys(STUDENT_DISABLED_SERVER_EXTENSIONS, False)
            }
        },
    }


def hub_config_text(hub: ClassHub) -> str:
    """The ``jupyterhub_config.py`` that serves ``hub``."""
    return (
        f"# Written by `python -m course_tools.hub`. Run (as root): {hub.python} -m jupyterhub -f "
        f"{Path(hub.state_dir) / 'jupyterhub_config.py'}\n"
        "from course_tools.hub import ClassHub, configure\n\n"
        f"configure(c, ClassHub.from_dict({json.dumps(hub.to_dict(), indent=4)}))  # noqa: F821\n"
    )


def install(hub: ClassHub, root: Path = REPO) -> Path:
    """Write every file the hub needs and make the exchange; returns the hub config's path."""
    etc = Path(hub.prefix) / "etc" / "jupyter"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "nbgrader_config.py").write_text(nbgrader_settings(hub.exchange, root))
    for relative, content in student_settings().items():
        path = hub.student_config_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n")
    exchange = Path(hub.exchange)
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o777)  # every user writes their submissions; nbgrader sets the rest
    state = Path(hub.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)  # the cookie secret and the hub's database
    config = state / "jupyterhub_config.py"
    config.write_text(hub_config_text(hub))
    return config


def main(argv: list[str] | None = None) -> None:
    """Command line: write the hub's files for one instructor and their students."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructor", required=True, help="the instructor's login name")
    parser.add_argument("--student", action="append", default=[], help="a student's login name")
    parser.add_argument(
        "--course-dir", required=True, help="the instructor's checkout of this repo"
    )
    parser.add_argument("--exchange", default=DEFAULT_EXCHANGE)
    parser.add_argument("--state", default=DEFAULT_STATE, help="the hub's own folder")
    parser.add_argument("--ip", default="")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    hub = ClassHub(
        args.instructor,
        tuple(args.student),
        os.path.abspath(args.course_dir),
        os.path.abspath(args.exchange),
        os.path.abspath(args.state),
        args.ip,
        args.port,
    )
    config = install(hub)
    print(f"wrote {config}; start the hub as root with: {hub.python} -m jupyterhub -f {config}")


if __name__ == "__main__":
    main()
