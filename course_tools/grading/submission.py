"""One student's submission: its checks, its worker's report, the status and message they give."""

from dataclasses import dataclass, field
from pathlib import Path

from course_tools.grading.checks import NotebookCheck, check_submission, overall_status
from course_tools.grading.ids import safe_student_id
from course_tools.grading.records import WorkerReport
from course_tools.grading.sheet import few
from course_tools.grading.status import Status


@dataclass
class Submission:
    """One student's submission of the assignment and what grading made of it."""

    student: str
    checks: list[NotebookCheck]
    report: WorkerReport | None = None
    problems: list[Status] = field(default_factory=list)  # statuses found while running
    notes: list[str] = field(default_factory=list)

    @property
    def gradable(self) -> bool:
        """True when at least one notebook passed the checks."""
        return any(c.status == Status.OK for c in self.checks)

    @property
    def status(self) -> Status:
        """The sheet's status column."""
        return overall_status(self.checks, self.problems)

    @property
    def message(self) -> str:
        """The sheet's message column: every problem and note, in a stable order."""
        parts = [c.message for c in self.checks if c.message]
        parts += [note for c in self.checks for note in c.notes]
        return "; ".join(parts + self.notes)


def check(student: str, path: Path | None, assignment: str, specs) -> list[NotebookCheck]:
    """The checks of one submission folder, an unsafe id or a missing folder included."""
    if reason := safe_student_id(student):
        return [NotebookCheck("-", Status.UNSAFE_ID, f"student id {student!r}: {reason}")]
    if path is None:
        return [NotebookCheck("-", Status.MISSING, "no submission")]
    if link := next((p for p in (path.parent, path) if p.is_symlink()), None):
        return [
            NotebookCheck("-", Status.UNSAFE_FILE, f"{link.name} is a symbolic link: not followed")
        ]
    return check_submission(path, assignment, specs)


def report_problems(report: WorkerReport, cell_timeout: int) -> tuple[list[Status], list[str]]:
    """Statuses and notes from a worker's report on one submission."""
    if not report.success:
        return [Status.AUTOGRADE_ERROR], [f"autograde failed: {report.error}"]
    statuses, notes = [], []
    for execution in report.executions:
        name = execution.notebook
        if execution.flags:
            statuses.append(Status.FLAGGED)
            notes.append(f"{name}: review: {'; '.join(execution.flags[:5])}")
        if execution.timed_out:
            statuses.append(Status.TIMEOUT)
            cells = few(execution.timed_out)
            notes.append(
                f"{name}: cut off by the time limit ({cell_timeout} s per cell) in {cells}"
            )
        if execution.stopped:
            statuses.append(execution.stopped)
            notes.append(f"{name}: {execution.reason}, later cells were not run")
        if execution.memory:
            statuses.append(Status.MEMORY)
            notes.append(f"{name}: ran out of memory (kernel cap) in {few(execution.memory)}")
        if execution.raised:
            notes.append(f"{name}: exception in {few(execution.raised)}")
        if execution.truncated:
            notes.append(f"{name}: output truncated in {few(execution.truncated)}")
        if execution.leftover_processes:
            notes.append(
                f"{name}: {execution.leftover_processes} process(es) outlived the kernel: killed"
            )
    return statuses, notes


def take_report(submission: Submission, assignment: str, cell_timeout: int) -> None:
    """Statuses and notes of the submission's worker report (execution and feedback)."""
    report = submission.report
    problems, notes = report_problems(report, cell_timeout)
    submission.problems, submission.notes = problems, submission.notes + notes
    if not report.success:
        return
    if report.feedback_error:
        submission.notes.append(f"feedback failed: {report.feedback_error}")
    if report.feedback_held:
        submission.notes.append(
            "feedback held for review: after reviewing, release it with "
            f"`nbgrader generate_feedback {assignment} --student {submission.student}`"
        )
