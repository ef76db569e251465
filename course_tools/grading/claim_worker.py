"""A grading worker for a server (PostgreSQL) gradebook: claim, grade, record, until none is left.

``python -m course_tools.grade ASSIGNMENT --worker`` runs one. Start as many as you like, on any
hosts that see the course folder (submissions in, autograded notebooks and feedback out) and reach
the database; each claims the next submission (:mod:`course_tools.grading.claims`), grades it in the
sandbox exactly as on one machine, and writes its scores straight into the gradebook (one commit
per notebook), its autograded notebook and feedback into place (one rename each), and then marks
the claim done. A worker killed at any point leaves the claim unfinished and the old result in
place; its lease runs out and another worker (or a rerun) grades that submission again.
"""

import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_tools.course import nbgrader_api
from course_tools.grading import worker as grade_worker
from course_tools.grading.checks import load_specs
from course_tools.grading.claims import (
    Claim,
    ClaimBoard,
    Outcome,
    engine_for,
)
from course_tools.grading.config import Limits, grading_config
from course_tools.grading.discover import discover, fingerprint, stage
from course_tools.grading.folders import folder, remove_output
from course_tools.grading.ids import safe_student_id
from course_tools.grading.kernel import install_kernelspec
from course_tools.grading.records import WorkerReport
from course_tools.grading.submission import Submission, check, take_report

DEFAULT_LEASE_SECONDS = 60.0  # a claim's lease, renewed every third of it while its worker lives
OUTPUT_STEPS = ("autograded_directory", "feedback_directory")


@dataclass
class WorkDone:
    """What one worker did: the students it graded (claims it finished), in order."""

    name: str
    graded: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # claims taken over before this worker finished


class Lease:
    """Renews a claim's lease in a thread while the submission is graded."""

    def __init__(self, board: ClaimBoard, claim: Claim, seconds: float):
        self.board, self.claim, self.seconds = board, claim, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            if not self.board.renew(self.claim, self.seconds):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def publish(new: Path | None, target: Path, token: str) -> None:
    """Put the folder ``new`` in ``target``'s place with one rename (None: remove ``target``).

    Readers see the old folder or the new one, never a half-written one. A copy first lands
    beside the target (same file system), under a dot name that nbgrader ignores.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{target.name}.*"):  # from a worker killed here
        remove_output(leftover)
    incoming = target.parent / f".{target.name}.incoming-{token}"
    if new is not None and new.is_dir():
        shutil.copytree(new, incoming, symlinks=True)
    retired = target.parent / f".{target.name}.old-{token}"
    if target.is_symlink() or target.exists():
        os.rename(target, retired)
    if incoming.exists():
        os.rename(incoming, target)
    remove_output(retired)


class ClaimWorker:
    """Grades the claims it takes from one assignment's board until nothing is left."""

    def __init__(
        self,
        assignment: str,
        root: Path,
        db_url: str,
        limits: Limits,
        directories: dict[str, str],
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        say=print,
    ):
        self.assignment, self.root, self.db_url = assignment, Path(root), db_url
        self.limits, self.directories, self.lease = limits, directories, lease_seconds
        self.say = say
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # before anything is written: a clear error when the database cannot be reached
        self.board = ClaimBoard(engine_for(db_url))
        api = nbgrader_api(grading_config(root, limits, **{**directories, "db_url": db_url}))
        self.coursedir = api.coursedir
        self.cell_timeout = limits.cell_timeout or api.config.Execute.timeout
        self.specs = load_specs(db_url, self.coursedir.course_id)
        if not any(s.assignment == assignment for s in self.specs):
            raise SystemExit(f"{assignment} is not in the gradebook: release it first.")
        self.submitted = folder(self.coursedir, "submitted_directory")

    def enqueue(self) -> int:
        """Put every new or changed submission (and every rostered student) on the board."""
        self.board.ensure_table()
        found = discover(
            self.assignment, self.submitted, self.db_url, self.coursedir.course_id, None
        )
        self.board.enqueue(self.assignment, {s: fingerprint(p) for s, p in found.items()})
        return len(found)

    def work(self, poll_seconds: float = 2.0) -> WorkDone:
        """Claim and grade until every submission of the assignment is done."""
        done = WorkDone(self.name)
        self.enqueue()
        with tempfile.TemporaryDirectory(prefix="mcl-claim-worker-") as tmp:
            scratch = Path(tmp)
            install_kernelspec(scratch / "jupyter", self.limits.sandbox, self.limits.memory_mb)
            private = {
                **self.directories,
                "db_url": self.db_url,
                "submitted_directory": str(scratch / "submitted"),
                "autograded_directory": str(scratch / "autograded"),
                "feedback_directory": str(scratch / "feedback"),
            }
            threads = max(1, (os.cpu_count() or 1) // max(1, _local_workers()))
            grade_worker.start(
                str(scratch),
                self.db_url,
                str(self.root),
                private,
                self.limits,
                threads,
                grade_worker.SANDBOX_UID,
            )
            while True:
                claim = self.board.claim_next(self.assignment, self.name, self.lease)
                if claim is None:
                    if self.board.open_count(self.assignment) == 0:
                        return done
                    time.sleep(poll_seconds)  # others are grading: one may die and need us
                    continue
                with Lease(self.board, claim, self.lease):
                    outcome = self.grade(claim, scratch)
                finished = self.board.finish(claim, outcome)
                (done.graded if finished else done.lost).append(claim.student)
                self.say(
                    f"{self.name} {claim.student:<16} {outcome.status:<16} "
                    f"{outcome.seconds:5.1f} s"
                    f"{'' if finished else '  (claim lost or submission changed: discarded)'}"
                )

    def grade(self, claim: Claim, scratch: Path) -> Outcome:
        """Check, execute and score one submission; publish its outputs; return its outcome."""
        student = claim.student
        path = self.submitted / student / self.assignment
        present = path.is_symlink() or path.parent.is_symlink() or path.is_dir()
        submission = Submission(
            student, check(student, path if present else None, self.assignment, self.specs)
        )
        outputs = {
            step: folder(self.coursedir, step) / student / self.assignment for step in OUTPUT_STEPS
        }
        if not submission.gradable:
            if not safe_student_id(student) and self.board.renew(claim, self.lease):
                for target in outputs.values():
                    publish(None, target, claim.token)
            return Outcome(submission.status, submission.message)
        for step in ("submitted", "autograded", "feedback"):
            remove_output(scratch / step / student)
        submission.notes += stage(
            student, submission.checks, self.assignment, self.submitted, scratch / "submitted"
        )
        try:
            submission.report = grade_worker.grade_submission(self.assignment, student)
        except Exception as exc:  # nbgrader's own failure: reported, never a lost class
            submission.report = WorkerReport(student, False, repr(exc))
        take_report(submission, self.assignment, self.cell_timeout)
        tick = time.perf_counter()
        # a claim taken over meanwhile (our lease ran out) must not overwrite the new owner's files
        if submission.report.success and self.board.renew(claim, self.lease):
            for step, target in outputs.items():
                new = scratch / step.removesuffix("_directory") / student / self.assignment
                publish(new, target, claim.token)
        timing = submission.report.timing()
        timing.recording = round(time.perf_counter() - tick, 2)
        return Outcome(submission.status, submission.message, round(timing.total, 2), timing=timing)


def _local_workers() -> int:
    """Workers started side by side on this host (``MCL_LOCAL_WORKERS``, set by ``grade``)."""
    try:
        return int(os.environ.get("MCL_LOCAL_WORKERS", "1"))
    except ValueError:
        return 1
