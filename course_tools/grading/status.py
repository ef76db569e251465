"""The one list of statuses a submission (or one of its notebooks) can get, most telling first."""

from enum import StrEnum


class Status(StrEnum):
    """What grading made of a submission; the sheet's ``status`` column."""

    # Not graded: the sheet shows the reason and empty scores, never a silent zero.
    UNSAFE_ID = "unsafe-id"
    UNSAFE_FILE = "unsafe-file"
    EMPTY = "empty"
    INVALID_JSON = "invalid-json"
    NOT_A_NOTEBOOK = "not-a-notebook"
    BAD_METADATA = "bad-metadata"
    NO_METADATA = "no-metadata"
    OTHER_ASSIGNMENT = "other-assignment"
    WRONG_NOTEBOOK = "wrong-notebook"
    MISSING = "missing"
    PENDING = "pending"  # server gradebook: queued, or a worker is on it (or died: run another)
    AUTOGRADE_ERROR = "autograde-error"
    # Graded, but a person must look: scores kept per exercise, no total until reviewed.
    FLAGGED = "flagged"
    # Graded as far as possible (tests before the problem count), most serious first.
    KERNEL_DIED = "kernel-died"
    MEMORY = "memory"
    TIMEOUT = "timeout"
    DUPLICATE = "duplicate"
    GRADED = "graded"
    # A notebook that passed the checks and goes on to be executed (never a final status).
    OK = "ok"

    @property
    def graded(self) -> bool:
        """True when the submission was executed and its scores mean something."""
        return self in GRADED_STATUSES

    @property
    def counts(self) -> bool:
        """True when the total may go to the LMS as it is (not held for review)."""
        return self.graded and self is not Status.FLAGGED


ORDER = list(Status)
GRADED_STATUSES = frozenset(ORDER[ORDER.index(Status.FLAGGED) : ORDER.index(Status.OK)])
NOT_GRADED = tuple(ORDER[: ORDER.index(Status.FLAGGED)])


def most_telling(statuses: set[Status]) -> Status:
    """The status the sheet shows for several: the first in :class:`Status` order, else graded."""
    found = [s for s in ORDER if s in statuses and s is not Status.OK]
    return found[0] if found else Status.GRADED
