"""The hostile fixture class (tests/hostile_class.py), graded in the sandbox beside honest students.

The whole class is graded once per module on two workers with the tests' small limits, and the two
honest students once more alone in a separate course. The tests then check each student's status
and points, that the honest students got exactly what they get alone (sheet and gradebook rows,
a manual grade entered before grading included), and that nothing escaped: no file outside each
submission's own outputs changed, no secret reached any output, no marker file appeared on the
host, nothing reached the grader's terminal or a port it listens on, and no process of a sandbox
is left running.

Needs bubblewrap and root (cgroups); skipped otherwise, failed under CI.
"""

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from course_tools.course import REPO
from course_tools.grading import cgroups
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade
from course_tools.grading.sandbox import unavailable
from course_tools.grading.sheet import SheetRow, read_sheet
from course_tools.grading.status import Status
from course_tools.sample_class import build_course
from tests.class_fixture import CELL_TIMEOUT, MEMORY_MB, NOTEBOOK_TIMEOUT, hidden_test_lines
from tests.hostile_class import (
    ASSIGNMENT,
    ENV_SECRET,
    FAMILIES,
    FORGED_PROGRESS,
    HONEST,
    LEAK,
    MANUAL_CELL,
    MANUAL_SCORE,
    MARKER,
    STUDENTS,
    HostileClass,
    Places,
    build_hostile_class,
    pruning_notebook,
    write_honest,
)
from tests.test_grading import page_text

pytestmark = [pytest.mark.sandbox, pytest.mark.xdist_group("hostile")]

ALL_STUDENTS = [s for students in STUDENTS.values() for s in students]
WORKERS = 2


def require_sandbox() -> None:
    """Skip (fail under CI) where the sandbox with cgroups cannot run."""
    reason = unavailable()
    if reason is None and not cgroups.usable():
        reason = "cgroups (memory, pids) need root and the v1 controllers"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the hostile class needs the sandbox: {reason}")
        pytest.skip(f"the hostile class needs the sandbox: {reason}")


class Listener:
    """A TCP port on the host's 127.0.0.1 that counts who connects (no sandbox may)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def probe(self) -> None:
        """Connect once from the host (the count must see it), then start counting from zero."""
        socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        deadline = time.monotonic() + 5
        while self.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.connections == 1, "the listener does not count connections"
        self.connections = 0

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@contextlib.contextmanager
def captured_fds(path: Path):
    """Send this process's (and its children's) file descriptors 1 and 2 to ``path``."""
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with path.open("wb") as handle:
        try:
            for fd in (1, 2):
                os.dup2(handle.fileno(), fd)
            yield
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


Snapshot = dict[str, tuple]


def snapshot(folder: Path) -> Snapshot:
    """Every entry under ``folder``: type, and size, mtime and sha256 of regular files.

    Links and special files are described, never followed or opened; folders by existence only
    (their mtime changes when grading adds its own outputs inside).
    """
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            relative = str(path.relative_to(folder))
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("dir",)
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[relative] = ("file", info.st_size, info.st_mtime_ns, digest)
            else:
                found[relative] = ("special", stat.S_IFMT(info.st_mode), info.st_mtime_ns)
    return found


def source_files(folder: Path) -> Snapshot:
    """:func:`snapshot` of a package without its byte-code caches (the grader may write them)."""
    return {k: v for k, v in snapshot(folder).items() if "__pycache__" not in Path(k).parts}


def own_output(relative: str, graded: set[str]) -> bool:
    """True for what grading may write: a graded student's outputs, the sheet, the gradebook."""
    parts = Path(relative).parts
    if parts[0].startswith("gradebook.db"):
        return True
    if parts[:2] == ("build", "grades") or parts in (
        ("build", "autograded"),
        ("build", "feedback"),
    ):
        return True
    return parts[:2] in (("build", "autograded"), ("build", "feedback")) and parts[2] in graded


def changes(before: Snapshot, after: Snapshot, graded: set[str]) -> list[str]:
    """Paths added, removed or changed, other than grading's own outputs."""
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k) and not own_output(k, graded))


def proc_field(pid: str, name: str) -> str | None:
    """A field of ``/proc/<pid>/status`` (None once the process is gone)."""
    try:
        status = Path("/proc", pid, "status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{name}:\s+(\d+)", status, re.M)
    return found.group(1) if found else None


