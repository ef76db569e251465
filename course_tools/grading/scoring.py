"""Score test cells from the grader's verdicts, not from their outputs.

nbgrader's ``SaveAutoGrades`` scores a test cell from its outputs (``utils.determine_grade``): an
error or any stderr output gives 0, the first ``execute_result`` is read as partial credit. Both can
be shaped by the student's code in the kernel (``sys.displayhook``, a warning). ``ScoreFromVerdicts``
takes its place: a test cell gets its full points exactly when the execute preprocessor observed
its code (visible and hidden parts) run to the end, and 0 otherwise. Written answers are scored as
nbgrader does (left for a person).

The scores of a notebook are committed together, once: a grading worker killed halfway through a
notebook leaves the gradebook as it was, never with some cells scored and others not.
"""

from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import SaveAutoGrades

from course_tools.grading.cells import grade_id, is_test_cell, points

PASSED = "mcl_passed"  # resources key set by the execute preprocessors: grade_id -> passed


class HeldCommits:
    """A database session whose ``commit`` only flushes: nbgrader commits after every cell."""

    def __init__(self, session):
        self._session = session

    def commit(self) -> None:
        """Send the changes so far to the database, inside the still open transaction."""
        self._session.flush()

    def __getattr__(self, name):
        return getattr(self._session, name)


class ScoreFromVerdicts(SaveAutoGrades):
    """``SaveAutoGrades`` with test cells scored from ``resources["mcl_passed"]``, in one commit."""

    def preprocess(self, nb, resources):
        """As nbgrader's, but every cell's score and comment are committed together at the end."""
        info = resources["nbgrader"]
        self.notebook_id, self.assignment_id = info["notebook"], info["assignment"]
        self.student_id, self.db_url = info["student"], info["db_url"]
        self.gradebook = Gradebook(self.db_url)
        with self.gradebook:
            session = self.gradebook.db
            self.gradebook.db = HeldCommits(session)
            try:
                nb, resources = super(SaveAutoGrades, self).preprocess(nb, resources)
            finally:
                self.gradebook.db = session
            session.commit()
        return nb, resources

    def _add_score(self, cell, resources) -> None:
        """As nbgrader's, but the auto score of a test cell is its points times its verdict."""
        grade = self.gradebook.find_grade(
            grade_id(cell), self.notebook_id, self.assignment_id, self.student_id
        )
        if is_test_cell(cell):
            maximum = points(cell)
            passed = resources.get(PASSED, {}).get(grade_id(cell), False)
            grade.auto_score = maximum if passed else 0.0
        else:
            grade.auto_score, _ = utils.determine_grade(cell, self.log)
        # nbgrader's rule: a manual score or no auto score means a person must look
        grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        self.gradebook.db.commit()
