"""nbgrader configuration for the Model Compression Lab course (read by every nbgrader command)."""

import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from course_tools.grading.feedback import HideHiddenTestOutput

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "model-compression-lab"
c.CourseDirectory.root = ROOT
# solutions/*.py (jupytext) are built into build/source; the release is the committed notebooks/.
c.CourseDirectory.source_directory = "build/source"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "build/submitted"
c.CourseDirectory.autograded_directory = "build/autograded"
c.CourseDirectory.feedback_directory = "build/feedback"
# The gradebook: sqlite on one machine; a PostgreSQL URL in MCL_GRADEBOOK_URL grades on many
# (README "Grading past one machine").
c.CourseDirectory.db_url = (
    os.environ.get("MCL_GRADEBOOK_URL") or f"sqlite:///{ROOT}/build/gradebook.db"
)
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# Torch cells train small models: allow more than nbgrader's 30 s default per cell.
c.Execute.timeout = 120
# A deleted test cell is put back and graded instead of silently becoming "needs manual grade".
c.OverwriteCells.add_missing_cells = True
# Prose and demo cells are read-only in the release; answer cells stay editable.
c.LockCells.lock_all_cells = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Late submissions (due dates: due_dates.csv, applied by `make release`): nbgrader's own
# LateSubmissionPlugin. The course's default is "none": a late submission keeps its score and the
# grade sheet shows how late it was. "zero" gives it 0; a subclass of LateSubmissionPlugin named in
# c.AssignLatePenalties.plugin_class can deduct anything else (README "Roster, due dates, late work").
c.LateSubmissionPlugin.penalty_method = "none"
# Feedback must not reveal hidden tests: neither their source (nbgrader shows it by default) nor a
# traceback quoting them.
c.GenerateFeedback.preprocessors = [
    GetGrades,
    CSSHTMLHeaderPreprocessor,
    HideHiddenTestOutput,
    ClearHiddenTests,
]
