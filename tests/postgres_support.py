"""A real PostgreSQL server for the gradebook tests, and courses released into databases on it."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from course_tools import local_postgres
from course_tools.course import REPO
from course_tools.grading.claims import ClaimBoard, Outcome, engine_for
from course_tools.grading.sandbox import unavailable
from course_tools.grading.sheet import read_sheet
from course_tools.sample_class import Course, build_course, sample_class
from tests.class_fixture import CELL_TIMEOUT, MEMORY_MB, NOTEBOOK_TIMEOUT, run_tool

ASSIGNMENT = "03_quantization"  # the quickest to grade


def require_postgres() -> None:
    """Skip (fail under CI, where ``.ci/run`` installs it) where no local server can start."""
    reason = local_postgres.unavailable() or unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the PostgreSQL gradebook tests need: {reason}")
        pytest.skip(reason)


@dataclass
class PostgresCourse:
    """A course whose gradebook is a database of its own on the test server."""

    course: Course
    db_url: str

    @property
    def root(self) -> Path:
        return self.course.root

    @property
    def environment(self) -> dict[str, str]:
        """The environment of a command on this course: the gradebook URL as configuration."""
        return {**os.environ, "MCL_GRADEBOOK_URL": self.db_url}

    def board(self) -> ClaimBoard:
        board = ClaimBoard(engine_for(self.db_url))
        board.ensure_table()
        return board

    def outcomes(self) -> dict[str, Outcome]:
        board = self.board()
        try:
            return board.outcomes(ASSIGNMENT)
        finally:
            board.engine.dispose()

    def sheet(self) -> dict[str, dict[str, str]]:
        return read_sheet(self.root / "build" / "grades" / f"{ASSIGNMENT}.csv")

    def command(self, module: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``python -m course_tools.<module> ...`` on this course."""
        return run_tool(module, *args, env=self.environment, check=check)

    def collect(self, folder: Path, assignment: str = ASSIGNMENT) -> None:
        self.command("collect", assignment, str(folder), "--root", str(self.root))

    def worker_args(self, *extra: str, assignment: str = ASSIGNMENT) -> list[str]:
        """``grade`` arguments for this course with the tests' small limits."""
        return [
            assignment,
            "--root",
            str(self.root),
            "--source",
            str(self.course.source),
            "--cell-timeout",
            str(CELL_TIMEOUT),
            "--notebook-timeout",
            str(NOTEBOOK_TIMEOUT),
            "--memory-mb",
            str(MEMORY_MB),
            *extra,
        ]

    def start_worker(self, *extra: str, log: Path) -> subprocess.Popen:
        """One ``grade --worker`` process in its own session (so that a test can kill it all)."""
        with log.open("w") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "course_tools.grade", *self.worker_args("--worker", *extra)],
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=self.environment,
                start_new_session=True,
            )


def new_course(
    server: local_postgres.LocalPostgres, folder: Path, name: str, every_assignment: bool = False
) -> PostgresCourse:
    """A new database on ``server`` with :data:`ASSIGNMENT` (or all) released into it, in ``folder``."""
    db_url = server.create_database(name)
    only = None if every_assignment else [ASSIGNMENT]
    return PostgresCourse(build_course(folder, db_url, only=only), db_url)


def sample(course: PostgresCourse, size: int) -> Path:
    """A collected sample class of ``size`` (full, half done and blank in turn)."""
    lms = sample_class(course.course, ASSIGNMENT, course.root.parent / "lms", size)
    course.collect(lms)
    return lms


def graded_by(log: Path) -> list[str]:
    """The students a worker's log says it finished (claims it recorded)."""
    lines = log.read_text().splitlines()
    return [
        line.split()[1]
        for line in lines
        if len(line.split()) > 2 and ":" in line.split()[0] and "claim lost" not in line
    ]


def wait_for(condition, timeout: float, what: str, poll: float = 0.3) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll)