def kernel_group_owner(pid: str) -> int | None:
    """The grading worker whose cgroups hold ``pid`` (groups are named ``<worker pid>-<n>``)."""
    try:
        lines = Path("/proc", pid, "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(":", 2)[-1]
        if f"/{cgroups.PARENT}/" in path:
            return int(path.rsplit("/", 1)[-1].split("-")[0])
    return None


def sandbox_processes(workers: set[int]) -> list[str]:
    """``pid uid command`` of every process in the kernel cgroups of ``workers``.

    Whatever a kernel starts stays in its cgroups (only root may move a process out), whichever
    uid it runs as.
    """
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if kernel_group_owner(pid) in workers:
            try:
                command = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            uid = proc_field(pid, "Uid")
            found.append(f"{pid} uid {uid}: {command.decode(errors='replace')[:100]}")
    return found


class Watch:
    """While grading runs: the grading workers (this process's children) and their kernels.

    Other test modules may grade at the same time; only processes in the cgroups of this
    module's workers are this module's.
    """

    def __init__(self) -> None:
        self.workers: set[int] = set()
        self.kernels_seen = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        me = str(os.getpid())
        while not self.stop.wait(0.25):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                if proc_field(pid, "PPid") == me:
                    self.workers.add(int(pid))
            self.kernels_seen = max(self.kernels_seen, len(sandbox_processes(self.workers)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def markers(places: Places) -> list[Path]:
    """``pwned-*`` files an attack left outside its sandbox."""
    return sorted(p for folder in places.marker_folders for p in folder.glob(f"{MARKER}*"))


def enter_manual_grade(root: Path) -> None:
    """A person's score for honest1's written answer, entered before any grading."""
    from nbgrader.api import Gradebook

    notebook = pruning_notebook().name
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "model-compression-lab") as gb:
        gb.update_or_create_student("honest1")
        gb.add_submission(ASSIGNMENT, "honest1")
        grade = gb.find_grade(MANUAL_CELL, notebook, ASSIGNMENT, "honest1")
        grade.manual_score = MANUAL_SCORE
        gb.db.commit()


def gradebook_rows(root: Path, student: str) -> list[tuple]:
    """Every grade of ``student`` in the assignment: cell, auto and manual score, flags."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "model-compression-lab") as gb:
        for notebook in gb.find_submission(ASSIGNMENT, student).notebooks:
            for g in notebook.grades:
                rows.append(
                    (notebook.name, g.name, g.auto_score, g.manual_score, g.extra_credit,
                     g.needs_manual_grade)
                )  # fmt: skip
    return sorted(rows)


def submitted_students(root: Path) -> set[str]:
    """Students with a submission of the assignment in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "model-compression-lab") as gb:
        return {s.student.id for s in gb.find_assignment(ASSIGNMENT).submissions}


def output_text(path: Path) -> str:
    """Everything the outputs of an executed notebook show (text, errors, rich data)."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [output.get("ename", ""), output.get("evalue", "")]
            parts += output.get("traceback", [])
            parts += [str(v) for v in output.get("data", {}).values()]
    return "\n".join(parts)


@dataclass
class Graded:
    """The hostile class and the honest students alone, after grading, with what was observed."""

    hostile: HostileClass
    rows: dict[str, SheetRow]
    alone_root: Path
    alone: dict[str, SheetRow]
    before: Snapshot
    after: Snapshot
    decoy_before: Snapshot
    decoy_after: Snapshot
    lab_utils_before: Snapshot
    lab_utils_after: Snapshot
    leftover: list[str]
    kernels_seen: int
    markers: list[Path]
    connections: int
    terminal: str
    progress: list[str]
    secret: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The hostile class's course root."""
        return self.hostile.places.root

    def autograded(self, student: str) -> list[Path]:
        """The student's executed notebooks."""
        return sorted((self.root / "build" / "autograded" / student / ASSIGNMENT).glob("*.ipynb"))

    def feedback(self, student: str) -> list[Path]:
        """The student's feedback pages."""
        return sorted((self.root / "build" / "feedback" / student / ASSIGNMENT).glob("*.html"))


def limits() -> Limits:
    """The tests' small limits (tests/class_fixture.py), sandboxed."""
    return Limits(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, MEMORY_MB)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, request) -> Iterator[Graded]:
    """Grade the hostile class, then the honest students alone; observe everything around it."""
    require_sandbox()
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    base = tmp_path_factory.mktemp("hostile")
    course = build_course(base / "built")
    listener = Listener()
    listener.probe()
    decoy = base / "decoy"
    decoy.mkdir()
    (decoy / "keep.txt").write_text("an instructor's file outside the course\n")
    places = Places(base / "course", course.source, decoy, listener.port)
    places.root.mkdir()
    shutil.copy(course.root / "gradebook.db", places.root / "gradebook.db")
    canary = f"honest1-canary-{secrets.token_hex(8)}"
    hostile = build_hostile_class(course, places, canary)
    enter_manual_grade(places.root)
    alone_root = base / "alone"
    alone_root.mkdir()
    shutil.copy(course.root / "gradebook.db", alone_root / "gradebook.db")
    write_honest(course, alone_root, canary)
    enter_manual_grade(alone_root)
    for stale in markers(places):  # an earlier, broken run's; this run must leave none
        stale.unlink()
    seconds["build"] = time.perf_counter() - tick

    before = snapshot(places.root)
    decoy_before, lab_utils_before = snapshot(decoy), source_files(REPO / "lab_utils")
    secret = f"instructor-secret-{secrets.token_hex(8)}"
    progress: list[str] = []
    terminal = base / "terminal.txt"
    os.environ[ENV_SECRET] = secret
    watch = Watch()
    try:
        with captured_fds(terminal):
            tick = time.perf_counter()
            result = grade(
                ASSIGNMENT, places.root, course.source, limits(), WORKERS, progress=progress.append
            )
            seconds["hostile"] = time.perf_counter() - tick
            tick = time.perf_counter()
            alone = grade(
                ASSIGNMENT, alone_root, course.source, limits(), WORKERS, progress=progress.append
            )
            seconds["alone"] = time.perf_counter() - tick
    finally:
        os.environ.pop(ENV_SECRET, None)
        listener.close()
        watch.close()
    leftover = sandbox_processes(watch.workers)
    result = Graded(
        hostile=hostile,
        rows={r.student: r for r in result.rows},
        alone_root=alone_root,
        alone={r.student: r for r in alone.rows},
        before=before,
        after=snapshot(places.root),
        decoy_before=decoy_before,
        decoy_after=snapshot(decoy),
        lab_utils_before=lab_utils_before,
        lab_utils_after=source_files(REPO / "lab_utils"),
        leftover=leftover,
        kernels_seen=watch.kernels_seen,
        markers=markers(places),
        connections=listener.connections,
        terminal=terminal.read_text(errors="replace"),
        progress=progress,
        secret=secret,
        seconds=seconds,
    )
    yield result
    for path in result.markers:  # never leave an escaped attack's file behind
        path.unlink(missing_ok=True)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        timing = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        print(f"\nhostile class: {len(hostile.attacks)} submissions; {timing}; slowest:")
        print("\n".join(sorted(progress, key=seconds_of, reverse=True)[:5]))


