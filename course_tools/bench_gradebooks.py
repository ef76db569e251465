"""Benchmark the gradebooks: a class graded with sqlite and with PostgreSQL, and projections.

``python -m course_tools.bench_gradebooks [--students 48] [assignment]`` builds a sample class
(full, half done and blank submissions in turn, :mod:`course_tools.sample_class`) and grades it, in
one run, with the sqlite gradebook on 1 and 2 workers and with a PostgreSQL gradebook (a local
server it starts, :mod:`course_tools.local_postgres`) on 1, 2 and 3 claim workers. It prints the
wall time of each, where the time went per submission (kernel start, execution, nbgrader's own
steps, feedback, recording), and, from the best PostgreSQL throughput measured, the projected time
for larger classes on several machines like this one. It is not a test: timings vary with load.
"""

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

from course_tools import local_postgres
from course_tools.collect import collect
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade
from course_tools.grading.records import Timing
from course_tools.sample_class import build_course, sample_class

CONFIGURATIONS = [("sqlite", 1), ("sqlite", 2), ("postgres", 1), ("postgres", 2), ("postgres", 3)]
PROJECTED_CLASSES = (500, 5000)
PROJECTED_MACHINES = (1, 4, 16)


@dataclass(frozen=True)
class Measured:
    """One configuration's grading of the class."""

    database: str
    workers: int
    students: int
    wall: float
    per_phase: dict[str, float]  # mean seconds per executed submission

    @property
    def throughput(self) -> float:
        """Submissions per second on this machine."""
        return self.students / self.wall


def mean_timing(timings: list[Timing]) -> dict[str, float]:
    """Mean seconds per submission of each phase."""
    count = max(1, len(timings))
    return {f.name: sum(getattr(t, f.name) for t in timings) / count for f in fields(Timing)}


def grade_class(
    database: str, workers: int, students: int, assignment: str, base: Path, server
) -> Measured:
    """Build a course for ``database``, collect a sample class, grade it; what it took."""
    folder = base / f"{database}-{workers}"
    db_url = server.create_database(f"bench_{workers}") if database == "postgres" else None
    course = build_course(folder / "course", db_url, only=[assignment])
    lms = sample_class(course, assignment, folder / "lms", students)
    previous = os.environ.get("MCL_GRADEBOOK_URL")
    if db_url:
        os.environ["MCL_GRADEBOOK_URL"] = db_url  # collect reads the gradebook's notebooks
    try:
        collect(assignment, lms, course.root)
        start = time.perf_counter()
        result = grade(
            assignment,
            course.root,
            course.source,
            Limits(),
            workers,
            progress=lambda _: None,
            db_url=db_url,
        )
        wall = time.perf_counter() - start
    finally:
        os.environ.pop("MCL_GRADEBOOK_URL", None)
        if previous:
            os.environ["MCL_GRADEBOOK_URL"] = previous
    graded = [r for r in result.rows if r.graded]
    assert len(graded) == students, f"{database} x{workers}: {len(graded)} of {students} graded"
    shutil.rmtree(folder, ignore_errors=True)
    return Measured(database, workers, students, wall, mean_timing(list(result.timings.values())))


def projection(best: Measured) -> list[str]:
    """Projected wall time for bigger classes on more machines like this one."""
    lines = [
        f"projected from PostgreSQL x{best.workers} ({best.throughput * 60:.1f} submissions/min "
        "per 2-core machine; assumes the database keeps up and storage is shared):",
        "  students " + "".join(f"{m:>4} machine(s) " for m in PROJECTED_MACHINES),
    ]
    for students in PROJECTED_CLASSES:
        cells = [_duration(students / (best.throughput * m)) for m in PROJECTED_MACHINES]
        lines.append(f"  {students:>8} " + "".join(f"{c:>16}" for c in cells))
    return lines


def _duration(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def report(results: list[Measured]) -> list[str]:
    """The table the README shows."""
    phases = [f.name for f in fields(Timing)]
    header = "  gradebook  workers  wall (s)  s/submission  " + "  ".join(
        p.replace("_", " ") for p in phases
    )
    lines = [f"class of {results[0].students}, mean seconds per submission by phase:", header]
    for m in results:
        cells = "  ".join(f"{m.per_phase[p]:>{len(p)}.2f}" for p in phases)
        lines.append(
            f"  {m.database:<9}  {m.workers:>7}  {m.wall:>8.1f}  {m.wall / m.students:>12.2f}  {cells}"
        )
    best = max((m for m in results if m.database == "postgres"), key=lambda m: m.throughput)
    return lines + projection(best)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", nargs="?", default="01_pruning")
    parser.add_argument("--students", type=int, default=48)
    args = parser.parse_args()
    if reason := local_postgres.unavailable():
        raise SystemExit(f"cannot benchmark PostgreSQL: {reason}")
    with tempfile.TemporaryDirectory(prefix="mcl-bench-db-") as tmp:
        server = local_postgres.start(Path(tmp) / "postgres")
        try:
            results = []
            for database, workers in CONFIGURATIONS:
                results.append(
                    grade_class(
                        database, workers, args.students, args.assignment, Path(tmp), server
                    )
                )
                print(f"{database} x{workers}: {results[-1].wall:.1f} s", flush=True)
        finally:
            server.stop()
    print("\n".join(["", f"gradebook benchmark ({args.assignment})", *report(results)]))


if __name__ == "__main__":
    main()
