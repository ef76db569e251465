"""Benchmark: grade the fixture class of every assignment, and a class of typical submissions.

``python -m course_tools.bench_grading [--students 16] [--workers 1 2] [assignment ...]`` builds a
temporary course from ``solutions/``, then for each assignment

- grades the fixture class of the tests (full, blank, partial and every bad input), twice, and
  checks the two sheets are identical;
- grades a class of ``--students`` typical submissions (full, partial and blank answers in turn)
  once per ``--workers`` value, to show what parallel grading buys.

It prints wall time per submission and per class. It is not a test: timings vary with the load.
"""

import argparse
import copy
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import nbformat
from nbformat.validator import MissingIDFieldWarning

from course_tools.collect import collect
from course_tools.course import assignments, notebooks
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade
from course_tools.grading.report import GradeRun, summary
from tests.class_fixture import (
    CELL_TIMEOUT,
    MEMORY_MB,
    NOTEBOOK_TIMEOUT,
    build_class,
    build_course,
    filled,
    mistakes,
    solution_answers,
)

TEST_LIMITS = Limits(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, MEMORY_MB)


def fresh_root(course_root: Path, name: str) -> Path:
    """A course root with a copy of the released gradebook."""
    root = course_root.parent / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    shutil.copy(course_root / "gradebook.db", root / "gradebook.db")
    return root


def typical_class(course, assignment: str, folder: Path, size: int) -> Path:
    """An LMS folder of ``size`` submissions: full, partially wrong and blank answers in turn."""
    nb = next(n for n in notebooks() if n.assignment == assignment)
    release = course.release_notebook(nb)
    answers = solution_answers(nb)
    kinds = [filled(release, answers)]
    for mistake in mistakes(assignment)[:2]:
        kinds.append(
            filled(release, {**answers, mistake.answer_id: mistake.source, **mistake.extra})
        )
    kinds.append(copy.deepcopy(release))
    folder.mkdir(parents=True)
    for i in range(size):
        path = folder / f"student{i:03d}_{i}_{nb.name}.ipynb"
        nbformat.write(kinds[i % len(kinds)], path)
    return folder


def line(label: str, run: GradeRun, count: int) -> str:
    """One result line: class wall time and wall time per submission."""
    return (
        f"  {label:<34} {count:>3} submissions  {run.seconds:6.1f} s per class  "
        f"{run.seconds / count:5.2f} s per submission  ({run.workers} worker(s))"
    )


def bench(
    selected: list[str], students: int, worker_counts: list[int], fixture: bool = True
) -> list[str]:
    """Run the benchmark; returns the result lines."""
    results = []
    with tempfile.TemporaryDirectory(prefix="mcl-bench-") as tmp:
        course = build_course(Path(tmp) / "course")
        quiet = lambda _line: None  # noqa: E731 - progress is not part of the benchmark output
        for assignment in selected:
            results.append(f"{assignment}:")
            runs = []
            for attempt in (1, 2) if fixture else ():
                root = fresh_root(course.root, f"fixture-{assignment}-{attempt}")
                files = build_class(course, assignment, root / "handed-in")
                collect(assignment, files.layout, root)
                collect(assignment, files.lms, root)
                run = grade(assignment, root, course.source, TEST_LIMITS, 2, progress=quiet)
                runs.append((run, (root / "build" / "grades" / f"{assignment}.csv").read_text()))
            if runs:
                run = runs[0][0]
                results.append(line("fixture class (bad inputs included)", run, len(run.rows)))
                same = runs[0][1] == runs[1][1]
                results.append(f"  graded twice: {'identical' if same else 'DIFFERENT'} sheets")
                full = run.execution_seconds.get("full", float("nan"))
                results.append(f"  autograde of one full submission: {full:.1f} s")
                print(summary(run), flush=True)
            for workers in worker_counts:
                root = fresh_root(course.root, f"typical-{assignment}-{workers}")
                folder = typical_class(course, assignment, root / "lms", students)
                collect(assignment, folder, root)
                start = time.perf_counter()
                run = grade(assignment, root, course.source, Limits(), workers, progress=quiet)
                run.seconds = round(time.perf_counter() - start, 1)
                results.append(line("typical class", run, students))
                phases = ", ".join(f"{k} {v:.1f} s" for k, v in run.phases.items())
                results.append(f"    phases: {phases}")
            print("\n".join(results[results.index(f"{assignment}:") :]), flush=True)
    return results


def main() -> None:
    """Command line."""
    warnings.filterwarnings("ignore", category=MissingIDFieldWarning)  # fixture notebooks
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    parser.add_argument("--students", type=int, default=16, help="size of the typical class")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--typical-only", action="store_true", help="skip the fixture class")
    args = parser.parse_args()
    selected = args.assignments or assignments()
    results = bench(selected, args.students, args.workers, not args.typical_only)
    print("\n".join(["", "grading benchmark", *results]))


if __name__ == "__main__":
    main()
