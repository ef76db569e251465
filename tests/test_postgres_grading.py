"""Grading with a PostgreSQL gradebook: claim-based workers, on a real server the tests start.

Each test gets its own database on one server per test process (Debian's PostgreSQL, run as a
non-root user on a unix socket, stopped at the end). The claims are tested on their own (many
processes, random pauses) and through real ``grade --worker`` processes grading sample classes in
the sandbox: two and three at once, one killed with SIGKILL, a manual grade entered meanwhile, and
the fixture class of ``test_grading`` (bad submissions included) against its sqlite sheet.
"""

import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock

from course_tools import local_postgres
from course_tools.course import REPO
from course_tools.grading.claims import ClaimBoard, Outcome, engine_for
from course_tools.grading.sheet import read_sheet
from course_tools.grading.status import Status
from tests.class_fixture import build_class
from tests.postgres_support import (
    ASSIGNMENT,
    PostgresCourse,
    graded_by,
    new_course,
    require_postgres,
    sample,
    wait_for,
)
from tests.test_grading import course, grade_once, shared  # noqa: F401 - fixtures reused

pytestmark = [pytest.mark.postgres]
WRITTEN_ANSWER = "per_channel_and_zero_question"  # the manually graded cell of ASSIGNMENT


@pytest.fixture(scope="session")
def server():
    """One PostgreSQL server per test process.

    Its folder is not under pytest's temporary folder: every new pytest session makes that 700
    again, and the server's own user must be able to reach its data until it stops.
    """
    require_postgres()
    folder = Path(tempfile.mkdtemp(prefix="mcl-postgres-"))
    started = local_postgres.start(folder / "server")
    yield started
    started.stop()
    shutil.rmtree(folder, ignore_errors=True)


def unique(name: str) -> str:
    """A database name no other test of this run uses."""
    return f"{name}_{os.getpid()}_{time.monotonic_ns() % 10**9}"


# -- the claims on their own ------------------------------------------------------------------


def claim_all(db_url: str, worker: str, seed: int, queue, ready, go) -> None:
    """A stand-in worker: claim, pause at random, finish, until nothing is left."""
    rng = random.Random(seed)
    board = ClaimBoard(engine_for(db_url))
    finished = []
    ready.put(worker)
    go.wait(timeout=120)  # all start together, once connected
    while (claim := board.claim_next("hw", worker, lease_seconds=60)) is not None:
        time.sleep(0.005 + rng.random() * 0.015)
        if board.finish(claim, Outcome(Status.GRADED, "")):
            finished.append(claim.student)
    board.engine.dispose()
    queue.put(finished)


