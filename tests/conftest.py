"""Shared fixtures: one release build per test session, shared by the pytest-xdist workers."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from course_tools.course import Notebook
from course_tools.headless import run_headless
from course_tools.release import generate


@pytest.fixture(scope="session")
def built_course(tmp_path_factory, worker_id) -> Path:
    """A course root with a fresh release (``<root>/release``) and gradebook, built once per run.

    Under xdist every worker shares the same folder; a file lock makes exactly one of them build it.
    Tests that write to the gradebook take a private copy (:func:`private_course`).
    """
    shared = (
        tmp_path_factory.getbasetemp()
        if worker_id == "master"
        else (tmp_path_factory.getbasetemp().parent)
    )
    root = shared / "course"
    with FileLock(str(shared / "course.lock")):
        if not (root / ".built").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            generate(release_dir=root / "release", root=root)
            (root / ".built").touch()  # generate() also rebuilt build/source for every worker
    return root


@pytest.fixture
def private_course(built_course, tmp_path) -> Path:
    """A writable copy of the built course (release and gradebook) for one test."""
    root = tmp_path / "course"
    shutil.copytree(built_course, root)
    return root


@pytest.fixture(scope="session")
def executed_notebook(built_course) -> Callable[[Notebook], Path]:
    """``executed(nb)``: the solution notebook ``nb`` executed by papermill, once per test run.

    The executed copy sits next to the shared build, so every xdist worker reuses the first run
    (a file lock per notebook makes the others wait for it). Tests asserting a notebook's
    ``summary`` share its ``xdist_group("papermill-<assignment>")`` to stay on that worker.
    """
    out_dir = built_course.parent / "executed"

    def executed(nb: Notebook) -> Path:
        done = out_dir / nb.assignment / f"{nb.name}.done"
        with FileLock(str(built_course.parent / f"executed-{nb.assignment}-{nb.name}.lock")):
            if not done.exists():
                run_headless(nb, out_dir=out_dir, progress=False)
                done.touch()
        return out_dir / nb.assignment / f"{nb.name}.ipynb"

    return executed
