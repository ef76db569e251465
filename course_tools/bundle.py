"""Build what students get: the released notebooks, ``lab_utils`` as a wheel, a short README.

``python -m course_tools.bundle`` (``make bundle``) writes ``build/bundle/<NAME>/`` and
``build/<NAME>.zip``; ``--assignments 01_pruning 02_distillation`` ships only those. A release that
holds earlier assignments' answers (the capstone, ``course_tools.provided``) is shipped only once
those assignments are past their due date in ``due_dates.csv`` (README "Release order"); by default
it is left out with a note until then, and asking for it earlier is an error unless ``--before-due``.

The wheel is built from a temporary project that holds a copy of ``lab_utils`` and nothing else, so
no instructor tool, solution or test can end up in it. It also installs three config files into the
student's environment (``<prefix>/etc/jupyter``): the course's cell timeout for nbgrader's Validate
button, and Formgrader, Create Assignment and the course list turned off (they are the instructor's).
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from course_tools.course import BUILD, RELEASE, REPO, course_config, notebooks
from course_tools.due_dates import read_due_dates
from course_tools.hub import STUDENT_DISABLED_LAB_PLUGINS, STUDENT_DISABLED_SERVER_EXTENSIONS
from course_tools.provided import answer_cells, requested_names

NAME = "model-compression-lab-student"
# Ranges, not the course's exact pins: students install on Python 3.11 to 3.13 on Linux, macOS
# and Windows. torch stays on the series the course is tested with (requirements.lock): 2.13 has
# wheels for all three Pythons and systems, and a newer torch may change what the notebooks show
# (notebook 3's quantize_dynamic is already deprecated). The notebooks import torch, numpy, matplotlib, tqdm and
# IPython (with ipykernel); lab_utils imports torch, numpy, scikit-learn, matplotlib and tqdm.
STUDENT_REQUIREMENTS = (
    "torch==2.13.*",
    "numpy>=2.0,<3",
    "scikit-learn>=1.5,<2",
    "matplotlib>=3.9,<4",
    "tqdm>=4.66,<5",
    "ipywidgets>=8,<9",
    "ipykernel>=6.29",
    "jupyterlab>=4.2,<5",
    "nbgrader>=0.9.6,<0.10",  # the Validate button; the notebooks' metadata is nbgrader schema 3
)
PYTHON_RANGE = ">=3.11"
# Jupyter merges the files of a ``*.d`` folder in name order, later ones winning: this name sorts
# after ``nbgrader.json``, which nbgrader installs into the same folder with every extension on.
CONFIG_FILE = "zz-model-compression-lab-student.json"


def course_version() -> str:
    """The course's version, from the repo's ``pyproject.toml``."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def wheel_name(version: str | None = None) -> str:
    """The file name of the student wheel."""
    return f"{NAME.replace('-', '_')}-{version or course_version()}-py3-none-any.whl"


def _pyproject(version: str) -> str:
    requirements = "".join(f'    "{r}",\n' for r in STUDENT_REQUIREMENTS)
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{NAME}"\nversion = "{version}"\n'
        'description = "lab_utils for the Model Compression Lab notebooks (student install)."\n'
        f'requires-python = "{PYTHON_RANGE}"\ndependencies = [\n{requirements}]\n\n'
        '[tool.setuptools]\npackages = ["lab_utils"]\n\n'
        '[tool.setuptools.package-data]\nlab_utils = ["checkpoints/teacher.pt"]\n\n'
        "[tool.setuptools.data-files]\n"
        '"etc/jupyter" = ["jupyter-config/nbgrader_config.py"]\n'
        f'"etc/jupyter/jupyter_server_config.d" = ["jupyter-config/server/{CONFIG_FILE}"]\n'
        f'"etc/jupyter/labconfig/page_config.d" = ["jupyter-config/lab/{CONFIG_FILE}"]\n'
    )


def _jupyter_config(project: Path) -> None:
    """The three config files the wheel installs into ``<prefix>/etc/jupyter``."""
    config = project / "jupyter-config"
    (config / "server").mkdir(parents=True)
    (config / "lab").mkdir()
    timeout = course_config().Execute.timeout
    (config / "nbgrader_config.py").write_text(
        '"""nbgrader settings for the Model Compression Lab (installed with its lab_utils)."""\n\n'
        "c = get_config()  # noqa: F821\n"
        f"c.Execute.timeout = {timeout!r}  # Validate runs cells that train small models\n"
    )
    server = {
        "ServerApp": {
            "jpserver_extensions": dict.fromkeys(STUDENT_DISABLED_SERVER_EXTENSIONS, False)
        }
    }
    (config / "server" / CONFIG_FILE).write_text(json.dumps(server, indent=2) + "\n")
    lab = {"disabledExtensions": dict.fromkeys(STUDENT_DISABLED_LAB_PLUGINS, True)}
    (config / "lab" / CONFIG_FILE).write_text(json.dumps(lab, indent=2) + "\n")


def build_wheel(out_dir: Path, version: str | None = None) -> Path:
    """Build the student wheel (``lab_utils`` and its teacher checkpoint only) into ``out_dir``."""
    version = version or course_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / NAME
        shutil.copytree(
            REPO / "lab_utils",
            project / "lab_utils",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        (project / "pyproject.toml").write_text(_pyproject(version))
        _jupyter_config(project)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
            + ["--no-build-isolation", "--disable-pip-version-check", "-w", str(out_dir)]
            + [str(project)],
            check=True,
            cwd=tmp,
        )
    wheel = out_dir / wheel_name(version)
    if not wheel.is_file():
        raise RuntimeError(f"pip wheel did not write {wheel.name} into {out_dir}")
    return wheel


