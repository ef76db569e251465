"""The grading package's parts, one behaviour each, without executing notebooks (fast)."""

import json
import os
import sys

import nbformat
import pytest

from course_tools.course import REPO, notebooks
from course_tools.grading import cgroups
from course_tools.grading.audit import audit_answers, audit_cell, instructor_code
from course_tools.grading.cells import (
    is_code_answer,
    is_read_only,
    is_test_cell,
    metadata_problem,
    released_source,
    solution_lines,
    split_hidden,
    without_solution_markers,
)
from course_tools.grading.checks import read_notebook
from course_tools.grading.discover import SECRET_FILE, readable_timestamp, stage, submission_folders
from course_tools.grading.execute import hidden_outcome, raised_in_student_code
from course_tools.grading.sandbox import SandboxSpec, bwrap_command
from course_tools.grading.status import NOT_GRADED, Status, most_telling
from course_tools.sample_class import filled, solution_answers
from tests.class_fixture import mistakes

PROTECTED = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional"}


def cell(source: str = "x = 1", **nbgrader) -> nbformat.NotebookNode:
    """A code cell with the given nbgrader metadata."""
    made = nbformat.v4.new_code_cell(source)
    if nbgrader:
        made.metadata["nbgrader"] = nbgrader
    return made


# ------------------------------------------------------------------------------------ statuses
def test_problems_outrank_graded_and_flagged_outranks_timeout():
    assert most_telling({Status.OK}) is Status.GRADED
    assert most_telling({Status.TIMEOUT, Status.FLAGGED}) is Status.FLAGGED
    assert most_telling({Status.FLAGGED, Status.EMPTY}) is Status.EMPTY


def test_flagged_is_graded_but_its_total_is_held():
    assert Status.FLAGGED.graded and not Status.FLAGGED.counts
    assert Status.GRADED.counts and Status.TIMEOUT.counts
    assert all(not s.graded for s in NOT_GRADED)


# --------------------------------------------------------------------------------------- cells
@pytest.mark.parametrize(
    ("meta", "fragment"),
    [
        ("grade me", "is a str"),
        ({"grade": True, "grade_id": ["a"], "points": 1}, "grade_id"),
        ({"grade": "yes", "grade_id": "a"}, "nbgrader.grade"),
        ({"grade": True, "grade_id": "a", "points": "2"}, "points"),
    ],
)
def test_metadata_of_the_wrong_type_is_named(meta, fragment):
    bad = cell()
    bad.metadata["nbgrader"] = meta
    assert fragment in metadata_problem(bad)


def test_good_metadata_has_no_problem():
    assert metadata_problem(cell(grade=True, grade_id="t", points=2, locked=True)) is None


def test_hidden_part_is_split_from_the_visible_part():
    source = "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\n"
    assert split_hidden(source) == ("assert f(1) == 2", "assert f(2) == 4")
    assert released_source(source) == "assert f(1) == 2"


ANSWER = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"


def test_solution_lines_are_the_lines_between_the_markers():
    assert solution_lines(ANSWER) == ["    return 2 * x"]


def test_an_answer_without_solution_markers_is_what_a_student_types():
    assert without_solution_markers(ANSWER) == "def f(x):\n    return 2 * x"


def test_a_code_answer_is_neither_a_test_cell_nor_read_only():
    answer = cell(ANSWER, solution=True, grade=False, grade_id="f")
    test = cell("assert f(1) == 2", grade=True, grade_id="f_tests", points=1, locked=True)
    assert is_code_answer(answer) and not is_test_cell(answer) and not is_read_only(answer)
    assert is_test_cell(test) and not is_code_answer(test) and is_read_only(test)


def test_a_cell_lock_all_cells_made_uneditable_is_read_only():
    plain = cell()
    plain.metadata["editable"] = False
    assert is_read_only(plain) and not is_read_only(cell())


# -------------------------------------------------------------------------------------- checks
def write_json(path, value) -> None:
    path.write_text(json.dumps(value))


def notebook_with(tmp_path, meta) -> str:
    nb = nbformat.v4.new_notebook(cells=[cell()])
    nb.cells[0].metadata["nbgrader"] = meta
    path = tmp_path / "n.ipynb"
    path.write_text(nbformat.writes(nb, version=4))
    return path


