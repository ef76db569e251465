"""A class on JupyterHub, end to end in a real browser (README "Running a class on JupyterHub").

As root, the test makes three local users (an instructor and two students), an environment every
user can run, nbgrader's exchange in a temporary folder and a hub written by ``course_tools.hub``,
then drives headless Chromium through the class: the instructor generates and releases the
assignment in Formgrader; each student logs in, fetches it from the Assignment List, solves it
(one fully, one partly), validates and submits it there; the instructor collects in Formgrader,
grades with the course's grade command (sandboxed, as the instructor), grades the written answer
in Formgrader, and generates and releases feedback there; each student fetches the feedback and
opens it. The class runs once (75 s to 2 minutes here); each test checks one outcome of that run.
"""

import csv
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from filelock import FileLock

from course_tools.course import BUILD, REPO, Notebook
from course_tools.grading.cells import is_test_cell, split_hidden
from course_tools.hub import ClassHub, install
from course_tools.sample_class import filled, solution_answers
from tests.browser_support import (
    Steps,
    free_port,
    launch_chromium,
    require_chromium,
    require_playwright,
)
from tests.class_fixture import test_points as cell_points
from tests.hub_support import (
    LocalUser,
    RunningHub,
    create_user,
    delete_user,
    make_user_environment,
    require_hub,
    start_hub,
)

pytestmark = [pytest.mark.hub, pytest.mark.xdist_group("hub")]

# The quickest assignment to validate and grade (each takes about 7 s here).
NB = Notebook("01_pruning", "head_pruning")
WRITTEN = "masking_vs_pruning_answer"  # the hand-graded answer (2 points)
# The partial student solves the first two exercises and writes a weaker answer.
PARTIAL = ("structured_pruning_answer", "head_importance_answer")
PARTIAL_TESTS = ("structured_pruning_", "head_importance_")  # the test cells those two answers pass
PARTIAL_WRITTEN = "Masking only zeroes the outputs of a head; the weights stay."
MANUAL = {"full": 2.0, "partial": 1.0}  # what the instructor gives the written answer
# Exact totals: every test cell and the written answer, or the test cells of the first two
# exercises and the written answer; the points are read from the solution's cells.
AUTOGRADED = {
    "full": sum(cell_points(NB).values()),
    "partial": sum(p for cell, p in cell_points(NB).items() if cell.startswith(PARTIAL_TESTS)),
}
EXPECTED = {kind: AUTOGRADED[kind] + MANUAL[kind] for kind in MANUAL}
MAX_SCORE = AUTOGRADED["full"] + 2.0  # the written answer is worth 2
COURSE_FOLDER = "model-compression-lab"
SCREENSHOTS = BUILD / "screenshots" / "hub"  # written when the class fails
LAB_TIMEOUT_MS = 120_000
ACTION_TIMEOUT_MS = 180_000  # a Validate or a Formgrader action on the shared 2-core machine


@dataclass
class ClassRun:
    """What the test saw while the class ran."""

    students: dict[str, str]  # kind ("full", "partial") -> user name
    menus: dict[str, list[str]]  # user name -> items of the Nbgrader menu
    validate: dict[str, tuple[str, str]]  # kind -> (class of the result, its text)
    grade_output: str
    grade_returncode: int
    sheet: dict[str, dict[str, str]]  # user name -> row of the grade sheet after manual grading
    feedback_text: dict[str, str]  # kind -> the feedback page as the student's browser showed it
    leftover_processes: dict[str, str]  # user name -> processes left after the hub stopped
    users_left: list[str]
    steps: dict[str, float] = field(default_factory=dict)


# --- Setting up the machine ---------------------------------------------------------------------


def _test_settings(prefix: Path) -> None:
    """Settings of the test environment only: kernels over local sockets, no JupyterLab news.

    A TCP port picked free can be taken by another process before a kernel binds it.
    """
    etc = prefix / "etc" / "jupyter"
    ipc = '{"KernelManager": {"transport": "ipc"}}\n'
    (etc / "nbgrader_config.json").write_text(ipc)
    (etc / "jupyter_server_config.json").write_text(
        '{"KernelManager": {"transport": "ipc"},'
        ' "LabApp": {"news_url": null, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}\n'
    )
    overrides = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(
        '{"@jupyterlab/apputils-extension:notification":'
        ' {"fetchNews": "false", "checkForUpdates": false}}\n'
    )