def seconds_of(progress_line: str) -> float:
    """The seconds at the end of a progress line (0 for submissions not executed)."""
    found = re.search(r"([\d.]+) s$", progress_line.strip())
    return float(found.group(1)) if found else 0.0


def graded_students(g: Graded) -> set[str]:
    """Students whose submission was executed (their own outputs may change)."""
    return {s for s, e in g.hostile.expected.items() if e.points is not None}


# --- Statuses and points ----------------------------------------------------------------------


@pytest.mark.parametrize("student", ALL_STUDENTS)
def test_student_gets_expected_status_and_points(graded, student):
    expected = graded.hostile.expected[student]
    row = graded.rows.get(student)
    assert row is not None, f"no row in the sheet for {student!r}"
    scores = None
    if Status(row.status).graded:
        scores = {t: row.scores.get(t) for t in expected.points or row.scores}
    got = (str(row.status), scores, expected.message in row.message)
    assert got == (expected.status, expected.points, True), row.message


def test_sheet_has_one_row_per_submission(graded):
    assert sorted(graded.rows) == sorted(ALL_STUDENTS)


def test_class_covers_every_family_with_forty_attacks(graded):
    families = [a.family for a in graded.hostile.attacks.values() if a.family in FAMILIES]
    assert len(families) >= 40
    assert all(families.count(f) >= 5 for f in FAMILIES)


