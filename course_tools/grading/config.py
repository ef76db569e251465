"""The nbgrader config used while grading: the course config plus the guards for hostile submissions."""

import os
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from course_tools.course import REPO, course_config
from course_tools.grading.kernel import DEFAULT_MEMORY_MB, KERNEL_NAME


@dataclass(frozen=True)
class Limits:
    """What one submission may use, and whether its kernel runs in the sandbox."""

    cell_timeout: int | None = None  # None: the course's ``Execute.timeout``
    notebook_timeout: int = 300  # per notebook; a correct one needs about 10 s while grading
    memory_mb: int = DEFAULT_MEMORY_MB  # for the kernel's whole process tree when sandboxed
    sandbox: bool = True


def _with_class(preprocessors: list, old: type, new: type) -> list:
    """``preprocessors`` with ``old`` replaced by ``new``."""
    return [new if p is old else p for p in preprocessors]


def grading_config(
    root: Path = REPO, limits: Limits | None = None, replay: bool = False, **directories: str
) -> Config:
    """The course config for grading at ``root``.

    Autograde runs ``GuardedExecute`` in the grading kernel, or with ``replay`` copies the run a
    worker reported (``ReplayExecute``); either way ``ScoreFromVerdicts`` scores the test cells.
    Feedback hides hidden tests and what their outputs would quote.
    """
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute, SaveAutoGrades

    from course_tools.grading.execute import GuardedExecute, ReplayExecute
    from course_tools.grading.scoring import ScoreFromVerdicts

    limits = limits or Limits()
    config = course_config(root, **directories)
    steps = list(Autograde.class_traits()["autograde_preprocessors"].default())
    steps = _with_class(steps, Execute, ReplayExecute if replay else GuardedExecute)
    config.Autograde.autograde_preprocessors = _with_class(steps, SaveAutoGrades, ScoreFromVerdicts)
    if limits.cell_timeout is not None:
        config.Execute.timeout = limits.cell_timeout
    config.GuardedExecute.notebook_timeout = limits.notebook_timeout
    config.GuardedExecute.kernel_name = KERNEL_NAME
    config.GuardedExecute.shutdown_kernel = "immediate"  # a graded kernel is thrown away: save 1 s
    config.GuardedExecute.sandboxed = limits.sandbox
    source = Path(config.CourseDirectory.root, config.CourseDirectory.source_directory)
    config.GuardedExecute.source_directory = str(source)
    if limits.sandbox:  # no network in the sandbox: the kernel talks over unix sockets
        config.KernelManager.transport = "ipc"
    return config


def use_grading_kernel(data_dir: Path, threads: int) -> None:
    """Make kernels started by this process find the grading kernelspec under ``data_dir``."""
    paths = [str(data_dir), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
