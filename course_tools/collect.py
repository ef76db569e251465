"""Import students' files into ``build/submitted/<student>/<assignment>/`` for grading.

``python -m course_tools.collect 01_pruning DOWNLOADS`` where DOWNLOADS is either

- nbgrader's layout, ``DOWNLOADS/<student>/01_pruning/*.ipynb`` (e.g. from ``nbgrader collect``), or
- a flat folder (or ``.zip``) of files downloaded from an LMS, the student in each file name. By
  default a name that carries a Canvas user id,
  ``<name>_[LATE_]<user id>_<file id>_<notebook>.ipynb`` (:mod:`course_tools.canvas`), is keyed by
  it: the roster's student id when ``build/roster.csv`` maps that user id, else the user id
  itself, so two students of the same name stay two. Any other name is keyed by its name part,
  ``<student>_[LATE_][<numbers>_]<notebook>.ipynb``. ``--key name`` keys every file by its name
  part, ``--key lms-id`` by the user id only (a user id the roster lacks is reported, not
  collected), and ``--regexp`` sets the pattern, with the groups ``student_id`` and optionally
  ``file_id`` and ``timestamp``, as for ``nbgrader zip_collect``.

Like ``zip_collect`` it matches file names to the released notebooks, keeps the newest of
duplicate files and writes ``timestamp.txt``; unlike it, it never stops on a duplicate, reports
every file it could not match, and keeps a file with an unexpected name under its own name so
``grade`` gives that student a "wrong-notebook" status instead of a silent zero.

The download is hostile input. Collect copies only regular files, byte for byte, and never follows
a symlink or opens a special file; it refuses unsafe student ids (:mod:`course_tools.grading.ids`),
zip members with absolute or ``..`` paths, and zips that unpack to too many files or bytes; it
ignores a ``timestamp.txt`` it cannot read. Each refused file is reported with its reason.
"""

import argparse
import json
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from course_tools.canvas import LMS_ID_REGEXP, ROSTER, students_by_lms_id
from course_tools.course import REPO, course_config
from course_tools.grading.checks import COLLECT_NOTES
from course_tools.grading.ids import safe_student_id

DEFAULT_REGEXP = r"^(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@+-]*)_(?:LATE_)?(?:\d+_)*"
COPY_SUFFIX = re.compile(r"(?:-\d+|\s*\(\d+\)|-Copy\d*)$")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")

TIMESTAMP_FILE = "timestamp.txt"
MAX_TIMESTAMP_CHARS = 100
MAX_TIMESTAMP_BYTES = 400  # read no more of a timestamp.txt: it may be huge
# dateutil's gettz opens a time zone name as a file (absolute or with ".."): allow names only.
TIME_ZONE = re.compile(r"[+-]?\d{1,4}|[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")
YEAR = re.compile(r"\d{4}")  # else dateutil fills the date from today: "-1" is a date
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_BYTES = 4 * 1024**3
# what identifies the student in a flat download's file names: the Canvas user id where there is
# one, else the name part (default); the name part only; the Canvas user id only
KEYS = ("auto", "name", "lms-id")

SYMLINK = "symlink"
SPECIAL_FILE = "special file"
HIDDEN_FOLDER = "hidden folder (not searched)"
UNSAFE_ZIP_PATH = "unsafe path in zip"
# what reading one member can raise: corrupt data, a password, an unknown compression method
ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    RuntimeError,
    NotImplementedError,
    OSError,
    ValueError,
)


class NotRegularFile(OSError):
    """A path that was a regular file when listed is something else when opened."""


@dataclass(frozen=True)
class Incoming:
    """One file to collect: whose it is and the name it gets."""

    path: Path
    student: str
    name: str
    timestamp: datetime | None = None
    lms_late: bool = False  # the LMS put LATE_ in the file name
    lms_user_id: str | None = None  # the LMS user id in the file name, when keyed by it

    @property
    def age_key(self) -> tuple[float, str]:
        """Sort key, newest last: the timestamp in its name (else its mtime), then its name."""
        when = self.timestamp.timestamp() if self.timestamp else self.path.lstat().st_mtime
        return when, self.path.name


def shown(name: str) -> str:
    """``name`` as printed in the report: quoted when it holds characters a terminal would hide."""
    return name if name.isprintable() else repr(name)


