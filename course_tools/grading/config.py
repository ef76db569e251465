"""The nbgrader config used while grading: the course config plus the guards for hostile submissions."""

import os
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from course_tools.course import REPO, course_config
from course_tools.grading.kernel import DEFAULT_MEMORY_MB, KERNEL_NAME


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per cell and per notebook, kernel memory."""

    cell_timeout: int | None = None  # None: the course's ``Execute.timeout``
    notebook_timeout: int = 300  # per notebook; a correct one needs about 10 s while grading
    memory_mb: int = DEFAULT_MEMORY_MB


def _with_class(preprocessors: list, old: type, new: type) -> list:
    """``preprocessors`` with ``old`` replaced by ``new``."""
    return [new if p is old else p for p in preprocessors]


def grading_config(
    root: Path = REPO,
    limits: Limits | None = None,
    executed_directory: Path | None = None,
    **directories: str,
) -> Config:
    """The course config for grading at ``root``.

    Autograde runs ``GuardedExecute`` in the memory-capped kernel, or with ``executed_directory``
    replays the outputs a worker left there (``ReplayExecute``). Feedback hides hidden-test output.
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import ClearHiddenTests, Execute, GetGrades

    from course_tools.grading.execute import GuardedExecute, ReplayExecute
    from course_tools.grading.feedback import HideHiddenTestOutput

    limits = limits or Limits()
    config = course_config(root, **directories)
    default = list(Autograde.class_traits()["autograde_preprocessors"].default())
    runner = ReplayExecute if executed_directory else GuardedExecute
    config.Autograde.autograde_preprocessors = _with_class(default, Execute, runner)
    if executed_directory:
        config.ReplayExecute.executed_directory = str(executed_directory)
    if limits.cell_timeout is not None:
        config.Execute.timeout = limits.cell_timeout
    config.GuardedExecute.notebook_timeout = limits.notebook_timeout
    config.GuardedExecute.kernel_name = KERNEL_NAME
    config.GuardedExecute.shutdown_kernel = "immediate"  # a graded kernel is thrown away: save 1 s

    feedback = list(
        config.GenerateFeedback.get(
            "preprocessors", [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests]
        )
    )
    if ClearHiddenTests not in feedback:
        feedback.append(ClearHiddenTests)
    if HideHiddenTestOutput not in feedback:
        feedback.insert(feedback.index(ClearHiddenTests), HideHiddenTestOutput)
    config.GenerateFeedback.preprocessors = feedback
    return config


def use_grading_kernel(data_dir: Path, threads: int) -> None:
    """Make kernels started by this process find the capped kernelspec under ``data_dir``."""
    paths = [str(data_dir), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
