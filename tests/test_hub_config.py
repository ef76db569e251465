"""The JupyterHub settings course_tools.hub writes (no hub runs: tests/test_hub.py runs one)."""

import json
from pathlib import Path
from types import SimpleNamespace

from traitlets.config import Config

from course_tools.hub import (
    STUDENT_DISABLED_LAB_PLUGINS,
    ClassHub,
    configure,
    hub_config_text,
    install,
    nbgrader_settings,
)


def _hub(tmp_path: Path) -> ClassHub:
    """Settings for a class of two under ``tmp_path``."""
    return ClassHub(
        instructor="alice",
        students=("bob", "carol"),
        course_dir="/home/alice/model-compression-lab",
        exchange=str(tmp_path / "exchange"),
        state_dir=str(tmp_path / "state"),
        prefix=str(tmp_path / "env"),
    )


def _spawned_environment(config: Config, name: str) -> dict[str, str]:
    """The environment the hook gives ``name``'s server."""
    spawner = SimpleNamespace(
        user=SimpleNamespace(name=name), environment=dict(config.Spawner.environment)
    )
    config.Spawner.pre_spawn_hook(spawner)
    return spawner.environment


def test_instructor_server_reads_the_course_config(tmp_path: Path) -> None:
    """The instructor's server gets the checkout as an extra Jupyter config folder."""
    config = Config()
    configure(config, _hub(tmp_path))
    env = _spawned_environment(config, "alice")
    assert env["JUPYTER_CONFIG_PATH"] == "/home/alice/model-compression-lab"


def test_student_server_reads_the_student_config(tmp_path: Path) -> None:
    """A student's server gets the folder that turns Formgrader off, not the course."""
    hub = _hub(tmp_path)
    config = Config()
    configure(config, hub)
    env = _spawned_environment(config, "bob")
    assert env["JUPYTER_CONFIG_PATH"] == str(hub.student_config_dir)
    assert "PATH" in env  # the environment's bin/ (alembic) stays


def test_hook_does_not_share_one_environment_between_users(tmp_path: Path) -> None:
    """Each server gets its own environment: the instructor's setting never leaks to a student."""
    config = Config()
    configure(config, _hub(tmp_path))
    _spawned_environment(config, "alice")
    assert "JUPYTER_CONFIG_PATH" not in config.Spawner.environment


def test_only_the_class_may_log_in(tmp_path: Path) -> None:
    """The allowed users are the instructor and the students."""
    config = Config()
    configure(config, _hub(tmp_path))
    assert config.Authenticator.allowed_users == {"alice", "bob", "carol"}


def test_written_hub_config_rebuilds_the_same_settings(tmp_path: Path) -> None:
    """``jupyterhub_config.py`` as written configures the same class when JupyterHub runs it."""
    hub = _hub(tmp_path)
    config = Config()
    exec(hub_config_text(hub), {"c": config})  # as JupyterHub loads it
    expected = Config()
    configure(expected, hub)
    for section in ("JupyterHub", "ConfigurableHTTPProxy", "Authenticator"):
        assert config[section] == expected[section], section
    assert config.Spawner.cmd == expected.Spawner.cmd


def test_nbgrader_settings_carry_the_course_id_exchange_and_timeout(tmp_path: Path) -> None:
    """Every user's nbgrader config names the course, the exchange and the course's cell timeout."""
    config = Config()
    exec(nbgrader_settings("/srv/x"), {"get_config": lambda: config})
    assert config.CourseDirectory.course_id == "model-compression-lab"
    assert config.Exchange.root == "/srv/x"
    assert config.Execute.timeout == 120


def test_install_writes_the_files_and_an_open_exchange(tmp_path: Path) -> None:
    """install() writes both configs, the student lab settings and a world-writable exchange."""
    hub = _hub(tmp_path)
    config_file = install(hub)
    assert config_file == tmp_path / "state" / "jupyterhub_config.py"
    assert (tmp_path / "env" / "etc" / "jupyter" / "nbgrader_config.py").exists()
    page = json.loads((hub.student_config_dir / "labconfig" / "page_config.json").read_text())
    assert set(page["disabledExtensions"]) == set(STUDENT_DISABLED_LAB_PLUGINS)
    assert (tmp_path / "exchange").stat().st_mode & 0o777 == 0o777
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
