"""One small, consistent matplotlib style for every figure of the course."""

import matplotlib as mpl

COURSE_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
}


def use_course_style() -> None:
    """Apply the course style to every later figure."""
    mpl.rcParams.update(COURSE_STYLE)