def test_deeply_nested_json_is_not_a_notebook(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("[" * 50_000 + "]" * 50_000)
    assert read_notebook(path)[1] in (Status.INVALID_JSON, Status.NOT_A_NOTEBOOK)


def test_string_metadata_gets_bad_metadata(tmp_path):
    assert read_notebook(notebook_with(tmp_path, "grade me"))[1] is Status.BAD_METADATA


def test_list_grade_id_gets_bad_metadata(tmp_path):
    path = notebook_with(tmp_path, {"grade": True, "grade_id": ["x"], "points": 1})
    notebook, status, message = read_notebook(path)
    assert status is Status.BAD_METADATA and "grade_id" in message


def test_symlink_is_never_followed(tmp_path):
    secret = tmp_path / "solution.ipynb"
    secret.write_text(nbformat.writes(nbformat.v4.new_notebook()))
    link = tmp_path / "mine.ipynb"
    link.symlink_to(secret)
    assert read_notebook(link)[1] is Status.UNSAFE_FILE


def test_fifo_is_never_opened(tmp_path):
    fifo = tmp_path / "mine.ipynb"
    os.mkfifo(fifo)
    assert read_notebook(fifo)[1] is Status.UNSAFE_FILE


@pytest.mark.parametrize("text", ["", "yesterday", "9" * 50, "2026-13-45 99:99:99"])
def test_unreadable_timestamp_is_left_out(tmp_path, text):
    stamp = tmp_path / "timestamp.txt"
    stamp.write_text(text)
    assert not readable_timestamp(stamp)


def test_readable_timestamp_is_kept(tmp_path):
    stamp = tmp_path / "timestamp.txt"
    stamp.write_text("2026-11-30 12:00:00.000000 UTC")
    assert readable_timestamp(stamp)


def test_symlinked_student_folders_are_listed_not_followed(tmp_path):
    (tmp_path / "alice" / "a1").mkdir(parents=True)
    (tmp_path / "mallory").symlink_to(tmp_path / "alice")
    (tmp_path / "nobody").mkdir()
    found = submission_folders("a1", tmp_path)
    assert list(found) == ["alice", "mallory"] and found["mallory"].parent.is_symlink()


# --------------------------------------------------------------------------------------- audit
@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.displayhook('ok')",
        "get_ipython().ast_transformers.append(object())",
        "torch.allclose = lambda *a, **k: True",
        "import builtins\nbuiltins.isinstance = lambda *a: True",
        "isinstance = lambda *a: True",
        "import numpy as torch",
        "def f():\n    import inspect\n    return inspect.stack()",
        "def f():\n    return In[-1]",
        "exec('x = 1')",
        "x = getattr(__import__('s' + 'ys'), 'display' + 'hook')",
        "!cat /etc/passwd",
        "import gc\ngc.get_referrers(1)",
        "setattr(torch, 'allclose', len)",
        "import sys\nout = sys.stdout\nsession = getattr(out, 'sess' + 'ion')",
        "from tracemalloc import linecache as cache",
        "import sys\nsys.modules['torch'].allclose = len",
        "import sys\nloaded = sys.modules",
    ],
)
def test_answers_that_reach_for_grader_internals_are_flagged(source):
    assert audit_cell(source, PROTECTED)


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nfrom torch import nn\n\ndef f(x):\n    return torch.relu(x)",
        "def f(module, name):\n    return getattr(module, name)",
        "def f(x):\n    max = x.max()\n    return max",
        "import warnings\nwarnings.warn('careful')\nprint('debug')",
        "def f(model):\n    return [m for m in model.modules() if m is not model]",
        "def f(model):\n    return [m for m in model.modules() if isinstance(m, nn.Linear)]",
    ],
)
def test_ordinary_answers_are_not_flagged(source):
    assert audit_cell(source, PROTECTED) == []


@pytest.mark.parametrize("nb", notebooks(), ids=lambda nb: nb.assignment)
def test_solutions_and_listed_wrong_answers_are_never_flagged(built_course, nb):
    release, instructor = released(built_course, nb)
    answers = solution_answers(nb)
    assert audit_answers(filled(release, answers), instructor) == []
    for mistake in mistakes(nb.assignment):
        wrong = {**answers, mistake.answer_id: mistake.source, **mistake.extra}
        assert audit_answers(filled(release, wrong), instructor) == [], mistake.name


def released(built_course, nb) -> tuple[nbformat.NotebookNode, frozenset[str]]:
    """The student release of ``nb`` and its instructor code (test cells as released: grading
    restores their hidden part from the gradebook before the audit)."""
    release = nbformat.read(nb.release_notebook(built_course / "release"), as_version=4)
    return release, instructor_code(release)


