"""``course_tools.collect`` against hostile downloads: every refused file is reported, nothing leaks.

Fast: no notebook runs and no gradebook is read (the released notebooks are patched in). Each test
builds a download next to a secret file, collects it, and checks the exact reason in the report,
that the secret never reaches ``build/submitted`` and that nothing outside it changed.
"""

import hashlib
import os
import signal
import socket
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from course_tools import collect as collect_module
from course_tools.collect import (
    HIDDEN_FOLDER,
    SPECIAL_FILE,
    SYMLINK,
    UNSAFE_ZIP_PATH,
    CollectReport,
    collect,
)
from course_tools.grading.ids import safe_student_id

ASSIGNMENT = "01_pruning"
NOTEBOOK = "head_pruning"
SECRET = b"instructor-only 7f3a9c"
NOTEBOOK_BYTES = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of hanging if collect ever opens a FIFO for reading."""

    def timeout(signum, frame):
        raise TimeoutError("collect blocked (read a FIFO?)")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@dataclass
class Class:
    """A course root, a download folder and, outside both, a secret file and folder."""

    root: Path
    source: Path
    secret: Path  # a file no student may get collected
    secret_folder: Path  # a folder holding <assignment>/<notebook>.ipynb with the secret

    @property
    def submitted(self) -> Path:
        return self.root / "build" / "submitted"

    def layout(self, student: str, name: str = f"{NOTEBOOK}.ipynb") -> Path:
        """``source/<student>/<assignment>/<name>``, its folders made."""
        path = self.source / student / ASSIGNMENT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@pytest.fixture
def cls(tmp_path, monkeypatch) -> Class:
    monkeypatch.setattr(
        collect_module,
        "released_notebooks",
        lambda config: {ASSIGNMENT: [NOTEBOOK], "02_distillation": ["distillation"]},
    )
    outside = tmp_path / "outside"
    secret_folder = outside / "folder"
    (secret_folder / ASSIGNMENT).mkdir(parents=True)
    (secret_folder / ASSIGNMENT / f"{NOTEBOOK}.ipynb").write_bytes(SECRET)
    (secret_folder / ASSIGNMENT / "timestamp.txt").write_text("2030-01-01 00:00:00 UTC")
    secret = outside / "secret.ipynb"
    secret.write_bytes(SECRET)
    (tmp_path / "source").mkdir()
    (tmp_path / "course" / "build").mkdir(parents=True)  # collect makes build/submitted only
    return Class(tmp_path / "course", tmp_path / "source", secret, secret_folder)


def snapshot(top: Path, skip: Path) -> dict[str, tuple]:
    """Every entry under ``top`` but ``skip``: its kind and content hash or link target, no link followed."""
    found = {}
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in dirs + files:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                found[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                found[str(path)] = (stat.S_IFMT(mode),)
    return found


def collect_checked(cls: Class, source: Path | None = None, **options) -> CollectReport:
    """Collect ``source`` (default the download folder); check nothing outside the target changed."""
    top = cls.root.parent
    before = snapshot(top, cls.submitted)
    report, target = collect(ASSIGNMENT, source or cls.source, cls.root, **options)
    assert target == cls.submitted
    assert snapshot(top, cls.submitted) == before
    for path in cls.submitted.rglob("*") if cls.submitted.exists() else []:
        assert not path.is_symlink(), path
        assert path.is_dir() or SECRET not in path.read_bytes(), path
    return report


def collected(cls: Class) -> list[str]:
    """Every file under ``build/submitted``, relative to it."""
    if not cls.submitted.exists():
        return []
    return sorted(
        str(p.relative_to(cls.submitted)) for p in cls.submitted.rglob("*") if p.is_file()
    )


# Student ids


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (".", "'.' is a path, not a name"),
        ("..", "'..' is a path, not a name"),
        ("honest2 ", "surrounding whitespace"),
        (" honest2", "surrounding whitespace"),
        ("a\x07b", "control character"),
        ("a\u202eb", "control character"),
        ("a\udcffb", "not valid UTF-8"),
        ("a/b", "path separator '/'"),
        ("a\\b", "path separator '\\\\'"),
        ("*", "glob character '*'"),
        ("stud?nt", "glob character '?'"),
        ("[ab]", "glob character '['"),
        ("{a,b}", "glob character '{'"),
        (".alice", "leading dot"),
        ("-rf", "leading dash"),
        ("a" * 129, "longer than 128 characters"),
        ("a b", "character ' ' (only ASCII letters, digits and . @ + _ - are allowed)"),
        ("josé", "character 'é' (only ASCII letters, digits and . @ + _ - are allowed)"),
    ],
)
def test_unsafe_student_id_gets_its_reason(text, reason):
    assert safe_student_id(text) == reason


@pytest.mark.parametrize("text", ["alice", "Bob_2", "a.b@uni.edu", "s+1", "x-y", "0042", "a" * 128])
def test_conservative_student_ids_are_safe(text):
    assert safe_student_id(text) is None


def test_flat_file_with_unsafe_id_is_not_collected(cls):
    for student in ["*", "honest2 ", "-rf", "honest2"]:
        (cls.source / f"{student}_{NOTEBOOK}.ipynb").write_bytes(NOTEBOOK_BYTES)
    report = collect_checked(cls, regexp=r"^(?P<student_id>[^_]*)_")
    assert sorted(report.unmatched) == [
        (f"*_{NOTEBOOK}.ipynb", "unsafe student id '*': glob character '*'"),
        (f"-rf_{NOTEBOOK}.ipynb", "unsafe student id '-rf': leading dash"),
        (f"honest2 _{NOTEBOOK}.ipynb", "unsafe student id 'honest2 ': surrounding whitespace"),
    ]
    assert collected(cls) == [f"honest2/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def test_layout_folder_with_unsafe_id_is_not_collected(cls):
    for student in ["*", "honest2 ", "-rf", ".hidden", "honest2"]:
        cls.layout(student).write_bytes(NOTEBOOK_BYTES)
    (cls.source / "[ab]" / ASSIGNMENT).mkdir(parents=True)  # nothing in it: the folder is named
    report = collect_checked(cls)
    name = f"{ASSIGNMENT}/{NOTEBOOK}.ipynb"
    assert sorted(report.unmatched) == [
        (f"*/{name}", "unsafe student id '*': glob character '*'"),
        (f"-rf/{name}", "unsafe student id '-rf': leading dash"),
        (f".hidden/{name}", "unsafe student id '.hidden': leading dot"),
        (f"[ab]/{ASSIGNMENT}", "unsafe student id '[ab]': glob character '['"),
        (f"honest2 /{name}", "unsafe student id 'honest2 ': surrounding whitespace"),
    ]
    assert collected(cls) == [f"honest2/{name}"]


def test_report_quotes_a_name_with_control_characters(cls):
    cls.layout("a\x1b[2Jb").write_bytes(NOTEBOOK_BYTES)
    report = collect_checked(cls)
    text = report.text(ASSIGNMENT, cls.submitted)
    assert "\x1b" not in text
    assert repr(f"a\x1b[2Jb/{ASSIGNMENT}/{NOTEBOOK}.ipynb") in text


# timestamp.txt


def write_timestamp(cls: Class, path: Path, kind: str) -> None:
    """Make ``path`` a bad ``timestamp.txt`` of the given kind."""
    if kind == "unparseable":
        path.write_text("last tuesday, around noon\n")
    elif kind == "huge":
        path.write_bytes(b"2024-01-01 " + b"9" * 10_000_000)
    elif kind == "binary":
        path.write_bytes(bytes(range(256)))
    elif kind == "out of range":
        path.write_text("0001-01-01 00:00:00 +5")
    elif kind == "time zone path":  # dateutil would open it as a zone file
        path.write_text("2024-01-01 10:00:00 ../../outside/secret.ipynb")
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink":
        path.symlink_to(cls.secret_folder / ASSIGNMENT / "timestamp.txt")
    elif kind == "fifo":
        os.mkfifo(path)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("unparseable", "not a date: 'last tuesday, around noon'"),
        ("huge", "larger than 400 bytes"),
        ("binary", "not text"),
        ("out of range", "not a date: '0001-01-01 00:00:00 +5' (date value out of range)"),
        ("folder", "a folder"),
        ("symlink", "a symlink"),
        ("fifo", "a special file"),
    ],
)
def test_bad_timestamp_is_ignored_and_reported(cls, kind, reason):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    write_timestamp(cls, cls.source / "alice" / ASSIGNMENT / "timestamp.txt", kind)
    report = collect_checked(cls)
    message = f"ignored ({reason}); collected without a timestamp"
    assert report.warnings == [(f"alice/{ASSIGNMENT}/timestamp.txt", message)]
    assert collected(cls) == [f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def test_timestamp_time_zone_is_never_opened_as_a_file(cls):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    write_timestamp(cls, cls.source / "alice" / ASSIGNMENT / "timestamp.txt", "time zone path")
    report = collect_checked(cls)
    reason = "not a time zone: '../../outside/secret.ipynb'"
    message = f"ignored ({reason}); collected without a timestamp"
    assert report.warnings == [(f"alice/{ASSIGNMENT}/timestamp.txt", message)]


def test_good_timestamp_is_kept(cls):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    (cls.source / "alice" / ASSIGNMENT / "timestamp.txt").write_text(
        "2024-03-04 05:06:07.000008 UTC\n"
    )
    report = collect_checked(cls)
    assert report.warnings == []
    stamp = cls.submitted / "alice" / ASSIGNMENT / "timestamp.txt"
    assert stamp.read_text() == "2024-03-04 05:06:07.000008"


# Symlinks and special files


def test_layout_symlink_to_a_file_is_not_followed(cls):
    cls.layout("alice").symlink_to(cls.secret)
    report = collect_checked(cls)
    assert report.unmatched == [(f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb", SYMLINK)]
    assert collected(cls) == []


def test_layout_symlink_to_a_folder_is_not_followed(cls):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    (cls.source / "alice" / ASSIGNMENT / "extra").symlink_to(cls.secret_folder / ASSIGNMENT)
    report = collect_checked(cls)
    assert report.unmatched == [(f"alice/{ASSIGNMENT}/extra", SYMLINK)]
    assert collected(cls) == [f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def test_layout_student_folder_symlink_is_not_followed(cls):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    (cls.source / "mallory").symlink_to(cls.secret_folder)
    report = collect_checked(cls)
    assert report.unmatched == [("mallory", SYMLINK)]
    assert collected(cls) == [f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def test_layout_assignment_folder_symlink_is_not_followed(cls):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    (cls.source / "mallory").mkdir()
    (cls.source / "mallory" / ASSIGNMENT).symlink_to(cls.secret_folder / ASSIGNMENT)
    report = collect_checked(cls)
    assert report.unmatched == [(f"mallory/{ASSIGNMENT}", SYMLINK)]
    assert collected(cls) == [f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def test_flat_symlinks_are_not_followed(cls):
    (cls.source / f"alice_1_{NOTEBOOK}.ipynb").symlink_to(cls.secret)
    (cls.source / "more").symlink_to(cls.secret_folder / ASSIGNMENT)
    (cls.source / f"bob_1_{NOTEBOOK}.ipynb").write_bytes(NOTEBOOK_BYTES)
    report = collect_checked(cls)
    assert sorted(report.unmatched) == [(f"alice_1_{NOTEBOOK}.ipynb", SYMLINK), ("more", SYMLINK)]
    assert collected(cls) == [f"bob/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def make_special(path: Path, kind: str) -> None:
    """A FIFO or a unix socket at ``path`` (a socket is bound from its folder: paths are short)."""
    if kind == "fifo":
        os.mkfifo(path)
        return
    here = Path.cwd()
    os.chdir(path.parent)
    try:
        server = socket.socket(socket.AF_UNIX)
        server.bind(path.name)
        server.close()
    finally:
        os.chdir(here)


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_layout_special_file_is_not_read(cls, kind):
    make_special(cls.layout("alice"), kind)
    cls.layout("bob").write_bytes(NOTEBOOK_BYTES)
    report = collect_checked(cls)
    assert report.unmatched == [(f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb", SPECIAL_FILE)]
    assert collected(cls) == [f"bob/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_flat_special_file_is_not_read(cls, kind):
    make_special(cls.source / f"alice_1_{NOTEBOOK}.ipynb", kind)
    report = collect_checked(cls)
    assert report.unmatched == [(f"alice_1_{NOTEBOOK}.ipynb", SPECIAL_FILE)]
    assert collected(cls) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_device_file_is_not_read(cls):
    os.mknod(cls.layout("alice"), stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    report = collect_checked(cls)
    assert report.unmatched == [(f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb", SPECIAL_FILE)]


def test_flat_hidden_folder_is_not_searched(cls):
    (cls.source / ".ipynb_checkpoints").mkdir()
    (cls.source / ".ipynb_checkpoints" / f"alice_1_{NOTEBOOK}.ipynb").write_bytes(b"old")
    (cls.source / f"alice_1_{NOTEBOOK}.ipynb").write_bytes(NOTEBOOK_BYTES)
    report = collect_checked(cls)
    assert report.unmatched == [(".ipynb_checkpoints", HIDDEN_FOLDER)]
    assert (cls.submitted / "alice" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_bytes() == (
        NOTEBOOK_BYTES
    )


# Zips


def write_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """A zip of ``(name, data, unix mode)`` members, names kept exactly as given."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 5))
            info.create_system = 3
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def test_zip_symlink_member_is_not_collected(cls):
    target = str(cls.secret).encode()
    archive = write_zip(
        cls.root.parent / "download.zip",
        [
            (f"alice_1_{NOTEBOOK}.ipynb", target, stat.S_IFLNK | 0o777),
            (f"bob_1_{NOTEBOOK}.ipynb", NOTEBOOK_BYTES, stat.S_IFREG | 0o644),
        ],
    )
    report = collect_checked(cls, archive)
    assert report.unmatched == [(f"alice_1_{NOTEBOOK}.ipynb", SYMLINK)]
    assert collected(cls) == [f"bob/{ASSIGNMENT}/{NOTEBOOK}.ipynb"]


