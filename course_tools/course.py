"""Where the course lives and how nbgrader sees it: paths, assignments, config, source build."""

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from course_tools.grading.cells import grade_id
from course_tools.provided import expand

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "notebooks"
BUILD = REPO / "build"
SOURCE = BUILD / "source"


@dataclass(frozen=True)
class Notebook:
    """One notebook of one assignment: ``solutions/<assignment>/<name>.py``."""

    assignment: str
    name: str

    @property
    def solution_text(self) -> Path:
        """The jupytext ``py:percent`` instructor source."""
        return SOLUTIONS / self.assignment / f"{self.name}.py"

    def source_notebook(self, source_dir: Path = SOURCE) -> Path:
        """The nbgrader source notebook built from the text."""
        return source_dir / self.assignment / f"{self.name}.ipynb"

    def release_notebook(self, release_dir: Path = RELEASE) -> Path:
        """The student release notebook."""
        return release_dir / self.assignment / f"{self.name}.ipynb"

    def read(self) -> nbformat.NotebookNode:
        """The solution text as a notebook, with earlier notebooks' provided answers filled in."""
        return expand(jupytext.read(self.solution_text, fmt="py:percent"), self.assignment)


def notebooks() -> list[Notebook]:
    """Every solution notebook present, sorted by assignment then name."""
    return [
        Notebook(path.parent.name, path.stem)
        for path in sorted(SOLUTIONS.glob("*/*.py"))
        if not path.name.startswith("_")
    ]


def assignments() -> list[str]:
    """Every assignment present in ``solutions/``."""
    return sorted({nb.assignment for nb in notebooks()})


def build_source(source_dir: Path = SOURCE) -> list[Path]:
    """Convert every ``solutions/*/*.py`` into an nbgrader source ``.ipynb``; returns their paths."""
    written = []
    for nb in notebooks():
        notebook = nb.read()
        notebook.metadata.pop("jupytext", None)
        for i, cell in enumerate(notebook.cells):  # stable ids keep the release diff-free
            cell.id = grade_id(cell) or f"cell-{i:03d}"
        out = nb.source_notebook(source_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out)
        written.append(out)
    return written


def ensure_venv_on_path() -> None:
    """nbgrader shells out to ``alembic``: put this interpreter's ``bin/`` first on PATH."""
    bindir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def course_config(root: Path = REPO, **directories: str) -> Config:
    """The repo's ``nbgrader_config.py``, re-rooted at ``root`` (a temporary course in tests).

    ``directories`` override ``CourseDirectory`` folders, e.g. ``release_directory="..."``.
    Outside the repo the source folder stays the repo's build and the gradebook moves to ``root``.
    """
    ensure_venv_on_path()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    root = Path(root).resolve()
    if root != REPO:
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.source_directory = str(SOURCE)
        server = os.environ.get("MCL_GRADEBOOK_URL")  # a shared gradebook wherever the course is
        config.CourseDirectory.db_url = server or f"sqlite:///{root}/gradebook.db"
    for key, value in directories.items():
        setattr(config.CourseDirectory, key, value)
    return config


def submit(root: Path, nb: Notebook, student: str, notebook_file: Path) -> Path:
    """Copy ``notebook_file`` in as ``student``'s submission of ``nb`` in the course at ``root``."""
    dest = Path(root) / "build" / "submitted" / student / nb.assignment / f"{nb.name}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook_file, dest)
    return dest


def nbgrader_api(config: Config):
    """An ``NbGraderAPI`` for ``config`` (imported late: nbgrader is slow to import)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    return NbGraderAPI(CourseDirectory(config=config), config=config)
