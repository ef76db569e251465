"""What Canvas writes and reads: its submission file names, its gradebook CSV, and the roster's ids.

Canvas names each file of a "Download Submissions" zip (``lib/content_zipper.rb`` in
instructure/canvas-lms)::

    <sortable name, lower case, letters and digits only>_[LATE_]<canvas user id>_<file id>_<file name>

e.g. ``doejane_LATE_4821_99120_head_pruning.ipynb``. The user id is the number the roster
(``build/roster.csv``, column ``lms_user_id``) and the gradebook import's ``ID`` column use;
:data:`LMS_ID_REGEXP` reads it. Anonymous grading names files ``anon_<code>_...`` with no user id:
those are not matched.

:class:`CanvasCollectorPlugin` is the same rule as an nbgrader ``FileNameCollectorPlugin``, for
``nbgrader zip_collect --collector=course_tools.canvas.CanvasCollectorPlugin``.
"""

import os
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from course_tools.roster import ROSTER_COPY, RosterEntry
from course_tools.roster import read_roster as read_roster_file

# Canvas user id as ``student_id`` (nbgrader's group name), the file name after the file id as
# ``file_id``. The name part is lazy so a name holding "_" still leaves both numbers.
LMS_ID_REGEXP = r"^\w*?_(?:LATE_)?(?P<student_id>\d+)_\d+_(?P<file_id>.+)$"
ROSTER = ROSTER_COPY  # the validated roster the roster import keeps


def read_roster(path: Path) -> list[RosterEntry]:
    """The roster kept at ``path`` by ``course_tools.roster``; empty if there is none."""
    return read_roster_file(Path(path)) if Path(path).exists() else []


def students_by_lms_id(path: Path) -> dict[str, str]:
    """``{lms_user_id: student_id}`` from the roster at ``path`` (empty without one)."""
    return {e.lms_user_id: e.student_id for e in read_roster(path) if e.lms_user_id}


class CanvasCollectorPlugin(FileNameCollectorPlugin):
    """nbgrader's file name collector for Canvas downloads, keyed by the Canvas user id.

    The collected student id is the roster's ``student_id`` for that user id, or the user id itself
    when the course has no roster. A file of a user id the roster lacks is skipped (and logged).
    """

    named_regexp = Unicode(LMS_ID_REGEXP, help="Canvas download file names").tag(config=True)
    roster = Unicode("", help="roster CSV (default: <course root>/build/roster.csv)").tag(
        config=True
    )

    def _students(self) -> dict[str, str]:
        if not hasattr(self, "_by_lms_id"):
            coursedir = getattr(self.parent, "coursedir", None)
            root = Path(coursedir.root) if coursedir else Path.cwd()
            self._by_lms_id = students_by_lms_id(
                Path(self.roster) if self.roster else root / ROSTER
            )
        return self._by_lms_id

    def collect(self, submitted_file: str) -> dict | None:
        """``{student_id, file_id, lms_user_id}`` for a Canvas file name, else None (skipped)."""
        if os.path.splitext(submitted_file)[1] not in self.valid_ext:
            return None
        found = self._match(os.path.basename(submitted_file))
        if not found:
            return None
        lms_id = found["student_id"]
        students = self._students()
        if students and lms_id not in students:
            self.log.warning("Canvas user id %s is not in the roster: %s", lms_id, submitted_file)
            return None
        return {**found, "lms_user_id": lms_id, "student_id": students.get(lms_id, lms_id)}