def test_zip_special_member_is_not_collected(cls):
    archive = write_zip(
        cls.root.parent / "download.zip",
        [(f"alice_1_{NOTEBOOK}.ipynb", b"", stat.S_IFIFO | 0o644)],
    )
    report = collect_checked(cls, archive)
    assert report.unmatched == [(f"alice_1_{NOTEBOOK}.ipynb", SPECIAL_FILE)]


@pytest.mark.parametrize(
    "name",
    [
        "/tmp/alice_1_head_pruning.ipynb",
        "../alice_1_head_pruning.ipynb",
        "sub/../../alice_1_head_pruning.ipynb",
        "..\\alice_1_head_pruning.ipynb",
        "C:/alice_1_head_pruning.ipynb",
    ],
)
def test_zip_member_with_unsafe_path_is_not_extracted(cls, name):
    archive = write_zip(cls.root.parent / "download.zip", [(name, SECRET, stat.S_IFREG | 0o644)])
    report = collect_checked(cls, archive)
    assert report.unmatched == [(name, UNSAFE_ZIP_PATH)]
    assert collected(cls) == []


def test_zip_with_too_many_members_is_refused(cls, monkeypatch):
    monkeypatch.setattr(collect_module, "MAX_ZIP_MEMBERS", 3)
    members = [(f"s{i}_1_{NOTEBOOK}.ipynb", NOTEBOOK_BYTES, stat.S_IFREG | 0o644) for i in range(4)]
    archive = write_zip(cls.root.parent / "download.zip", members)
    with pytest.raises(
        SystemExit, match=r"more than 3 files or 4096 MB unpacked; nothing collected"
    ):
        collect_checked(cls, archive)
    assert not cls.submitted.exists()


