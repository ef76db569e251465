"""Typed records that travel from a grading worker to the process that records and reports."""

from dataclasses import dataclass, field

from course_tools.grading.status import Status


@dataclass
class NotebookExecution:
    """How one notebook of one submission executed, as the worker observed it (not the kernel)."""

    notebook: str
    passed: dict[str, bool] = field(default_factory=dict)  # test cell grade_id -> ran to the end
    stopped: Status | None = None  # TIMEOUT or KERNEL_DIED when later cells were not run
    reason: str = ""
    timed_out: list[str] = field(default_factory=list)
    memory: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)  # non-test cells that raised
    truncated: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # why a person must review the scores
    leftover_processes: int = 0
    seconds: float = 0.0
    kernel_seconds: float = 0.0  # of ``seconds``: until the sandboxed kernel answered
    executed: str = ""  # the executed notebook (nbformat JSON) the scores and feedback come from


@dataclass
class Timing:
    """Where the grading time of one submission went, in seconds."""

    kernel_start: float = 0.0
    execution: float = 0.0
    nbgrader: float = 0.0  # autograde's own steps: copying, sanitising, scoring
    feedback: float = 0.0
    recording: float = 0.0  # sqlite: the replay into the real gradebook; server: publish and claim

    @property
    def total(self) -> float:
        return self.kernel_start + self.execution + self.nbgrader + self.feedback + self.recording


@dataclass
class WorkerReport:
    """Everything a worker says about one submission; scores are recorded from this alone."""

    student: str
    success: bool
    error: str = ""
    executions: list[NotebookExecution] = field(default_factory=list)
    seconds: float = 0.0
    feedback_error: str = ""
    feedback_held: bool = False  # flagged: no feedback until a person has reviewed it
    feedback_seconds: float = 0.0

    def timing(self) -> Timing:
        """The worker's part of this submission's :class:`Timing` (recording left at 0)."""
        ran = sum(e.seconds for e in self.executions)
        kernel = sum(e.kernel_seconds for e in self.executions)
        return Timing(kernel, ran - kernel, max(0.0, self.seconds - ran), self.feedback_seconds)

    def execution_of(self, notebook: str) -> NotebookExecution | None:
        """The execution of ``notebook``, if it was executed."""
        return next((e for e in self.executions if e.notebook == notebook), None)
