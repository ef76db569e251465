"""Benchmark the grader: what the sandbox costs, and what parallel workers buy.

``python -m course_tools.bench_grading [--repeats 3] [--students 16] [--workers 1 2] [assignment ...]``
builds a temporary course from ``solutions/`` (:mod:`course_tools.sample_class`), then

- grades one student's full submission of every assignment with and without the sandbox, in
  turns, ``--repeats`` times: the median autograde time per notebook and for all of them;
- grades a sample class of ``--students`` submissions (full, half done, blank) once per
  ``--workers`` value: wall time per class and per submission.

It prints what it measured. It is not a test: timings vary with the load.
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from course_tools.collect import collect
from course_tools.course import assignments, notebooks, submit
from course_tools.grading.config import Limits
from course_tools.grading.grade_class import grade
from course_tools.grading.report import GradingResult
from course_tools.grading.status import Status
from course_tools.sample_class import Course, build_course, filled, sample_class, solution_answers


def fresh_root(course: Course, name: str) -> Path:
    """A course root with a copy of the released gradebook."""
    root = course.root.parent / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    shutil.copy(course.root / "gradebook.db", root / "gradebook.db")
    return root


def quiet(_line: str) -> None:
    """Progress lines are not part of the benchmark's output."""


def one_student(course: Course, assignment: str, sandbox: bool, attempt: int) -> float:
    """Autograde seconds (worker side) of one full submission of ``assignment``."""
    nb = next(n for n in notebooks() if n.assignment == assignment)
    root = fresh_root(course, f"one-{assignment}-{sandbox}-{attempt}")
    path = root / "full.ipynb"
    nbformat.write(filled(course.release_notebook(nb), solution_answers(nb)), path)
    submit(root, nb, "student", path)
    result = grade(assignment, root, course.source, Limits(sandbox=sandbox), 1, progress=quiet)
    assert result.rows[0].status is Status.GRADED, result.rows[0].message
    return result.execution_seconds["student"]


def sandbox_cost(course: Course, selected: list[str], repeats: int) -> list[str]:
    """Median autograde time of one student, per notebook and in all, with and without sandbox."""
    times: dict[tuple[str, bool], list[float]] = {}
    for attempt in range(repeats):
        for assignment in selected:
            for sandbox in (True, False):
                seconds = one_student(course, assignment, sandbox, attempt)
                times.setdefault((assignment, sandbox), []).append(seconds)
    lines = [f"one student's autograde, median of {repeats} (sandboxed / not)"]
    totals = {True: 0.0, False: 0.0}
    for assignment in selected:
        medians = {s: statistics.median(times[(assignment, s)]) for s in (True, False)}
        totals = {s: totals[s] + medians[s] for s in totals}
        runs = " ".join(f"{t:.1f}" for t in times[(assignment, True)])
        plain = " ".join(f"{t:.1f}" for t in times[(assignment, False)])
        lines.append(
            f"  {assignment:<18} {medians[True]:5.1f} s / {medians[False]:5.1f} s  "
            f"(runs: {runs} / {plain})"
        )
    extra = 100 * (totals[True] / totals[False] - 1)
    lines.append(
        f"  all notebooks      {totals[True]:5.1f} s / {totals[False]:5.1f} s  "
        f"sandbox adds {extra:+.0f}%"
    )
    return lines


def line(label: str, result: GradingResult, count: int) -> str:
    """One result line: class wall time and wall time per submission."""
    return (
        f"  {label:<20} {count:>3} submissions  {result.seconds:6.1f} s per class  "
        f"{result.seconds / count:5.2f} s per submission  ({result.workers} worker(s))"
    )


def class_times(course: Course, assignment: str, students: int, worker_counts: list[int]):
    """Wall time of grading a sample class once per worker count."""
    lines = [f"{assignment}:"]
    for workers in worker_counts:
        root = fresh_root(course, f"class-{assignment}-{workers}")
        folder = sample_class(course, assignment, root / "lms", students)
        collect(assignment, folder, root)
        start = time.perf_counter()
        result = grade(assignment, root, course.source, Limits(), workers, progress=quiet)
        result.seconds = round(time.perf_counter() - start, 1)
        lines.append(line("sample class", result, students))
        lines.append("    phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items()))
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    parser.add_argument("--repeats", type=int, default=3, help="runs per sandbox-cost figure")
    parser.add_argument("--students", type=int, default=16, help="size of the sample class")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sandbox-only", action="store_true", help="skip the class timings")
    args = parser.parse_args()
    selected = args.assignments or assignments()
    with tempfile.TemporaryDirectory(prefix="mcl-bench-") as tmp:
        course = build_course(Path(tmp) / "course")
        results = sandbox_cost(course, selected, args.repeats)
        print("\n".join(results), flush=True)
        if not args.sandbox_only:
            for assignment in selected:
                lines = class_times(course, assignment, args.students, args.workers)
                print("\n".join(lines), flush=True)
                results += lines
    print("\n".join(["", "grading benchmark", *results]))


if __name__ == "__main__":
    main()
