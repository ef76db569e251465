"""Find the submissions of an assignment and stage the ones to execute."""

import hashlib
import json
import os
import shutil
import sqlite3
import stat
from datetime import datetime
from pathlib import Path

from course_tools.collect import read_timestamp_file
from course_tools.grading.checks import COLLECT_NOTES, NotebookCheck
from course_tools.grading.status import Status

SECRET_FILE = "submission_secret.txt"
MAX_SECRET_BYTES = 1024  # nbgrader writes a short random token


def roster(db_url: str, course_id: str) -> list[str]:
    """Student ids known to the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        return sorted(s.id for s in gb.students)


def submission_folders(assignment: str, submitted: Path) -> dict[str, Path]:
    """``{student: <submitted>/<student>/<assignment>}``, listed, never globbed.

    Symbolic links are listed too (never followed): the checks give them their own status.
    """
    found = {}
    if submitted.is_dir():
        for student_dir in sorted(submitted.iterdir(), key=lambda p: p.name):
            folder = student_dir / assignment
            if student_dir.is_symlink() or folder.is_symlink() or folder.is_dir():
                found[student_dir.name] = folder
    return found


def discover(
    assignment: str, submitted: Path, db_url: str, course_id: str, only: list[str] | None
) -> dict[str, Path | None]:
    """``{student: submission folder}``; students of the gradebook without one map to None."""
    found: dict[str, Path | None] = dict(submission_folders(assignment, submitted))
    if only:
        return {s: found.get(s) for s in only}
    for student in roster(db_url, course_id):
        found.setdefault(student, None)
    return dict(sorted(found.items()))


def stage(
    student: str, checks: list[NotebookCheck], assignment: str, submitted: Path, staging: Path
) -> list[str]:
    """Copy the notebooks that passed the checks (and a readable ``timestamp.txt``, and nbgrader's
    ``submission_secret.txt``) for the workers.

    Returns notes for the sheet (a timestamp that could not be read is left out, not fatal).
    """
    target = staging / student / assignment
    target.mkdir(parents=True, exist_ok=True)
    for check in checks:
        if check.status == Status.OK:
            shutil.copyfile(check.path, target / check.path.name, follow_symlinks=False)
    # nbgrader's exchange writes it at submit; release_feedback finds the student's copy by it.
    secret = submitted / student / assignment / SECRET_FILE
    if secret.is_file() and not secret.is_symlink() and secret.stat().st_size <= MAX_SECRET_BYTES:
        shutil.copyfile(secret, target / SECRET_FILE, follow_symlinks=False)
    timestamp = submitted / student / assignment / "timestamp.txt"
    if not os.path.lexists(timestamp):
        return []
    when = read_timestamp_file(timestamp)
    if isinstance(when, datetime):
        shutil.copyfile(timestamp, target / "timestamp.txt", follow_symlinks=False)
        return []
    return [f"timestamp.txt ignored ({when}): graded without a submission time"]


def lms_marked_late(folder: Path) -> bool:
    """True when collect noted that the LMS marked this submission late (``LATE_`` in a name)."""
    notes = folder / COLLECT_NOTES
    if folder.is_symlink() or notes.is_symlink() or not notes.is_file():
        return False
    try:
        found = json.loads(notes.read_text()[:100_000])
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("lms_late") is True


def readable_timestamp(path: Path) -> bool:
    """True for a ``timestamp.txt`` that collect and nbgrader can read."""
    return isinstance(read_timestamp_file(path), datetime)


def snapshot_gradebook(db_url: str, scratch: Path) -> str:
    """A consistent copy of an sqlite gradebook for the workers (other databases are shared)."""
    if not db_url.startswith("sqlite:///"):
        return db_url
    copy = scratch / "gradebook-snapshot.db"
    source = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{copy}"


FINGERPRINT_READ_LIMIT = 64 * 2**20  # bytes hashed per file; the checks refuse larger notebooks


def fingerprint(folder: Path | None) -> str:
    """A digest of a submission folder's names, kinds and contents (links not followed).

    A new or changed submission gets a new fingerprint, so workers sharing a server gradebook
    grade it again; an unchanged one keeps its result. ``missing`` when there is no folder.
    """
    if folder is None:
        return "missing"
    digest = hashlib.sha256()
    if folder.is_symlink() or folder.parent.is_symlink():
        digest.update(
            f"link:{os.readlink(folder if folder.is_symlink() else folder.parent)}".encode()
        )
        return digest.hexdigest()
    for path in sorted(walk_files(folder)):
        info = path.lstat()
        digest.update(
            f"{path.relative_to(folder)}\0{stat.S_IFMT(info.st_mode)}\0{info.st_size}\0".encode()
        )
        if stat.S_ISREG(info.st_mode):
            with path.open("rb") as handle:
                digest.update(handle.read(FINGERPRINT_READ_LIMIT))
        elif stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode())
    return digest.hexdigest()


def walk_files(folder: Path) -> list[Path]:
    """Every entry under ``folder`` (directories not followed through links)."""
    found = []
    for base, dirs, files in os.walk(folder, followlinks=False):
        found += [Path(base) / name for name in dirs + files]
    return found
