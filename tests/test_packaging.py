"""Packaging stays consistent: environment.yml mirrors pyproject.toml, the lock pins torch."""

import ast
import re
import tomllib

from course_tools.course import REPO

CONDA_NAMES = {"torch": "pytorch-cpu"}  # the conda-forge name of a PyPI package, where it differs


def _name(requirement: str) -> str:
    """The normalised package name of a requirement string."""
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    wanted = {
        CONDA_NAMES.get(_name(r), _name(r))
        for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    }
    lines = (REPO / "environment.yml").read_text().splitlines()
    listed = {_name(line.strip()[2:]) for line in lines if line.strip().startswith("- ")}
    listed -= {"python", "pip", "conda-forge", "nodefaults"}
    assert listed == wanted, (
        f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    )


def test_environment_yml_uses_conda_forge_only():
    text = (REPO / "environment.yml").read_text()
    channels = text.split("channels:")[1].split("dependencies:")[0]
    assert "conda-forge" in channels
    assert not re.search(r"^\s*-\s*(defaults|pytorch)\s*$", channels, re.M)
    assert "pytorch-cpu" in text


def test_torch_is_pinned_to_the_cpu_build_everywhere():
    assert "torch==2.13.0" in _pyproject()["project"]["dependencies"]
    lock = (REPO / "requirements.lock").read_text().splitlines()
    assert "torch==2.13.0" in lock
    pinned = [line for line in lock if line and not line.startswith("#")]
    assert all("==" in line for line in pinned), "every locked requirement needs an exact version"
    locked = {_name(line) for line in pinned}
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert wanted <= locked, f"pyproject packages missing from requirements.lock: {wanted - locked}"


def test_instructor_tools_never_import_test_code():
    """``course_tools`` ships in the package; ``tests`` does not (issue 10, item 6)."""
    offenders = []
    for path in sorted((REPO / "course_tools").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if any(n == "tests" or n.startswith("tests.") for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"instructor tools import test code: {offenders}"