@dataclass
class CollectReport:
    """What ``collect`` did, to print and to test."""

    collected: dict[str, list[str]] = field(default_factory=dict)  # student -> file names
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    duplicates: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)  # student -> odd names
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, what was done)

    def text(self, assignment: str, target: Path) -> str:
        """The report printed for the instructor."""
        files = sum(len(v) for v in self.collected.values())
        lines = [
            f"{assignment}: collected {files} file(s) of {len(self.collected)} student(s) into {target}"
        ]
        if self.unmatched:
            lines.append(f"  {len(self.unmatched)} file(s) NOT collected:")
            lines += [f"    {shown(name)}: {reason}" for name, reason in self.unmatched]
        if self.warnings:
            lines.append(f"  {len(self.warnings)} warning(s):")
            lines += [f"    {shown(name)}: {message}" for name, message in self.warnings]
        for student, dups in sorted(self.duplicates.items()):
            for name, ignored in dups.items():
                lines.append(
                    f"  duplicate: {student} sent {name} {len(ignored) + 1} times; "
                    f"kept the newest, ignored {', '.join(map(shown, ignored))}"
                )
        for student, names in sorted(self.unexpected.items()):
            lines.append(
                f"  unexpected name: {student} sent {', '.join(names)} (grade will flag it)"
            )
        return "\n".join(lines)


