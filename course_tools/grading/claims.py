"""The work list of grading workers in a server gradebook: one claim per student and submission.

With a PostgreSQL gradebook any number of workers, on any hosts, grade one assignment together and
no process of ours coordinates them. The ``mcl_grading_claims`` table beside nbgrader's tables holds
one row per (assignment, student): the fingerprint of the submission it is about, and its state.

- Every worker first *enqueues* what it finds in the shared submitted folder: a new student, or a
  submission whose fingerprint changed, becomes ``pending`` (an unchanged one keeps its state, so a
  graded submission is never graded again and workers can be started at any time).
- A worker *claims* the next pending row with ``SELECT ... FOR UPDATE SKIP LOCKED``: two workers
  never get the same row. The claim carries a random token and a lease that the worker renews while
  it grades; a row whose lease ran out (its worker died) can be claimed again.
- A worker *finishes* a claim only with its token, in one statement, after its scores and feedback
  are written: a claim taken over meanwhile keeps the newer owner's result.
- Nothing takes a claim from a worker whose lease runs: a new version of the submission waits
  until that worker finishes (then it is pending again), and a forced regrade (:meth:`requeue`)
  leaves it to that worker. No submission is graded by two live workers at once.
"""

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from course_tools.grading.records import Timing
from course_tools.grading.status import Status

TABLE = "mcl_grading_claims"
PENDING, CLAIMED, DONE = "pending", "claimed", "done"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    assignment text NOT NULL,
    student text NOT NULL,
    fingerprint text NOT NULL,
    state text NOT NULL,
    token text,
    worker text,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    status text,
    message text,
    seconds double precision,
    timing text,
    finished_at timestamptz,
    PRIMARY KEY (assignment, student)
)
"""


def is_server_database(db_url: str) -> bool:
    """True for a gradebook every worker can share (anything but sqlite)."""
    return not db_url.startswith("sqlite")


@dataclass(frozen=True)
class Claim:
    """One submission a worker holds: grade it, then finish the claim with its token."""

    assignment: str
    student: str
    fingerprint: str
    token: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """What grading made of one submission, as the sheet shows it."""

    status: Status
    message: str
    seconds: float = 0.0
    worker: str = ""
    attempts: int = 0
    timing: Timing | None = None  # where the time went (executed submissions)


class DatabaseUnreachable(RuntimeError):
    """The gradebook's server did not answer."""