def _instructor_course(instructor: LocalUser, python: Path) -> Path:
    """The instructor's checkout of the course (the repo without build outputs), with its source."""
    course = instructor.home / COURSE_FOLDER
    shutil.copytree(
        REPO,
        course,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "__pycache__", "*.egg-info", ".*_cache"
        ),
    )
    instructor.chown(course)
    done = instructor.run(
        [python, "-c", "from course_tools.course import build_source; build_source()"], cwd=course
    )
    assert done.returncode == 0, done.stderr
    return course


# --- Driving the browser ------------------------------------------------------------------------


def _login(browser: Any, hub: RunningHub, user: LocalUser) -> Any:
    """A page of ``user`` logged in through the hub's form, with JupyterLab loaded."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    page.goto(hub.url + "hub/login")
    page.fill("#username_input", user.name)
    page.fill("#password_input", user.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{user.name}/lab"), timeout=LAB_TIMEOUT_MS)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(
        timeout=LAB_TIMEOUT_MS
    )
    return page


def _nbgrader_menu(page: Any) -> list[str]:
    """The items of JupyterLab's Nbgrader menu (the menu is closed again)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    menu = page.locator(".lm-Menu").last
    menu.wait_for()
    items = [t.strip() for t in menu.locator(".lm-Menu-itemLabel").all_inner_texts()]
    page.keyboard.press("Escape")
    return items


def _open_assignment_list(page: Any) -> Any:
    """Nbgrader > Assignment List; returns the panel once its lists loaded."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    page.locator(".lm-Menu").last.locator(
        ".lm-Menu-itemLabel", has_text=re.compile("^Assignment List$")
    ).click()
    panel = page.locator("#nbgrader-assignment-list")
    panel.locator("#released_assignments_list_loading").wait_for(state="hidden")
    return panel


def _assignment_row(panel: Any, section: str) -> Any:
    """The row of the assignment in ``released``, ``fetched`` or ``submitted`` assignments."""
    row = panel.locator(f"#{section}_assignments_list > .list_item", has_text=NB.assignment)
    row.first.wait_for(timeout=ACTION_TIMEOUT_MS)
    return row.first


def _validate(page: Any, panel: Any) -> tuple[str, str]:
    """Expand the fetched assignment and click Validate for its notebook; the dialog's verdict."""
    row = _assignment_row(panel, "fetched")
    row.locator(".assignment-notebooks-link").click()
    notebook = row.locator(".list_item", has_text=NB.name)
    notebook.locator("button", has_text="Validate").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=ACTION_TIMEOUT_MS)
    message = dialog.locator("#validation-message")
    verdict = (message.get_attribute("class") or "", message.inner_text())
    dialog.locator(".jp-mod-accept").click()
    dialog.wait_for(state="detached")
    return verdict


def _formgrader_action(page: Any, column: str, expected: str) -> None:
    """Click the assignment's link in Formgrader's ``column`` and expect a success message."""
    row = page.locator("#main-table tr", has_text=NB.assignment)
    row.locator(f"td.{column} a").click()
    modal = page.locator(".modal.in, .modal.show").last
    modal.wait_for(timeout=ACTION_TIMEOUT_MS)
    text = modal.inner_text()
    assert expected in text, f"Formgrader {column}: {text}"
    modal.locator(".modal-footer button").click()
    modal.wait_for(state="detached")


def _manage_assignments(page: Any, hub: RunningHub, user: LocalUser) -> None:
    """Open Formgrader's Manage Assignments page with its table loaded."""
    page.goto(f"{hub.url}user/{user.name}/formgrader/manage_assignments")
    page.locator("#main-table tr", has_text=NB.assignment).wait_for()


