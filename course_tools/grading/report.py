"""What the instructor reads: one progress line per submission, then the grading report."""

from dataclasses import dataclass, field, fields
from pathlib import Path

from course_tools.grading.records import Timing
from course_tools.grading.sheet import Exercise, SheetRow, read_scores
from course_tools.grading.status import NOT_GRADED, Status


@dataclass
class GradingResult:
    """The outcome of grading one assignment."""

    assignment: str
    sheet: Path
    rows: list[SheetRow]
    exercises: list[Exercise]
    seconds: float = 0.0
    workers: int = 0
    sandboxed: bool = True
    execution_seconds: dict[str, float] = field(default_factory=dict)  # per executed student
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the grading
    timings: dict[str, Timing] = field(default_factory=dict)  # per executed student


UNSANDBOXED = "UNSANDBOXED: student code ran with your rights"


@dataclass
class Progress:
    """Prints one line per finished submission: ``[ 3/14] alice  graded  2/3  4.1 s``."""

    total: int
    say: object
    sandboxed: bool = True
    count: int = 0

    def done(self, student: str, status: Status, score: str, seconds: float) -> None:
        """Report one more finished submission."""
        self.count += 1
        width = len(str(self.total))
        timing = f"{seconds:5.1f} s" if seconds else ""
        warning = "" if self.sandboxed else f"  {UNSANDBOXED}"
        self.say(
            f"[{self.count:>{width}}/{self.total}] {student:<16} "
            f"{status:<16} {score:>9} {timing}{warning}"
        )


def score_text(
    coursedir, assignment: str, student: str, status: Status, wanted: list[Exercise]
) -> str:
    """``2/3`` for the progress line, ``-`` when not graded."""
    from nbgrader.api import Gradebook

    if status in NOT_GRADED:
        return "-"
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        row = read_scores(gb, assignment, student, wanted)
    return f"{sum(s or 0.0 for s in row.scores.values()):g}/{sum(e.max_score for e in wanted):g}"


def grading_report(result: GradingResult) -> str:
    """Counts by status, failures and flags and why, pass rate of each exercise."""
    graded = [r for r in result.rows if r.graded]
    failed = [r for r in result.rows if not r.graded]
    counts: dict[str, int] = {}
    for row in result.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines = [
        f"{result.assignment}: {len(result.rows)} student(s), {len(graded)} graded, "
        f"{len(failed)} not graded ({result.seconds:.1f} s on {result.workers} worker(s))",
        "  status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
    ]
    if not result.sandboxed:
        lines.insert(1, f"  {UNSANDBOXED} (--no-sandbox)")
    for row in sorted(failed, key=lambda r: (r.status, r.student)):
        lines.append(f"  not graded  {row.student}: {row.status} - {row.message}")
    for row in sorted(graded, key=lambda r: r.student):
        if row.status == Status.FLAGGED:
            lines.append(f"  REVIEW      {row.student}: flagged - {row.message}")
        elif row.status != Status.GRADED:
            lines.append(f"  graded, but {row.student}: {row.status} - {row.message}")
    if graded:
        lines.append(f"  exercises ({len(graded)} graded submission(s)):")
        for exercise in result.exercises:
            if exercise.autograded:
                passed = sum(r.scores.get(exercise.column) == exercise.max_score for r in graded)
                lines.append(
                    f"    {exercise.column:<32} {exercise.max_score:>4g} pts  "
                    f"passed {passed}/{len(graded)} ({100 * passed / len(graded):.0f}%)"
                )
            else:
                waiting = sum(exercise.column in r.needs_manual for r in graded)
                lines.append(
                    f"    {exercise.column:<32} {exercise.max_score:>4g} pts  "
                    f"manual: {waiting} to grade in formgrader"
                )
    if result.execution_seconds:
        times = sorted(result.execution_seconds.values())
        lines.append(
            f"  autograde per submission: median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s"
        )
    if result.timings:
        count = len(result.timings)
        mean = {
            name: sum(getattr(t, name) for t in result.timings.values()) / count
            for name in (f.name for f in fields(Timing))
        }
        lines.append(
            "  per submission (mean): "
            + ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in mean.items())
        )
    if result.phases:
        lines.append("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items()))
    lines.append(f"  grade sheet: {result.sheet}")
    return "\n".join(lines)