def test_concurrent_claims_take_each_submission_exactly_once(server):
    db_url = server.create_database(unique("claims"))
    board = ClaimBoard(engine_for(db_url))
    board.ensure_table()
    students = [f"s{i:03d}" for i in range(120)]
    board.enqueue("hw", dict.fromkeys(students, "v1"))
    context = multiprocessing.get_context("spawn")
    queue, ready, go = context.Queue(), context.Queue(), context.Event()
    workers = [
        context.Process(target=claim_all, args=(db_url, f"w{i}", i, queue, ready, go))
        for i in range(3)
    ]
    for process in workers:
        process.start()
    for _ in workers:
        ready.get(timeout=120)
    go.set()
    finished = [queue.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    everyone = [student for batch in finished for student in batch]
    assert sorted(everyone) == students  # none lost, none twice
    assert all(o.attempts == 1 for o in board.outcomes("hw").values())
    assert all(finished), "every worker got some of the work"
    board.engine.dispose()


def new_board(server, name: str) -> ClaimBoard:
    """A claims board on a new database of ``server``, its table made."""
    board = ClaimBoard(engine_for(server.create_database(unique(name))))
    board.ensure_table()
    return board


def test_an_abandoned_claim_is_taken_over_and_its_late_result_discarded(server):
    board = new_board(server, "lease")
    board.enqueue("hw", {"alice": "v1"})
    first = board.claim_next("hw", "dead", lease_seconds=0.5)
    assert board.claim_next("hw", "other", lease_seconds=60) is None  # held
    time.sleep(1.0)
    second = board.claim_next("hw", "alive", lease_seconds=60)
    assert second is not None and second.attempt == 2
    assert not board.finish(first, Outcome(Status.GRADED, "late"))
    assert board.finish(second, Outcome(Status.GRADED, "on time"))
    assert board.outcomes("hw")["alice"].message == "on time"
    board.engine.dispose()


def test_only_new_or_changed_submissions_are_queued_again(server):
    board = new_board(server, "queue")
    board.enqueue("hw", {"alice": "v1", "bob": "v1"})
    while claim := board.claim_next("hw", "w", lease_seconds=60):
        board.finish(claim, Outcome(Status.GRADED, ""))
    board.enqueue("hw", {"alice": "v1", "bob": "v2", "carol": "v1"})
    outcomes = board.outcomes("hw")
    assert outcomes["alice"].status == Status.GRADED
    assert outcomes["bob"].status == outcomes["carol"].status == Status.PENDING
    board.engine.dispose()


def test_requeue_leaves_a_claim_a_running_worker_holds_to_it(server):
    board = new_board(server, "requeue")
    board.enqueue("hw", {"alice": "v1", "bob": "v1", "carol": "v1"})
    held = board.claim_next("hw", "busy", lease_seconds=60)  # alice, being graded
    board.finish(board.claim_next("hw", "w", lease_seconds=60), Outcome(Status.GRADED, ""))
    dead = board.claim_next("hw", "dead", lease_seconds=0.5)  # carol, its worker gone
    time.sleep(1.0)
    assert board.requeue("hw") == [held.student]
    again = [board.claim_next("hw", "new", lease_seconds=60) for _ in range(3)]
    assert [c.student if c else None for c in again] == ["bob", dead.student, None]
    assert board.finish(held, Outcome(Status.GRADED, "by its first worker"))
    assert board.outcomes("hw")[held.student].message == "by its first worker"
    board.engine.dispose()


def test_changed_submission_under_a_live_claim_waits_for_its_worker(server):
    board = new_board(server, "changed")
    board.enqueue("hw", {"alice": "v1"})
    first = board.claim_next("hw", "busy", lease_seconds=60)
    board.enqueue("hw", {"alice": "v2"})  # handed in again while being graded
    assert board.claim_next("hw", "other", lease_seconds=60) is None  # not beside the first
    assert not board.finish(first, Outcome(Status.GRADED, "old version"))
    assert board.outcomes("hw")["alice"].status == Status.PENDING
    second = board.claim_next("hw", "other", lease_seconds=60)
    assert second.fingerprint == "v2"
    assert board.finish(second, Outcome(Status.GRADED, "new version"))
    assert board.outcomes("hw")["alice"].message == "new version"
    board.engine.dispose()


# -- workers grading real submissions ---------------------------------------------------------


def run_workers(pg: PostgresCourse, count: int, logs: Path) -> list[list[str]]:
    """Start ``count`` workers at once, wait for all; the students each one finished."""
    logs.mkdir(parents=True, exist_ok=True)
    paths = [logs / f"worker-{i}.log" for i in range(count)]
    processes = [pg.start_worker(log=path) for path in paths]
    for process, path in zip(processes, paths, strict=True):
        assert process.wait(timeout=600) == 0, path.read_text()
    return [graded_by(path) for path in paths]


def enter_manual_grade(db_url: str, student: str, score: float) -> None:
    """What a grader does in formgrader: a manual score for the written answer."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, "model-compression-lab") as gb:
        grade = gb.find_grade(WRITTEN_ANSWER, "int8_quantization", ASSIGNMENT, student)
        grade.manual_score = score
        gb.db.commit()


@pytest.fixture(scope="module")
def concurrent(server, shared):  # noqa: F811 - the fixture imported above
    """A class of 7 graded by two workers at once (a manual grade entered meanwhile), then
    queued again and graded by three at once. Done once per run, whichever process comes first."""
    folder = shared / "postgres-concurrent"
    with FileLock(str(folder) + ".lock"):
        if not (folder / "result.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            pg = new_course(server, folder / "course", unique("concurrent"))
            sample(pg, 7)
            logs = folder / "logs"
            logs.mkdir(parents=True)
            workers = [pg.start_worker(log=logs / f"two-{i}.log") for i in range(2)]
            wait_for(
                lambda: any(o.status != Status.PENDING for o in pg.outcomes().values()),
                300,
                "a first graded submission",
            )
            done_early = next(s for s, o in pg.outcomes().items() if o.status != Status.PENDING)
            enter_manual_grade(pg.db_url, done_early, 1.5)
            still_open = sum(o.status == Status.PENDING for o in pg.outcomes().values())
            for process in workers:
                assert process.wait(timeout=600) == 0
            two = [graded_by(logs / f"two-{i}.log") for i in range(2)]
            attempts_two = {s: o.attempts for s, o in pg.outcomes().items()}
            pg.command("grade", *pg.worker_args("--sheet-only"))
            sheet_two = pg.sheet()
            board = pg.board()
            board.requeue(ASSIGNMENT)
            board.engine.dispose()
            three = run_workers(pg, 3, folder / "logs-three")
            attempts_three = {s: o.attempts for s, o in pg.outcomes().items()}
            pg.command("grade", *pg.worker_args("--sheet-only"))
            result = {
                "students": sorted(attempts_two),
                "two": two,
                "three": three,
                "attempts_two": attempts_two,
                "attempts_three": attempts_three,
                "manual_student": done_early,
                "open_at_manual_grade": still_open,
                "sheet_two": sheet_two,
                "sheet_three": pg.sheet(),
            }
            (folder / "result.json").write_text(json.dumps(result))
    return json.loads((folder / "result.json").read_text())


@pytest.mark.parametrize("workers", ["two", "three"])
def test_concurrent_workers_grade_each_submission_exactly_once(concurrent, workers):
    everyone = [student for batch in concurrent[workers] for student in batch]
    assert sorted(everyone) == concurrent["students"]
    assert set(concurrent[f"attempts_{workers}"].values()) == {1}


@pytest.mark.parametrize("workers", ["two", "three"])
def test_every_concurrent_worker_takes_part(concurrent, workers):
    assert all(concurrent[workers])


def test_manual_grade_entered_during_grading_survives(concurrent):
    assert concurrent["open_at_manual_grade"] > 0  # entered while workers were grading
    student = concurrent["manual_student"]
    for sheet in ("sheet_two", "sheet_three"):
        assert concurrent[sheet][student][WRITTEN_ANSWER] == "1.5"


def test_regrading_with_more_workers_gives_the_same_sheet(concurrent):
    assert concurrent["sheet_two"] == concurrent["sheet_three"]
    assert {row["status"] for row in concurrent["sheet_three"].values()} == {"graded"}


def test_worker_killed_halfway_leaves_no_half_result_and_a_rerun_finishes(server, tmp_path):
    pg = new_course(server, tmp_path / "course", unique("killed"))
    sample(pg, 3)
    worker = pg.start_worker("--lease-seconds", "4", log=tmp_path / "killed.log")

    def busy_on_second() -> str | None:
        outcomes = pg.outcomes()
        done = [s for s, o in outcomes.items() if o.status != Status.PENDING]
        held = [s for s, o in outcomes.items() if o.message.startswith("not graded yet: being")]
        return held[0] if done and held else None

    wait_for(lambda: busy_on_second() is not None, 300, "the worker to start a second submission")
    victim = busy_on_second()
    time.sleep(1.5)  # well inside its kernel's run
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)

    pg.command("grade", *pg.worker_args("--sheet-only"))
    row = pg.sheet()[victim]
    assert row["status"] == "pending" and row["total"] == ""
    assert not (pg.root / "build" / "autograded" / victim / ASSIGNMENT).exists()
    assert not (pg.root / "build" / "feedback" / victim / ASSIGNMENT).exists()
    assert_no_partial_scores(pg.db_url, victim)

    assert pg.start_worker(log=tmp_path / "rerun.log").wait(timeout=600) == 0
    outcomes = pg.outcomes()
    assert {o.status for o in outcomes.values()} == {Status.GRADED}
    assert outcomes[victim].attempts == 2
    pg.command("grade", *pg.worker_args("--sheet-only"))
    totals = [pg.sheet()[s]["total"] for s in sorted(outcomes)]
    assert totals[0] != "" and float(totals[0]) > float(totals[1]) > float(totals[2]) == 0


# Run a worker killed with SIGKILL at its KILL_AT_PUBLISH-th publish of an output folder: the
# first comes right after nbgrader saved the scores, the second after the autograded folder is out.
KILLED_AT_PUBLISH = """
import os, signal, sys
from course_tools import grade
from course_tools.grading import claim_worker

calls, publish = [], claim_worker.publish

def killed(*args, **kwargs):
    calls.append(args)
    if len(calls) == int(os.environ["KILL_AT_PUBLISH"]):
        os.kill(os.getpid(), signal.SIGKILL)
    publish(*args, **kwargs)

claim_worker.publish = killed
grade.main(sys.argv[1:])
"""


def saved_scores(db_url: str, student: str) -> dict[str, float | None]:
    """The auto scores nbgrader saved for the student's notebook (by cell), empty if none."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, "model-compression-lab") as gb:
        try:
            notebook = gb.find_submission_notebook("int8_quantization", ASSIGNMENT, student)
        except MissingEntry:
            return {}
        return {g.name: g.auto_score for g in notebook.grades if g.cell_type == "code"}


def output_files(pg: PostgresCourse, student: str) -> list[str]:
    """Everything (dot names included) under the student's autograded and feedback folders."""
    build = pg.root / "build"
    return sorted(
        str(p.relative_to(build))
        for step in ("autograded", "feedback")
        for p in (build / step / student).rglob("*")
    )


@pytest.mark.parametrize("publish", [1, 2], ids=["before-outputs", "between-outputs"])
def test_worker_killed_after_the_scores_leaves_the_claim_open(server, tmp_path, publish):
    pg = new_course(server, tmp_path / "course", unique("publish"))
    sample(pg, 2)  # student000 full (claimed first), student001 half done
    victim = "student000"
    short_lease = ("--lease-seconds", "4")  # the rerun takes the dead worker's claim soon
    log = tmp_path / "killed.log"
    with log.open("w") as handle:
        worker = subprocess.Popen(
            [sys.executable, "-c", KILLED_AT_PUBLISH, *pg.worker_args("--worker", *short_lease)],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**pg.environment, "KILL_AT_PUBLISH": str(publish)},
            start_new_session=True,
        )
    assert worker.wait(timeout=600) == -signal.SIGKILL, log.read_text()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # anything it started

    saved = saved_scores(pg.db_url, victim)
    assert saved and None not in saved.values(), "killed after nbgrader saved every score"
    assert pg.outcomes()[victim].status == Status.PENDING
    pg.command("grade", *pg.worker_args("--sheet-only"))
    row = pg.sheet()[victim]
    assert row["status"] == "pending" and row["total"] == ""
    if publish == 1:
        assert output_files(pg, victim) == []
    else:  # the autograded folder is whole, the feedback not there yet
        notebook = (
            pg.root / "build" / "autograded" / victim / ASSIGNMENT / "int8_quantization.ipynb"
        )
        nbformat.read(notebook, as_version=4)
        assert not [f for f in output_files(pg, victim) if f.startswith("feedback") or "/." in f]

    assert pg.start_worker(log=tmp_path / "rerun.log").wait(timeout=600) == 0
    outcomes = pg.outcomes()
    assert {o.status for o in outcomes.values()} == {Status.GRADED}
    assert outcomes[victim].attempts == 2
    pg.command("grade", *pg.worker_args("--sheet-only"))
    sheet = pg.sheet()
    assert {cell: float(sheet[victim][cell]) for cell in saved} == saved
    assert (
        float(sheet[victim]["total"]) == sum(saved.values()) > float(sheet["student001"]["total"])
    )
    files = output_files(pg, victim)
    assert f"autograded/{victim}/{ASSIGNMENT}/int8_quantization.ipynb" in files
    assert f"feedback/{victim}/{ASSIGNMENT}/int8_quantization.html" in files
    assert not [f for f in files if "/." in f]  # no staging folder left