def _grade_written_answer(page: Any, hub: RunningHub, user: LocalUser, student: str, score: float):
    """In Formgrader, open ``student``'s notebook and give the written answer ``score`` points."""
    page.goto(f"{hub.url}user/{user.name}/formgrader/gradebook/{NB.assignment}/{NB.name}")
    # The table links each submission under the student's name (shown on request) and a number.
    link = page.locator("tbody tr a.name-shown", has_text=re.compile(f"^{student}$"))
    page.goto(urllib.parse.urljoin(page.url, link.get_attribute("href")))
    field = page.locator(f"input.score#{WRITTEN}")
    field.wait_for()
    with page.expect_response(
        lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT"
    ) as saved:
        field.fill(str(score))
        field.press("Tab")  # leaving the field saves it
    assert saved.value.ok, saved.value.status


def _feedback_text(page: Any, panel: Any) -> str:
    """Fetch feedback in the Assignment List, follow its link and open the HTML; its text."""
    row = _assignment_row(panel, "submitted")
    row.locator("button", has_text="Fetch Feedback").click()
    link = _assignment_row(panel, "submitted").locator("a", has_text="view feedback")
    link.wait_for(timeout=ACTION_TIMEOUT_MS)
    link.click()  # the file browser goes to the feedback folder
    entry = page.locator(".jp-DirListing-item", has_text=f"{NB.name}.html")
    entry.dblclick()
    frame = page.frame_locator(".jp-HTMLViewer iframe")
    body = frame.locator("body")
    body.wait_for()
    return body.inner_text()


# --- The class ----------------------------------------------------------------------------------


def _hidden_asserts() -> list[str]:
    """Assert lines of the notebook's hidden tests (none may reach a student)."""
    return [
        line.strip()
        for cell in NB.read().cells
        if is_test_cell(cell)
        for line in split_hidden(cell.source)[1].splitlines()
        if line.strip().startswith("assert ")
    ]


def _solve(user: LocalUser, kind: str) -> None:
    """Write ``kind``'s answers into the notebook the student fetched (their own file)."""
    path = user.home / NB.assignment / f"{NB.name}.ipynb"
    answers = solution_answers(NB)
    if kind == "partial":
        answers = {k: answers[k] for k in PARTIAL} | {WRITTEN: PARTIAL_WRITTEN}
    nbformat.write(filled(nbformat.read(path, as_version=4), answers), path)
    user.chown(path)


def _run_class(browser: Any, hub: RunningHub, users: dict[str, LocalUser], python: Path, course):
    """Drive the whole class; returns what each step showed."""
    steps = Steps()
    menus, validate, feedback, pages = {}, {}, {}, {}
    try:
        return _class_steps(
            browser, hub, users, python, course, steps, menus, validate, feedback, pages
        )
    except Exception as exc:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for kind, page in pages.items():
            page.screenshot(path=str(SCREENSHOTS / f"{kind}.png"))
        exc.add_note(f"after steps {steps.seconds}; screenshots of each page in {SCREENSHOTS}/")
        raise