def engine_for(db_url: str):
    """A SQLAlchemy engine for ``db_url``; :class:`DatabaseUnreachable` if it cannot connect."""
    import sqlalchemy
    from sqlalchemy.exc import DBAPIError, OperationalError

    engine = sqlalchemy.create_engine(db_url, pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        shown = sqlalchemy.engine.make_url(db_url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise DatabaseUnreachable(
            f"cannot reach the gradebook database {shown}: {reason}. Check that the server runs "
            "and that db_url (MCL_GRADEBOOK_URL or nbgrader_config.py) names it."
        ) from exc
    return engine


class ClaimBoard:
    """The claims of one gradebook database."""

    def __init__(self, engine):
        self.engine = engine

    def _run(self, sql: str, **params):
        from sqlalchemy import text

        with self.engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return result.fetchall() if result.returns_rows else []

    def ensure_table(self) -> None:
        """Create the claims table if it is not there (serialised: workers may start together)."""
        from sqlalchemy import text

        with self.engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": TABLE}
            )
            connection.execute(text(SCHEMA))

    def enqueue(self, assignment: str, fingerprints: dict[str, str]) -> None:
        """Make every new or changed submission pending; leave unchanged ones as they are.

        A changed submission that a worker holds (live lease) keeps its claim: only the fingerprint
        changes, and :meth:`finish` then queues it again instead of marking it done, so the new
        version is graded after that worker is through with it, never beside it.
        """
        from sqlalchemy import text

        held = f"(c.state = '{CLAIMED}' AND c.lease_until >= now())"
        sql = text(
            f"INSERT INTO {TABLE} AS c (assignment, student, fingerprint, state) "
            "VALUES (:assignment, :student, :fingerprint, :pending) "
            "ON CONFLICT (assignment, student) DO UPDATE SET fingerprint = excluded.fingerprint, "
            f"state = CASE WHEN {held} THEN c.state ELSE :pending END, "
            f"token = CASE WHEN {held} THEN c.token END, "
            f"worker = CASE WHEN {held} THEN c.worker END, "
            f"lease_until = CASE WHEN {held} THEN c.lease_until END, "
            f"attempts = CASE WHEN {held} THEN c.attempts ELSE 0 END, "
            "status = NULL, message = NULL, seconds = NULL, finished_at = NULL "
            "WHERE c.fingerprint <> excluded.fingerprint"
        )
        rows = [
            {"assignment": assignment, "student": s, "fingerprint": f, "pending": PENDING}
            for s, f in sorted(fingerprints.items())
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(sql, rows)

    def requeue(self, assignment: str, students: list[str] | None = None) -> list[str]:
        """Make claims pending again (a forced regrade), for ``students`` or everyone.

        A claim a running worker holds (its lease not run out) is left to that worker: it is
        grading the submission now, and a second grader beside it would write the same scores and
        outputs twice at once. Returns those students, sorted.
        """
        rows = self._run(
            f"WITH asked AS (SELECT student FROM {TABLE} WHERE assignment = :assignment "
            "AND (CAST(:students AS text[]) IS NULL OR student = ANY(CAST(:students AS text[])))), "
            f"requeued AS (UPDATE {TABLE} SET state = :pending, token = NULL, worker = NULL, "
            "lease_until = NULL, attempts = 0 WHERE assignment = :assignment "
            "AND student IN (SELECT student FROM asked) "
            "AND NOT (state = :claimed AND lease_until >= now()) RETURNING student) "
            "SELECT student FROM asked WHERE student NOT IN (SELECT student FROM requeued) "
            "ORDER BY student",
            pending=PENDING,
            claimed=CLAIMED,
            assignment=assignment,
            students=students,
        )
        return [student for (student,) in rows]

    def claim_next(self, assignment: str, worker: str, lease_seconds: float) -> Claim | None:
        """Take the next pending (or abandoned) submission, atomically; None when there is none."""
        token = secrets.token_hex(8)
        rows = self._run(
            f"UPDATE {TABLE} AS c SET state = :claimed, token = :token, worker = :worker, "
            "lease_until = now() + make_interval(secs => :lease), attempts = c.attempts + 1 "
            f"FROM (SELECT assignment, student FROM {TABLE} WHERE assignment = :assignment "
            "AND (state = :pending OR (state = :claimed AND lease_until < now())) "
            "ORDER BY student LIMIT 1 FOR UPDATE SKIP LOCKED) AS next "
            "WHERE c.assignment = next.assignment AND c.student = next.student "
            "RETURNING c.student, c.fingerprint, c.attempts",
            claimed=CLAIMED,
            pending=PENDING,
            token=token,
            worker=worker,
            lease=float(lease_seconds),
            assignment=assignment,
        )
        if not rows:
            return None
        student, fingerprint, attempt = rows[0]
        return Claim(assignment, student, fingerprint, token, attempt)

    def renew(self, claim: Claim, lease_seconds: float) -> bool:
        """Extend the lease; False when the claim is no longer ours."""
        rows = self._run(
            f"UPDATE {TABLE} SET lease_until = now() + make_interval(secs => :lease) "
            "WHERE assignment = :assignment AND student = :student AND token = :token "
            "AND state = :claimed RETURNING student",
            lease=float(lease_seconds),
            assignment=claim.assignment,
            student=claim.student,
            token=claim.token,
            claimed=CLAIMED,
        )
        return bool(rows)

    def finish(self, claim: Claim, outcome: Outcome) -> bool:
        """Record the outcome and mark the claim done; False when it is no longer ours.

        Also False when the submission changed while it was graded (:meth:`enqueue`): the outcome
        is dropped and the claim pending again, for the new version.
        """
        rows = self._run(
            f"UPDATE {TABLE} SET state = :done, status = :status, message = :message, "
            "seconds = :seconds, timing = :timing, finished_at = :now, lease_until = NULL "
            "WHERE assignment = :assignment AND student = :student AND token = :token "
            "AND state = :claimed AND fingerprint = :fingerprint RETURNING student",
            done=DONE,
            status=str(outcome.status),
            message=outcome.message,
            seconds=outcome.seconds,
            timing=json.dumps(asdict(outcome.timing)) if outcome.timing else None,
            now=datetime.now(UTC),
            assignment=claim.assignment,
            student=claim.student,
            token=claim.token,
            claimed=CLAIMED,
            fingerprint=claim.fingerprint,
        )
        if not rows:  # changed meanwhile: queue the new version (a no-op if the claim was taken)
            self._run(
                f"UPDATE {TABLE} SET state = :pending, token = NULL, worker = NULL, "
                "lease_until = NULL, attempts = 0 WHERE assignment = :assignment "
                "AND student = :student AND token = :token AND state = :claimed",
                pending=PENDING,
                assignment=claim.assignment,
                student=claim.student,
                token=claim.token,
                claimed=CLAIMED,
            )
        return bool(rows)

    def open_count(self, assignment: str) -> int:
        """How many submissions are not done yet (pending or claimed)."""
        rows = self._run(
            f"SELECT count(*) FROM {TABLE} WHERE assignment = :assignment AND state <> :done",
            assignment=assignment,
            done=DONE,
        )
        return int(rows[0][0])

    def outcomes(self, assignment: str) -> dict[str, Outcome]:
        """``{student: outcome}``: done claims as graded, the others as pending."""
        rows = self._run(
            f"SELECT student, state, status, message, seconds, worker, attempts, timing FROM {TABLE} "
            "WHERE assignment = :assignment ORDER BY student",
            assignment=assignment,
        )
        found = {}
        for student, state, status, message, seconds, worker, attempts, timing in rows:
            if state == DONE:
                spent = Timing(**json.loads(timing)) if timing else None
                found[student] = Outcome(
                    Status(status), message or "", seconds or 0.0, worker or "", attempts, spent
                )
            else:
                note = f"being graded by {worker}" if state == CLAIMED else "waiting for a worker"
                found[student] = Outcome(
                    Status.PENDING, f"not graded yet: {note}", 0.0, worker or "", attempts
                )
        return found