def student_readme(wheel: str, assignments: list[str]) -> str:
    """The bundle's README: make a venv, install the wheel, open JupyterLab."""
    listed = ", ".join(f"`{a}`" for a in assignments)
    return f"""# Model Compression Lab: student bundle

The notebooks of the course ({listed}) and `lab_utils`, the small package they import (models,
data, training and timing helpers, and the pretrained teacher). Python 3.11, 3.12 or 3.13 on
Linux, macOS (Apple silicon) or Windows; nothing is downloaded while the notebooks run.

## Set up once

Make a virtual environment in this folder and activate it (one line for your system):

- Linux, macOS: `python3 -m venv .venv && source .venv/bin/activate`
- Windows (PowerShell): `py -3.12 -m venv .venv; .venv\\Scripts\\Activate.ps1` (or `-3.11`, `-3.13`)

Then the two commands:

```
pip install {wheel}
jupyter lab notebooks
```

On Linux, `pip` takes PyTorch's multi-GB CUDA build by default; the CPU build is all the course
needs: `pip install --extra-index-url https://download.pytorch.org/whl/cpu {wheel}`.
Next time, activate the environment again and run `jupyter lab notebooks`.

## Working on a notebook

1. Open a notebook (kernel "Python 3") and run the cells from the top.
2. Fill each stub (`raise NotImplementedError()`) and run the test cell right below it. Prose, demo
   and test cells are read-only; answer cells are yours.
3. Answer the written questions in the cells marked "YOUR ANSWER HERE".
4. Before handing in, click **Validate** in the notebook's toolbar: it runs every visible test.
   Hand in the `.ipynb` file as your instructor asks.
"""


def answers_held(assignment: str) -> set[str]:
    """The earlier assignments whose reference answers ``assignment``'s release holds."""
    answers = answer_cells()
    return {
        answers[name][0]
        for nb in notebooks()
        if nb.assignment == assignment
        for name in requested_names(nb.solution_text.read_text())
    }


def not_yet_due(assignments: list[str], due: dict[str, datetime], now: datetime) -> dict[str, str]:
    """``{assignment: why it may not go out yet}`` for releases holding answers not yet due."""
    held = {}
    for assignment in assignments:
        waiting = [
            f"{e} is due {due[e]:%Y-%m-%d %H:%M} UTC" if e in due else f"{e} has no due date"
            for e in sorted(answers_held(assignment))
            if e not in due or due[e] > now
        ]
        if waiting:
            held[assignment] = (
                f"it holds reference answers of earlier notebooks, and {'; '.join(waiting)}"
            )
    return held


def build_bundle(
    out_dir: Path = BUILD,
    assignments: list[str] | None = None,
    release_dir: Path = RELEASE,
    due: dict[str, datetime] | None = None,
    before_due: bool = False,
    progress=print,
) -> Path:
    """Write ``out_dir/bundle/<NAME>/`` and ``out_dir/<NAME>.zip``; returns the zip's path.

    ``due``: the due dates (default: ``due_dates.csv``). A release holding answers of assignments
    not yet past due is left out of the default choice (said through ``progress``), and asked for
    by name it raises ``ValueError``, unless ``before_due``.
    """
    available = sorted(p.name for p in release_dir.iterdir() if any(p.glob("*.ipynb")))
    chosen = available if not assignments else list(assignments)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(f"not in {release_dir}: {unknown}; released: {available}")
    due = read_due_dates() if due is None else due
    held = {} if before_due else not_yet_due(chosen, due, datetime.now(UTC))
    if held and assignments:
        reasons = "; ".join(f"{a}: {why}" for a, why in held.items())
        raise ValueError(
            f"Not shipping {sorted(held)} before the answers it holds are due ({reasons}). Set the "
            "due dates in due_dates.csv, wait until they pass, or pass --before-due."
        )
    for assignment, why in held.items():
        progress(f"left out {assignment}: {why} (due_dates.csv; --before-due ships it anyway)")
    chosen = [a for a in chosen if a not in held]
    root = out_dir / "bundle" / NAME
    shutil.rmtree(root, ignore_errors=True)
    (root / "notebooks").mkdir(parents=True)
    for assignment in chosen:
        dest = root / "notebooks" / assignment
        dest.mkdir()
        for notebook in sorted((release_dir / assignment).glob("*.ipynb")):
            shutil.copy(notebook, dest / notebook.name)
    wheel = build_wheel(root)
    (root / "README.md").write_text(student_readme(wheel.name, chosen))
    archive = out_dir / f"{NAME}.zip"
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root.parent).as_posix())
    return archive


def main() -> None:
    """Build the student bundle and print where it is and how large."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--assignments",
        nargs="+",
        metavar="ASSIGNMENT",
        help="the assignments to ship, e.g. 01_pruning 02_distillation (default: every release whose earlier answers are due)",
    )
    parser.add_argument("--out", type=Path, default=BUILD, help="output folder (default: build/)")
    parser.add_argument(
        "--before-due",
        action="store_true",
        help="ship a release that holds earlier answers before those are due (never to students)",
    )
    args = parser.parse_args()
    try:
        archive = build_bundle(args.out, args.assignments, before_due=args.before_due)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    print(f"wrote {archive} ({archive.stat().st_size / 1e6:.2f} MB, {len(names)} files):")
    for name in names:
        print(f"  {name}")


if __name__ == "__main__":
    main()