def assert_no_partial_scores(db_url: str, student: str) -> None:
    """Either no auto score of the student's notebook is set, or every one is."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, "model-compression-lab") as gb:
        try:
            notebook = gb.find_submission_notebook("int8_quantization", ASSIGNMENT, student)
        except MissingEntry:
            return
        scored = [g.auto_score is not None for g in notebook.grades if g.cell_type == "code"]
        assert all(scored) or not any(scored), scored


@pytest.mark.parametrize("mode", [["--worker"], []], ids=["worker", "grade"])
def test_unreachable_database_fails_clearly_and_writes_nothing(server, tmp_path, mode):
    pg = new_course(server, tmp_path / "course", unique("reachable"))
    sample(pg, 1)
    before = sorted(str(p) for p in pg.root.rglob("*"))
    pg.db_url = "postgresql+psycopg://grader@/gradebook?host=/nonexistent-socket-dir"
    done = pg.command("grade", *pg.worker_args(*mode, "--db-url", pg.db_url), check=False)
    assert done.returncode != 0
    assert "cannot reach the gradebook database" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(str(p) for p in pg.root.rglob("*")) == before


def test_fixture_class_gives_the_same_sheet_as_with_sqlite(server, shared, course):  # noqa: F811
    grade_once(shared, course, ASSIGNMENT, wait=True)
    reference = (
        shared / f"grading-{ASSIGNMENT}" / "course" / "build" / "grades" / f"{ASSIGNMENT}.csv"
    )
    pg = new_course(server, shared / f"postgres-fixture-{os.getpid()}", unique("fixture"), True)
    files = build_class(pg.course, ASSIGNMENT, pg.root.parent / "handed-in")
    pg.collect(files.layout)
    pg.command("roster", str(files.roster), "--root", str(pg.root))
    pg.collect(files.lms)
    pg.command("grade", *pg.worker_args("--workers", "2"))
    assert pg.sheet() == read_sheet(reference)