def _class_steps(browser, hub, users, python, course, steps, menus, validate, feedback, pages):
    """The steps of :func:`_run_class`."""
    instructor = users["instructor"]

    teacher = pages["instructor"] = _login(browser, hub, instructor)
    menus[instructor.name] = _nbgrader_menu(teacher)
    steps.lap("instructor login")
    _manage_assignments(teacher, hub, instructor)
    _formgrader_action(teacher, "assign", "Successfully created the student version")
    _formgrader_action(teacher, "release", "Successfully released")
    steps.lap("generate and release in Formgrader")

    for kind in ("full", "partial"):
        student = users[kind]
        page = pages[kind] = _login(browser, hub, student)
        menus[student.name] = _nbgrader_menu(page)
        panel = _open_assignment_list(page)
        _assignment_row(panel, "released").locator("button", has_text="fetch").click()
        _assignment_row(panel, "fetched")
        _solve(student, kind)
        validate[kind] = _validate(page, panel)
        _assignment_row(panel, "fetched").locator("button", has_text="Submit").click()
        _assignment_row(panel, "submitted")
        steps.lap(f"{kind} student: login, fetch, validate, submit")

    _manage_assignments(teacher, hub, instructor)
    _formgrader_action(teacher, "collect", "Successfully collected")
    steps.lap("collect in Formgrader")
    graded = instructor.run([python, "-m", "course_tools.grade", NB.assignment], cwd=course)
    steps.lap("grade command")
    for kind in ("full", "partial"):
        _grade_written_answer(teacher, hub, instructor, users[kind].name, MANUAL[kind])
    sheet_run = instructor.run(
        [python, "-m", "course_tools.grade", NB.assignment, "--sheet-only"], cwd=course
    )
    assert sheet_run.returncode == 0, sheet_run.stdout + sheet_run.stderr
    with (course / "build" / "grades" / f"{NB.assignment}.csv").open() as f:
        sheet = {row["student_id"]: row for row in csv.DictReader(f)}
    steps.lap("manual grades in Formgrader, sheet")
    _manage_assignments(teacher, hub, instructor)
    _formgrader_action(teacher, "generate-feedback", "Successfully generated feedback")
    _formgrader_action(teacher, "release-feedback", "Successfully released feedback")
    steps.lap("generate and release feedback in Formgrader")

    for kind in ("full", "partial"):
        page = pages[kind]
        panel = _open_assignment_list(page)
        feedback[kind] = _feedback_text(page, panel)
    steps.lap("students fetch and open feedback")
    return ClassRun(
        {kind: users[kind].name for kind in ("full", "partial")},
        menus,
        validate,
        graded.stdout + graded.stderr,
        graded.returncode,
        sheet,
        feedback,
        {},
        [],
        steps.seconds,
    )


@pytest.fixture(scope="module")
def class_run(request, tmp_path_factory, worker_id) -> ClassRun:
    """The class, run once per test session by whichever xdist worker comes first.

    One hub at a time: two at once on two cores would only make both slow. The other worker
    reads what the first one saw.
    """
    base = tmp_path_factory.getbasetemp()
    result = (base.parent if worker_id != "master" else base) / "hub-class.json"
    with FileLock(str(result) + ".lock"):
        if not result.exists():
            result.write_text(json.dumps(asdict(_run_class_once(request))))
    data = json.loads(result.read_text())
    data["validate"] = {kind: tuple(pair) for kind, pair in data["validate"].items()}
    return ClassRun(**data)


def _run_class_once(request) -> ClassRun:
    """Set up the machine, run the class, take everything down; what the class showed."""
    require_hub()
    require_chromium()
    sync_playwright = require_playwright()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="mcl-hub-"))  # not under pytest's root-only temp folder
    tmp.chmod(0o755)
    tag = secrets.token_hex(2)  # fresh names: another run may be using the machine
    names = {kind: f"mcl{tag}{kind[:4]}" for kind in ("instructor", "full", "partial")}
    users: dict[str, LocalUser] = {}
    hub = None
    run = None
    try:
        python = make_user_environment(tmp / "env")
        _test_settings(tmp / "env")
        for kind, name in names.items():
            users[kind] = create_user(name)
        course = _instructor_course(users["instructor"], python)
        settings = ClassHub(
            instructor=names["instructor"],
            students=(names["full"], names["partial"]),
            course_dir=str(course),
            exchange=str(tmp / "exchange"),
            state_dir=str(tmp / "state"),
            ip="127.0.0.1",
            port=free_port(),
            hub_port=free_port(),
            proxy_api_port=free_port(),
            prefix=str(tmp / "env"),
        )
        config = install(settings)
        hub = start_hub(python, config, settings.port, tmp / "hub.log")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    run = _run_class(browser, hub, users, python, course)
                finally:
                    browser.close()
        except Exception as exc:
            exc.add_note(f"End of the JupyterHub log (all of it in {SCREENSHOTS}/hub.log):")
            exc.add_note(hub.log_tail())
            raise
    finally:
        if hub is not None:
            hub.stop()
            if run is None:  # the whole log, for the failure
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(hub.log_path, SCREENSHOTS / "hub.log")
        leftover = {}
        for name in users.values():
            found = subprocess.run(
                ["pgrep", "-a", "-u", name.name], capture_output=True, text=True
            ).stdout.strip()
            if found:
                leftover[name.name] = found
        for name in names.values():
            delete_user(name)
        users_left = [n for n in names.values() if _user_exists(n)]
        shutil.rmtree(tmp, ignore_errors=True)
    run.leftover_processes = leftover
    run.users_left = users_left
    run.steps["total"] = round(time.monotonic() - started, 1)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nJupyterHub test: seconds per step {run.steps}")
    return run


