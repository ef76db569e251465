"""Import students' files into ``build/submitted/<student>/<assignment>/`` for grading.

``python -m course_tools.collect 01_pruning DOWNLOADS`` where DOWNLOADS is either

- nbgrader's layout, ``DOWNLOADS/<student>/01_pruning/*.ipynb`` (e.g. from ``nbgrader collect``), or
- a flat folder (or ``.zip``) of files downloaded from an LMS, the student id in each file name:
  ``<student>_[LATE_][<numbers>_]<notebook>.ipynb`` by default (Canvas), or any ``--regexp``
  with the groups ``student_id`` and optionally ``file_id`` and ``timestamp``, as for
  ``nbgrader zip_collect``.

Like ``zip_collect`` it matches file names to the released notebooks, keeps the newest of
duplicate files and writes ``timestamp.txt``; unlike it, it never stops on a duplicate, reports
every file it could not match, and keeps a file with an unexpected name under its own name so
``grade`` gives that student a "wrong-notebook" status instead of a silent zero.
"""

import argparse
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from course_tools.course import REPO, course_config
from course_tools.grading.checks import COLLECT_NOTES

DEFAULT_REGEXP = r"^(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@+-]*)_(?:LATE_)?(?:\d+_)*"
COPY_SUFFIX = re.compile(r"(?:-\d+|\s*\(\d+\)|-Copy\d*)$")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


@dataclass(frozen=True)
class Incoming:
    """One file to collect: whose it is and the name it gets."""

    path: Path
    student: str
    name: str
    timestamp: datetime | None = None

    @property
    def age_key(self) -> tuple[float, str]:
        """Sort key, newest last: the timestamp in its name (else its mtime), then its name."""
        when = self.timestamp.timestamp() if self.timestamp else self.path.stat().st_mtime
        return when, self.path.name


@dataclass
class CollectReport:
    """What ``collect`` did, to print and to test."""

    collected: dict[str, list[str]] = field(default_factory=dict)  # student -> file names
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    duplicates: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)  # student -> odd names

    def text(self, assignment: str, target: Path) -> str:
        """The report printed for the instructor."""
        files = sum(len(v) for v in self.collected.values())
        lines = [
            f"{assignment}: collected {files} file(s) of {len(self.collected)} student(s) into {target}"
        ]
        if self.unmatched:
            lines.append(f"  {len(self.unmatched)} file(s) NOT collected:")
            lines += [f"    {name}: {reason}" for name, reason in self.unmatched]
        for student, dups in sorted(self.duplicates.items()):
            for name, ignored in dups.items():
                lines.append(
                    f"  duplicate: {student} sent {name} {len(ignored) + 1} times; "
                    f"kept the newest, ignored {', '.join(ignored)}"
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
    return SAFE_NAME.sub("_", stem).strip() or "unnamed"


def match_flat(
    path: Path, regexp: re.Pattern, expected: list[str], released: list[str] = ()
) -> Incoming | str:
    """An :class:`Incoming` for an LMS file name, or the reason it cannot be matched.

    ``released``: every notebook name of the course; a file named just that has no student id.
    """
    from nbgrader.utils import parse_utc

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
    stem = Path(groups.get("file_id") or path.name[match.end() :]).stem
    timestamp = None
    if groups.get("timestamp"):
        try:
            timestamp = parse_utc(groups["timestamp"])
        except ValueError:
            return f"unreadable timestamp {groups['timestamp']!r}"
    return Incoming(path, groups["student_id"], notebook_name(stem, expected), timestamp)


def scan_layout(source: Path, assignment: str, expected: list[str]) -> list[Incoming]:
    """Files in nbgrader's ``<student>/<assignment>/`` layout."""
    from nbgrader.utils import parse_utc

    incoming = []
    for folder in sorted(source.glob(f"*/{assignment}")):
        stamp = folder / "timestamp.txt"
        timestamp = parse_utc(stamp.read_text().strip()) if stamp.exists() else None
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != "timestamp.txt" and not path.name.startswith("."):
                name = notebook_name(path.stem, expected) if path.suffix == ".ipynb" else path.stem
                incoming.append(Incoming(path, folder.parent.name, name, timestamp))
    return incoming


def place(
    student: str,
    assignment: str,
    files: list[Incoming],
    target: Path,
    expected: list[str],
    report: CollectReport,
) -> None:
    """Replace ``target/<student>/<assignment>`` with the newest file of each name, and notes for ``grade``."""
    folder = target / student / assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    by_name: dict[str, list[Incoming]] = {}
    for item in files:
        suffix = item.path.suffix
        by_name.setdefault(f"{item.name}{suffix}", []).append(item)
    notes: dict[str, dict] = {"duplicates": {}}
    for name, items in sorted(by_name.items()):
        items.sort(key=lambda i: i.age_key)
        shutil.copy(items[-1].path, folder / name)
        report.collected.setdefault(student, []).append(name)
        if len(items) > 1:
            ignored = [i.path.name for i in items[:-1]]
            notes["duplicates"][name] = ignored
            report.duplicates.setdefault(student, {})[name] = ignored
        if name.endswith(".ipynb") and name[: -len(".ipynb")] not in expected:
            report.unexpected.setdefault(student, []).append(name)
    stamps = [i.timestamp for i in files if i.timestamp]
    if stamps:
        (folder / "timestamp.txt").write_text(max(stamps).isoformat(" "))
    if notes["duplicates"]:
        (folder / COLLECT_NOTES).write_text(json.dumps(notes, indent=1, sort_keys=True))


def collect(
    assignment: str, source: Path, root: Path = REPO, regexp: str = DEFAULT_REGEXP
) -> tuple[CollectReport, Path]:
    """Import ``source`` (a folder in either layout, or a zip) for ``assignment``."""
    config = course_config(root)
    submitted = Path(config.CourseDirectory.root) / config.CourseDirectory.submitted_directory
    notebooks = released_notebooks(config)
    if assignment not in notebooks:
        raise SystemExit(f"{assignment} is not in the gradebook: release it first.")
    expected = notebooks[assignment]
    released = sorted({name for names in notebooks.values() for name in names})
    report = CollectReport()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(source)
        if source.is_file() and zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
            source = Path(tmp)
        if source.resolve() == submitted.resolve():
            raise SystemExit(f"{source} is already the submitted folder: run grade directly.")
        if any(source.glob(f"*/{assignment}")):
            incoming = scan_layout(source, assignment, expected)
        else:
            pattern = re.compile(regexp)
            incoming = []
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                found = match_flat(path, pattern, expected, released)
                if isinstance(found, str):
                    report.unmatched.append((str(path.relative_to(source)), found))
                else:
                    incoming.append(found)
        by_student: dict[str, list[Incoming]] = {}
        for item in incoming:
            by_student.setdefault(item.student, []).append(item)
        for student, files in sorted(by_student.items()):
            place(student, assignment, files, submitted, expected, report)
    return report, submitted


def main(argv: list[str] | None = None) -> None:
    """Command line: collect and print what could not be matched."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("source", type=Path, help="folder (nbgrader layout or flat) or .zip")
    parser.add_argument("--regexp", default=DEFAULT_REGEXP, help="file name pattern (flat folders)")
    parser.add_argument("--root", type=Path, default=REPO, help="course root (default: the repo)")
    args = parser.parse_args(argv)
    report, target = collect(args.assignment, args.source, args.root, args.regexp)
    print(report.text(args.assignment, target))


if __name__ == "__main__":
    main()