def test_cells_the_student_added_are_audited(built_course):
    release, instructor = released(built_course, notebooks()[0])
    release.cells.append(nbformat.v4.new_code_cell("torch.equal = lambda *a: True"))
    assert any("patches torch.equal" in r for r in audit_answers(release, instructor))


def test_an_edited_read_only_cell_is_the_students_code(built_course):
    release, instructor = released(built_course, notebooks()[0])
    first = next(c for c in release.cells if c.cell_type == "code")
    first.source += "\nimport numpy as torch\n"
    assert any("rebinds torch" in r for r in audit_answers(release, instructor))


def test_patching_through_an_alias_is_flagged(built_course):
    release, instructor = released(built_course, notebooks()[0])
    release.cells.append(nbformat.v4.new_code_cell("t = torch\nt.allclose = len"))
    assert any("patches t.allclose" in r for r in audit_answers(release, instructor))


# ----------------------------------------------------------------------------- hidden feedback
def reply(status: str, ename: str = "", evalue: str = "", traceback=()) -> dict:
    content = {"status": status, "ename": ename, "evalue": evalue, "traceback": list(traceback)}
    return {"content": content}


def test_failed_hidden_assertion_shows_the_instructors_message():
    shown = hidden_outcome(reply("error", "AssertionError", "negative inputs", ["Cell In[7]"]), 7)
    assert (shown.ename, shown.evalue) == ("AssertionError", "negative inputs")


def test_exception_from_student_code_shows_only_its_type():
    trace = ["Cell In[7], line 2", "Cell In[3], line 5, in f", "ValueError: secret 42"]
    assert raised_in_student_code(trace, 7)
    shown = hidden_outcome(reply("error", "ValueError", "secret 42", trace), 7)
    assert shown.ename == "ValueError" and "secret" not in shown.evalue


def test_passing_hidden_part_says_so():
    assert "passed" in hidden_outcome(reply("ok"), 3).text


# ------------------------------------------------------------------------------------- sandbox
def test_sandbox_shows_only_the_environment_and_its_own_folder(tmp_path):
    spec = SandboxSpec(readable=(sys.prefix, str(REPO / "lab_utils")), writable=str(tmp_path))
    argv = bwrap_command(spec, ["python"], as_root=True)
    bound = {argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")}
    assert str(REPO) not in bound and str(REPO / "solutions") not in bound
    assert not any(str(REPO / "build") in b for b in bound)
    for flag in ("--unshare-net", "--unshare-pid", "--clearenv", "--die-with-parent"):
        assert flag in argv
    assert argv.index("--tmpfs") < argv.index("--bind")  # /tmp first, the runtime folder on top


def test_stage_keeps_the_exchange_submission_secret(tmp_path) -> None:
    """nbgrader's ``submission_secret.txt`` goes to the workers: release_feedback needs it."""
    folder = tmp_path / "submitted" / "ana" / "01_pruning"
    folder.mkdir(parents=True)
    (folder / SECRET_FILE).write_text("a1b2c3")
    stage("ana", [], "01_pruning", tmp_path / "submitted", tmp_path / "staging")
    assert (tmp_path / "staging" / "ana" / "01_pruning" / SECRET_FILE).read_text() == "a1b2c3"


def test_stage_never_follows_a_linked_submission_secret(tmp_path) -> None:
    """A ``submission_secret.txt`` that is a symbolic link is not staged (nor its target read)."""
    folder = tmp_path / "submitted" / "ana" / "01_pruning"
    folder.mkdir(parents=True)
    (folder / SECRET_FILE).symlink_to(REPO / "nbgrader_config.py")
    stage("ana", [], "01_pruning", tmp_path / "submitted", tmp_path / "staging")
    assert not (tmp_path / "staging" / "ana" / "01_pruning" / SECRET_FILE).exists()


# --- cgroups: the whole tree's limits, or a clear word that there are none --------------------


def test_cgroups_say_why_they_are_unusable_without_root(monkeypatch):
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 1000)
    assert cgroups.unusable_reason() == "cgroups need root"
    assert not cgroups.usable()


def test_cgroups_name_a_v2_host_they_cannot_use(monkeypatch, tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 0)
    reason = cgroups.unusable_reason()
    assert "memory and pids" in reason and "cgroup v2" in reason