def test_zip_bomb_is_refused_before_unpacking(cls):
    members = [(f"s{i}_1_{NOTEBOOK}.ipynb", b"0" * 64, stat.S_IFREG | 0o644) for i in range(2)]
    archive = write_zip(cls.root.parent / "download.zip", members)
    data = bytearray(archive.read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:  # claim 4 GB each in the directory
        data[start + 24 : start + 28] = (0xFFFFFFFE).to_bytes(4, "little")
        start += 4
    archive.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match=r"more than 20000 files or 4096 MB unpacked"):
        collect_checked(cls, archive)
    assert not cls.submitted.exists()


# Copies and the target folder


def test_collected_file_is_a_byte_identical_regular_file(cls):
    data = bytes(range(256)) * 1000
    cls.layout("alice").write_bytes(data)
    collect_checked(cls)
    copy = cls.submitted / "alice" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    assert stat.S_ISREG(copy.lstat().st_mode)
    assert copy.read_bytes() == data


def test_target_student_folder_symlink_is_refused(cls):
    cls.layout("alice").write_bytes(NOTEBOOK_BYTES)
    elsewhere = cls.root.parent / "outside" / "elsewhere"
    elsewhere.mkdir()
    cls.submitted.mkdir(parents=True)
    (cls.submitted / "alice").symlink_to(elsewhere)
    report, _ = collect(ASSIGNMENT, cls.source, cls.root)
    folder = cls.submitted.resolve() / "alice"
    assert report.unmatched == [
        (f"alice/{ASSIGNMENT}/{NOTEBOOK}.ipynb", f"{folder} is not a folder")
    ]
    assert list(elsewhere.iterdir()) == []


def test_source_containing_the_target_is_refused(cls):
    cls.submitted.mkdir(parents=True)
    with pytest.raises(SystemExit, match="overlaps the submitted folder"):
        collect(ASSIGNMENT, cls.root, cls.root)