def test_sheet_on_disk_is_what_the_grader_reported(graded):
    on_disk = read_sheet(graded.root / "build" / "grades" / f"{ASSIGNMENT}.csv")
    written = {
        s: (row["status"], float(row["total"]) if row["total"] else None)
        for s, row in on_disk.items()
    }
    reported = {s: (str(r.status), r.total) for s, r in graded.rows.items()}
    assert written == reported


def test_feedback_total_is_the_sheets_total(graded):
    """The score a student's feedback shows is the one recorded (no file the kernel wrote)."""
    shown, recorded = {}, {}
    for student, row in graded.rows.items():
        for page in graded.feedback(student):
            shown[student] = float(re.search(r"Score: ([\d.]+) /", page_text(page)).group(1))
            recorded[student] = row.total
    assert "rewriterecords" in shown
    assert shown == recorded


def test_flagged_rows_have_no_total(graded):
    flagged = [r for r in graded.rows.values() if r.status == Status.FLAGGED]
    assert flagged
    assert all(r.total is None for r in flagged)


# --- Honest students --------------------------------------------------------------------------


@pytest.mark.parametrize("student", HONEST)
def test_honest_student_scores_as_when_graded_alone(graded, student):
    beside, alone = graded.rows[student], graded.alone[student]
    assert (beside.status, beside.scores) == (alone.status, alone.scores), beside.message


@pytest.mark.parametrize("student", HONEST)
def test_honest_gradebook_rows_as_when_graded_alone(graded, student):
    assert gradebook_rows(graded.root, student) == gradebook_rows(graded.alone_root, student)


def test_manual_grade_entered_before_grading_survives(graded):
    assert graded.rows["honest1"].scores[MANUAL_CELL] == MANUAL_SCORE
    rows = {r[1]: r for r in gradebook_rows(graded.root, "honest1")}
    assert rows[MANUAL_CELL][3] == MANUAL_SCORE


def test_gradebook_has_submissions_only_of_executed_students(graded):
    assert submitted_students(graded.root) == graded_students(graded)


# --- Nothing escaped --------------------------------------------------------------------------


def test_nothing_outside_own_outputs_changed(graded):
    assert changes(graded.before, graded.after, graded_students(graded)) == []


def test_nothing_changed_outside_the_course(graded):
    assert graded.decoy_after == graded.decoy_before
    assert graded.lab_utils_after == graded.lab_utils_before


def test_no_process_of_a_sandbox_left_running(graded):
    assert graded.kernels_seen > 0, "the watch never saw a kernel: cgroup naming changed?"
    assert graded.leftover == []


def test_no_marker_file_outside_the_sandbox(graded):
    assert graded.markers == []


def test_no_connection_reached_the_host(graded):
    assert graded.connections == 0


def test_kernel_output_never_reaches_the_graders_terminal(graded):
    assert FORGED_PROGRESS not in graded.terminal
    assert not any(FORGED_PROGRESS in line for line in graded.progress)


def test_no_output_shows_a_leak(graded):
    leaks = {}
    for student in graded.rows:
        for path in graded.autograded(student):
            lines = [line for line in output_text(path).splitlines() if LEAK in line]
            if lines:
                leaks[student] = lines[:3]
    assert leaks == {}


def test_instructor_environment_in_no_output(graded):
    shown = [
        str(p)
        for s in graded.rows
        for p in graded.autograded(s) + graded.feedback(s)
        if graded.secret in p.read_text(errors="replace")
    ]
    assert shown == []


def test_other_students_never_see_honest1s_code(graded):
    canary = graded.hostile.honest_canary
    shown = [
        str(p)
        for s in graded.rows
        if s != "honest1"
        for p in graded.autograded(s) + graded.feedback(s)
        if canary in p.read_text(errors="replace")
    ]
    assert shown == []


def test_feedback_never_shows_hidden_tests(graded):
    secret = [re.sub(r"\s+", " ", line) for line in hidden_test_lines(pruning_notebook())]
    leaked = {}
    for student in graded.rows:
        for page in graded.feedback(student):
            text = page_text(page)
            found = [line for line in secret if line in text]
            if found:
                leaked[student] = f"{len(found)} lines, e.g. {found[0]!r}"
    assert leaked == {}


def test_only_executed_students_have_outputs(graded):
    executed = graded_students(graded)
    for step in ("autograded", "feedback"):
        folder = graded.root / "build" / step
        present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        assert present <= executed, step
