"""Score test cells from the grader's verdicts, not from their outputs.

nbgrader's ``SaveAutoGrades`` scores a test cell from its outputs (``utils.determine_grade``): an
error or any stderr output gives 0, the first ``execute_result`` is read as partial credit. Both can
be shaped by the student's code in the kernel (``sys.displayhook``, a warning). ``ScoreFromVerdicts``
takes its place: a test cell gets its full points exactly when the execute preprocessor observed
its code (visible and hidden parts) run to the end, and 0 otherwise. Written answers are scored as
nbgrader does (left for a person).
"""

from nbgrader import utils
from nbgrader.preprocessors import SaveAutoGrades

from course_tools.grading.cells import grade_id, is_test_cell, points

PASSED = "mcl_passed"  # resources key set by the execute preprocessors: grade_id -> passed


class ScoreFromVerdicts(SaveAutoGrades):
    """``SaveAutoGrades`` with test cells scored from ``resources["mcl_passed"]``."""

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