def _user_exists(name: str) -> bool:
    """True if a local account ``name`` exists."""
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# --- Tests --------------------------------------------------------------------------------------


def test_only_the_instructor_sees_formgrader(class_run: ClassRun) -> None:
    """The instructor's Nbgrader menu has Formgrader; the students' has the Assignment List only."""
    for name, items in class_run.menus.items():
        is_instructor = name not in class_run.students.values()
        assert ("Formgrader" in items) == is_instructor, f"{name}: {items}"
        assert "Assignment List" in items, f"{name}: {items}"


def test_validate_in_the_assignment_list_passes_the_full_solution(class_run: ClassRun) -> None:
    """Validate in the Assignment List passes the fully solved notebook."""
    verdict, text = class_run.validate["full"]
    assert "validation-success" in verdict, text


def test_validate_in_the_assignment_list_fails_the_partial_solution(class_run: ClassRun) -> None:
    """Validate in the Assignment List fails the partly solved notebook with the stub's error."""
    verdict, text = class_run.validate["partial"]
    assert "validation-failed" in verdict, text
    assert "NotImplementedError" in text, text


def test_grade_command_grades_both_collected_submissions(class_run: ClassRun) -> None:
    """The course's grade command, run by the instructor, grades both submissions in the sandbox."""
    output = class_run.grade_output
    assert class_run.grade_returncode == 0, output
    assert "UNSANDBOXED" not in output, output
    for kind, name in class_run.students.items():
        line = next((ln for ln in output.splitlines() if name in ln), "")
        assert "graded" in line, f"{kind}: {line!r}\n{output}"


def test_sheet_has_exact_scores_with_the_formgrader_grade(class_run: ClassRun) -> None:
    """The sheet's totals are the autograded points plus the written answer graded in Formgrader."""
    for kind, name in class_run.students.items():
        row = class_run.sheet[name]
        assert row["status"] == "graded", row
        assert float(row["total"]) == EXPECTED[kind], row
        assert float(row["max_total"]) == MAX_SCORE, row
        assert float(row["total"]) - MANUAL[kind] == AUTOGRADED[kind], row


def test_sheet_has_each_exchange_submission_time(class_run: ClassRun) -> None:
    """The exchange's submission time (its timestamp.txt) reaches each submitter's sheet row."""
    for kind, name in class_run.students.items():
        stamp = class_run.sheet[name]["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", stamp), f"{kind}: {stamp!r}"


def test_each_student_sees_their_score_in_the_feedback(class_run: ClassRun) -> None:
    """The feedback each student fetched and opened shows their exact score out of the maximum."""
    for kind, text in class_run.feedback_text.items():
        match = re.search(r"Score:\s*([\d.]+)\s*/\s*([\d.]+)", text)
        assert match, f"{kind}: no score in the feedback:\n{text[:2000]}"
        assert (float(match[1]), float(match[2])) == (EXPECTED[kind], MAX_SCORE), match[0]


def test_feedback_shows_no_hidden_test(class_run: ClassRun) -> None:
    """No hidden test's assert line and no hidden-test marker reaches either student's feedback."""
    hidden = _hidden_asserts()
    assert hidden, "found no hidden asserts to look for"
    for kind, text in class_run.feedback_text.items():
        assert "HIDDEN TESTS" not in text, kind
        shown = [line for line in hidden if line in text]
        assert not shown, f"{kind} sees hidden tests: {shown}"


def test_no_user_process_or_account_is_left(class_run: ClassRun) -> None:
    """After the hub stops, no process of the test's users runs and their accounts are gone."""
    assert not class_run.leftover_processes, class_run.leftover_processes
    assert not class_run.users_left, class_run.users_left