def released_notebooks(config) -> dict[str, list[str]]:
    """``{assignment: [notebook names]}`` from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(config.CourseDirectory.db_url, config.CourseDirectory.course_id) as gb:
        return {a.name: sorted(n.name for n in a.notebooks) for a in gb.assignments}


def notebook_name(stem: str, expected: list[str]) -> str:
    """The released notebook a file stem stands for, else the stem itself made safe."""
    if stem in expected:
        return stem
    trimmed = stem
    while COPY_SUFFIX.search(trimmed):
        trimmed = COPY_SUFFIX.sub("", trimmed)
        if trimmed in expected:
            return trimmed
    for name in sorted(expected, key=len, reverse=True):
        if name in stem:
            return name
    return SAFE_NAME.sub("_", stem).strip(" .") or "unnamed"  # a leading dot would hide it


def parse_timestamp(text: str) -> datetime | str:
    """The UTC time ``text`` stands for (nbgrader's format, or any ``dateutil`` reads), or why not."""
    from nbgrader.utils import parse_utc

    text = text.strip()
    if not text:
        return "empty"
    if len(text) > MAX_TIMESTAMP_CHARS:
        return f"longer than {MAX_TIMESTAMP_CHARS} characters"
    parts = text.split(" ")
    if len(parts) == 3 and not TIME_ZONE.fullmatch(parts[2]):
        return f"not a time zone: {parts[2]!r}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dateutil warns about unknown zone names
            when = parse_utc(text)
        when.timestamp()  # dates near year 1 or 9999 have none
    except (ValueError, OverflowError, OSError) as error:
        return f"not a date: {text!r} ({error})"
    return when


def entry_kind(path: Path) -> str:
    """``"file"``, ``"folder"``, ``SYMLINK`` or ``SPECIAL_FILE`` for ``path`` itself (no link followed)."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else SPECIAL_FILE


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path``; raises :class:`NotRegularFile` unless it is a regular file.

    Never follows a symlink and never blocks on a FIFO, even if ``path`` changed since it was listed.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if path.is_symlink():
            raise NotRegularFile(SYMLINK) from error
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(SPECIAL_FILE)
    return fd


def read_timestamp_file(path: Path) -> datetime | str:
    """The time in an nbgrader ``timestamp.txt``, or why it cannot be used."""
    kind = entry_kind(path)
    if kind != "file":
        return f"a {kind}"
    try:
        with os.fdopen(open_regular(path), "rb") as file:
            data = file.read(MAX_TIMESTAMP_BYTES + 1)
    except OSError as error:
        return f"unreadable ({error})"
    if len(data) > MAX_TIMESTAMP_BYTES:
        return f"larger than {MAX_TIMESTAMP_BYTES} bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not text"
    if not YEAR.search(text):
        return f"not a date: {text.strip()!r}"
    return parse_timestamp(text)


def walk(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Every regular file under ``folder`` with None, and every other entry with why it is skipped.

    Never follows a symlink (to a file or a folder) and never descends into a hidden folder.
    """
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as error:
            yield current, f"unreadable folder ({error.strerror})"
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                yield path, SYMLINK
            elif entry.is_dir(follow_symlinks=False):
                if entry.name.startswith("."):
                    yield path, HIDDEN_FOLDER
                else:
                    pending.append(path)
            elif entry.is_file(follow_symlinks=False):
                yield path, None
            else:
                yield path, SPECIAL_FILE


def match_flat(
    path: Path, regexp: re.Pattern, expected: list[str], released: list[str] = ()
) -> Incoming | str:
    """An :class:`Incoming` for an LMS file name, or the reason it cannot be matched.

    ``released``: every notebook name of the course; a file named just that has no student id.
    """
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix != ".ipynb":
        return "not a notebook (.ipynb)"
    match = regexp.match(path.name)
    names = [*expected, *released]
    bare = COPY_SUFFIX.sub("", path.stem) in names  # just a notebook's name: whose is it?
    if not match or not match.groupdict().get("student_id") or bare:
        return f"no student id in the file name (pattern {regexp.pattern!r})"
    groups = match.groupdict()
    student = groups["student_id"]
    unsafe = safe_student_id(student)
    if unsafe:
        return f"unsafe student id {student!r}: {unsafe}"
    stem = Path(groups.get("file_id") or path.name[match.end() :]).stem
    timestamp = None
    if groups.get("timestamp"):
        timestamp = parse_timestamp(groups["timestamp"])
        if isinstance(timestamp, str):
            return f"unreadable timestamp {groups['timestamp']!r}: {timestamp}"
    before_file = match.start("file_id") if groups.get("file_id") else match.end()
    late = "_LATE_" in path.name[:before_file]
    return Incoming(path, student, notebook_name(stem, expected), timestamp, late)


def scan_layout(
    source: Path, assignment: str, expected: list[str], report: CollectReport
) -> list[Incoming]:
    """Files in nbgrader's ``<student>/<assignment>/`` layout; refused ones go to ``report``."""
    incoming = []
    for student_folder in sorted(source.iterdir()):
        kind = entry_kind(student_folder)
        if kind in (SYMLINK, SPECIAL_FILE):
            report.unmatched.append((student_folder.name, kind))
        folder = student_folder / assignment
        if kind != "folder" or not os.path.lexists(folder):
            continue
        where = f"{student_folder.name}/{assignment}"
        kind = entry_kind(folder)
        if kind != "folder":
            report.unmatched.append((where, kind if kind != "file" else "a file, not a folder"))
            continue
        student = student_folder.name
        unsafe = safe_student_id(student)
        timestamp = None
        stamp = folder / TIMESTAMP_FILE
        if not unsafe and os.path.lexists(stamp):
            timestamp = read_timestamp_file(stamp)
            if isinstance(timestamp, str):
                message = f"ignored ({timestamp}); collected without a timestamp"
                report.warnings.append((f"{where}/{TIMESTAMP_FILE}", message))
                timestamp = None
        refused = len(report.unmatched)
        for path, reason in sorted(walk(folder)):
            name = str(path.relative_to(source))
            if reason == HIDDEN_FOLDER or (not reason and path.name.startswith(".")):
                continue
            if reason:
                report.unmatched.append((name, reason))
            elif unsafe:
                report.unmatched.append((name, f"unsafe student id {student!r}: {unsafe}"))
            elif path.name != TIMESTAMP_FILE:
                stem = notebook_name(path.stem, expected) if path.suffix == ".ipynb" else path.stem
                incoming.append(Incoming(path, student, stem, timestamp))
        if unsafe and len(report.unmatched) == refused:  # an empty folder: still say why
            report.unmatched.append((where, f"unsafe student id {student!r}: {unsafe}"))
    return incoming


def scan_flat(
    source: Path,
    regexp: re.Pattern,
    expected: list[str],
    released: list[str],
    report: CollectReport,
    by_lms_id: re.Pattern | None = None,
) -> list[Incoming]:
    """Files of a flat LMS download (subfolders searched too); refused ones go to ``report``.

    ``by_lms_id``: a pattern tried first; a file it matches is keyed by its LMS user id.
    """
    incoming = []
    for path, reason in sorted(walk(source)):
        found = reason or (by_lms_id and match_flat(path, by_lms_id, expected, released))
        if isinstance(found, Incoming):
            found = replace(found, lms_user_id=found.student)
        elif not reason:
            found = match_flat(path, regexp, expected, released)
        if isinstance(found, str):
            report.unmatched.append((str(path.relative_to(source)), found))
        else:
            incoming.append(found)
    return incoming


def by_roster(
    incoming: list[Incoming],
    students: dict[str, str],
    report: CollectReport,
    source: Path,
    strict: bool = True,
) -> list[Incoming]:
    """``incoming`` keyed by LMS user id, re-keyed to the roster's student ids (all kept without one).

    Only items with an ``lms_user_id`` are re-keyed. ``strict``: an LMS user id the roster lacks is
    reported and not collected; else it stays the student id, with a warning.
    """
    if not students:
        return incoming
    kept = []
    for item in incoming:
        if item.lms_user_id is None:
            kept.append(item)
            continue
        student = students.get(item.student)
        unsafe = safe_student_id(student) if student else None
        if student and not unsafe:
            kept.append(replace(item, student=student))
            continue
        if not student and not strict:
            kept.append(item)
            message = f"LMS user id {item.student} is not in the roster ({ROSTER}): collected as is"
            report.warnings.append((str(item.path.relative_to(source)), message))
            continue
        why = (
            f"roster student id {student!r} of LMS user id {item.student} is unsafe: {unsafe}"
            if student
            else f"LMS user id {item.student} is not in the roster ({ROSTER})"
        )
        report.unmatched.append((str(item.path.relative_to(source)), why))
    return kept


def zip_member_refusal(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be extracted (a link, a special file, a path leaving the folder)."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in name.split("/"):
        return UNSAFE_ZIP_PATH
    kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix mode, where the zip records one
    if kind == stat.S_IFLNK:
        return SYMLINK
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return SPECIAL_FILE
    return None


def unzip(archive_path: Path, into: Path, report: CollectReport) -> None:
    """Extract the regular files of a zip into the empty folder ``into``; refused members go to ``report``.

    Exits when the zip is unreadable or unpacks to more than ``MAX_ZIP_MEMBERS`` files or
    ``MAX_ZIP_BYTES`` bytes (a zip bomb would fill the disk).
    """
    too_big = (
        f"{archive_path}: more than {MAX_ZIP_MEMBERS} files or {MAX_ZIP_BYTES // 1024**2} MB "
        "unpacked; nothing collected. If it is genuine, unzip it yourself and collect the folder."
    )
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise SystemExit(f"{archive_path}: not a readable zip ({error}).") from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise SystemExit(too_big)
        written = 0
        for info in members:
            reason = zip_member_refusal(info)
            parts = [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
            if reason:
                report.unmatched.append((info.filename, reason))
                continue
            if info.is_dir() or not parts:
                continue
            target = into.joinpath(*parts)
            if os.path.lexists(target):
                report.unmatched.append((info.filename, "name repeated in the zip"))
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as member, open(target, "xb") as out:
                    while chunk := member.read(1024**2):
                        written += len(chunk)
                        if written > MAX_ZIP_BYTES:
                            raise SystemExit(too_big)
                        out.write(chunk)
            except ZIP_READ_ERRORS as error:
                if target.is_file():
                    target.unlink()
                report.unmatched.append((info.filename, f"unreadable in the zip ({error})"))
                continue
            try:  # the zip's own date, so the newest of duplicate files wins
                when = datetime(*info.date_time).timestamp()
                os.utime(target, (when, when))
            except (ValueError, OverflowError, OSError):
                pass


def target_folder(submitted: Path, student: str, assignment: str) -> Path | str:
    """``submitted/<student>/<assignment>``, emptied and checked to lie inside ``submitted``, or why not."""
    base = submitted.resolve()
    folder = base / student / assignment
    for path in (folder.parent, folder):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return f"{path} is not a folder"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if folder.resolve().parent.parent != base:
        return f"{folder} is not inside {base}"
    return folder


def copy_regular(source: Path, destination: Path) -> None:
    """Copy the regular file ``source`` byte for byte to the new file ``destination``, following no link."""
    with os.fdopen(open_regular(source), "rb") as src, open(destination, "xb") as dst:
        shutil.copyfileobj(src, dst)


def place(
    student: str,
    assignment: str,
    files: list[Incoming],
    target: Path,
    expected: list[str],
    report: CollectReport,
    source: Path,
) -> None:
    """Replace ``target/<student>/<assignment>`` with the newest file of each name, and notes for ``grade``."""
    folder = target_folder(target, student, assignment)
    if isinstance(folder, str):
        report.unmatched += [(str(i.path.relative_to(source)), folder) for i in files]
        return
    by_name: dict[str, list[Incoming]] = {}
    for item in files:
        suffix = item.path.suffix
        by_name.setdefault(f"{item.name}{suffix}", []).append(item)
    notes: dict[str, object] = {"duplicates": {}}
    for name, items in sorted(by_name.items()):
        items.sort(key=lambda i: i.age_key)
        newest = items[-1]
        notes["lms_late"] = notes.get("lms_late", False) or newest.lms_late
        try:
            if (folder / name).parent != folder or name in (".", ".."):
                raise NotRegularFile(f"unsafe file name {name!r}")
            copy_regular(newest.path, folder / name)
        except OSError as error:
            why = str(error) if isinstance(error, NotRegularFile) else f"unreadable ({error})"
            report.unmatched.append((str(newest.path.relative_to(source)), why))
            continue
        report.collected.setdefault(student, []).append(name)
        if len(items) > 1:
            ignored = [i.path.name for i in items[:-1]]
            notes["duplicates"][name] = ignored
            report.duplicates.setdefault(student, {})[name] = ignored
        if name.endswith(".ipynb") and name[: -len(".ipynb")] not in expected:
            report.unexpected.setdefault(student, []).append(name)
    stamps = [i.timestamp for i in files if i.timestamp]
    if stamps:
        (folder / TIMESTAMP_FILE).write_text(max(stamps).isoformat(" "))
    if notes["duplicates"] or notes.get("lms_late"):
        (folder / COLLECT_NOTES).write_text(json.dumps(notes, indent=1, sort_keys=True))


def collect(
    assignment: str,
    source: Path,
    root: Path = REPO,
    regexp: str | None = None,
    key: str = "auto",
) -> tuple[CollectReport, Path]:
    """Import ``source`` (a folder in either layout, or a zip) for ``assignment``.

    ``key``: ``"auto"`` (the Canvas user id, :data:`~course_tools.canvas.LMS_ID_REGEXP`, mapped
    through the roster where it maps it, for names that carry one; the name part,
    :data:`DEFAULT_REGEXP`, for the others), ``"name"`` (the name part) or ``"lms-id"`` (the
    Canvas user id, a user id the roster lacks refused). ``regexp`` replaces the pattern (with
    ``"auto"``, its ``student_id`` is the student, as with ``"name"``). Only flat downloads are
    keyed; nbgrader's layout names its students already.
    """
    if key not in KEYS:
        raise SystemExit(f"unknown key {key!r}: use one of {', '.join(KEYS)}.")
    by_lms_id = re.compile(LMS_ID_REGEXP) if key == "auto" and not regexp else None
    regexp = regexp or (LMS_ID_REGEXP if key == "lms-id" else DEFAULT_REGEXP)
    config = course_config(root)
    submitted = Path(config.CourseDirectory.root) / config.CourseDirectory.submitted_directory
    notebooks = released_notebooks(config)
    if assignment not in notebooks:
        raise SystemExit(f"{assignment} is not in the gradebook: release it first.")
    expected = notebooks[assignment]
    released = sorted({name for names in notebooks.values() for name in names})
    report = CollectReport()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(source).resolve()  # the instructor's own argument may be a link
        if source.is_file() and zipfile.is_zipfile(source):
            unzip(source, Path(tmp), report)
            source = Path(tmp)
        elif not source.is_dir():
            raise SystemExit(f"{source} is neither a folder nor a zip.")
        inside = submitted.resolve()
        if source == inside or inside in source.parents or source in inside.parents:
            raise SystemExit(
                f"{source} overlaps the submitted folder {inside}: run grade directly."
            )
        with os.scandir(source) as entries:
            layout = any(
                entry.is_dir(follow_symlinks=False)
                and os.path.lexists(Path(entry.path, assignment))
                for entry in entries
            )
        if layout:
            incoming = scan_layout(source, assignment, expected, report)
        else:
            pattern = re.compile(regexp)
            incoming = scan_flat(source, pattern, expected, released, report, by_lms_id)
            if key == "lms-id":
                incoming = [replace(i, lms_user_id=i.student) for i in incoming]
            if key != "name":
                students = students_by_lms_id(Path(config.CourseDirectory.root) / ROSTER)
                strict = key == "lms-id"
                incoming = by_roster(incoming, students, report, source, strict)
        by_student: dict[str, list[Incoming]] = {}
        for item in incoming:
            by_student.setdefault(item.student, []).append(item)
        for student, files in sorted(by_student.items()):
            place(student, assignment, files, submitted, expected, report, source)
    return report, submitted


def main(argv: list[str] | None = None) -> None:
    """Command line: collect and print what could not be matched."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("source", type=Path, help="folder (nbgrader layout or flat) or .zip")
    parser.add_argument(
        "--key",
        choices=KEYS,
        default="auto",
        help="flat folders: auto (default): the Canvas user id where the file name carries one "
        "(the roster's student id when build/roster.csv maps it), else the name part; name: "
        "the name part only; lms-id: the Canvas user id only (one the roster lacks is refused)",
    )
    parser.add_argument("--regexp", help="file name pattern (flat folders; default: per --key)")
    parser.add_argument("--root", type=Path, default=REPO, help="course root (default: the repo)")
    args = parser.parse_args(argv)
    report, target = collect(args.assignment, args.source, args.root, args.regexp, args.key)
    print(report.text(args.assignment, target))


if __name__ == "__main__":
    main()
