"""The student's path in a real browser: JupyterLab from .venv, driven in headless Debian Chromium.

One JupyterLab server and one browser serve every test; each notebook is opened once as released
(locks, stub, Validate refuses) and once solved (Run All, figures, progress bars, Validate passes).
Screenshots go to ``build/screenshots/``. Run only these tests with ``pytest -m browser``.
"""

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from course_tools.course import BUILD, REPO, Notebook, build_source, notebooks
from course_tools.grading.cells import is_answer_cell, is_test_cell
from tests.browser_support import (
    JupyterLab,
    NotebookPage,
    Outcome,
    Steps,
    copy_into,
    error_outputs,
    launch_chromium,
    require_chromium,
    require_playwright,
    solved_notebook,
    start_jupyterlab,
    traceback_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

SCREENSHOTS = BUILD / "screenshots"
RUN_TIMEOUT = 150.0  # seconds for Run All of one notebook (each is meant to take under 30 s)
VALIDATE_TIMEOUT = 240.0  # Validate re-runs the whole notebook in a new kernel
# A cell using more CPU time than this many times the first code cell's (which imports torch)
# must show a progress bar: a ratio, so that it means the same on a fast and a slow CPU.
LONG_CELL_IMPORT_RATIO = 2.0
MIN_SHOWN_FRACTION = 0.75  # a figure must not be shrunk below this fraction of its pixel width
LOCK_PROBE = "qwtup"  # typed into locked cells; none of these keys is a command-mode shortcut
STUB = "raise NotImplementedError()"
NOTEBOOKS = notebooks()


def _id(nb: Notebook) -> str:
    """Test id: ``assignment/name``."""
    return f"{nb.assignment}/{nb.name}"


def _uses_lab_utils(nb: Notebook) -> bool:
    """True if the notebook's code imports the course's ``lab_utils`` package."""
    cells = nb.read().cells
    return any(re.search(r"\blab_utils\b", c.source) for c in cells if c.cell_type == "code")


def _release(nb: Notebook) -> Path:
    """The committed release notebook of ``nb`` (a clear failure if it was never released)."""
    path = nb.release_notebook()
    assert path.exists(), f"{path.relative_to(REPO)} is missing: run `make release`."
    return path


@dataclass
class Session:
    """The shared JupyterLab server, browser and student workspace, plus per-notebook results."""

    lab: JupyterLab
    browser: Any
    workspace: Path
    source: Path  # nbgrader source notebooks built from solutions/ for this run
    results: dict[tuple[str, str], Any] = field(default_factory=dict)
    page: Any = None  # the browser page in use, if any

    def once(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for; the cached result (or error) after."""
        if key not in self.results:
            try:
                self.results[key] = compute()
            except Exception as exc:  # reported by every test that needs this result
                exc.add_note(f"End of the JupyterLab log:\n{self.lab.log_tail(25)}")
                self.results[key] = exc
        result = self.results[key]
        if isinstance(result, Exception):
            raise result
        return result

    @contextmanager
    def notebook(self, relative: str) -> Iterator[NotebookPage]:
        """``relative`` open in JupyterLab; its tab is closed and its kernel shut down after."""
        # One page serves every notebook (File > Open from Path) to save loading JupyterLab each
        # time; after a failure the page is thrown away and the next notebook gets a new one.
        notebook = None
        if self.page is not None:
            try:
                notebook = NotebookPage(self.page, self.lab, relative, fresh=False)
            except Exception:
                self.page.close()
                self.page = None
        if notebook is None:
            self.page = self.browser.new_page(viewport={"width": 1280, "height": 900})
            self.page.set_default_timeout(30_000)
            notebook = NotebookPage(self.page, self.lab, relative, fresh=True)
        try:
            yield notebook
            notebook.close_tab()
        except BaseException:
            self.page.close()
            self.page = None
            raise
        finally:
            self.lab.shutdown_kernels()


@pytest.fixture(scope="module")
def session(tmp_path_factory, request) -> Iterator[Session]:
    """Start one JupyterLab on a student workspace and one headless Chromium for the module."""
    require_chromium()
    sync_playwright = require_playwright()

    shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # only this run's notebooks
    tmp = tmp_path_factory.mktemp("browser")
    workspace = tmp / "workspace"
    # Like `make lab`: nbgrader's Validate reads nbgrader_config.py from the server's folder.
    workspace.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", workspace / "nbgrader_config.py")
    lab = start_jupyterlab(workspace, tmp / "jupyter")
    shared = None
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                shared = Session(lab, browser, workspace, tmp / "source")
                yield shared
            finally:
                browser.close()
    finally:
        lab.stop()
        lines = []
        for (kind, name), result in getattr(shared, "results", {}).items():
            lines.append(
                f"browser tests: {kind} {name}: seconds {getattr(result, 'steps', result)}"
            )
            if isinstance(result, SolvedRun):
                slowest = sorted(result.cell_seconds.items(), key=lambda kv: -kv[1][0])[:4]
                lines.append(
                    "  slowest cells (CPU s / wall s, progress bar): "
                    + ", ".join(
                        f"{i}: {cpu:.1f}/{wall:.1f}{' bar' if i in result.progress_cells else ''}"
                        for i, (cpu, wall) in slowest
                    )
                )
        if SCREENSHOTS.exists():
            lines.append(f"browser tests: screenshots of each notebook in {SCREENSHOTS}/")
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\n" + "\n".join(lines))


# --- The release, as a student first opens it ---------------------------------------------------


@dataclass
class ReleaseRun:
    """What the test saw in the untouched release notebook."""

    locked_cells: list[int]
    edited: list[int]  # locked cells whose text an edit attempt changed
    deleted: list[int]  # locked cells that a delete attempt removed or changed
    answer_editable: bool  # control: the same typing does change an answer cell
    stub: int
    errors_before_stub: list[str]
    stub_errors: list[dict]
    validate: Outcome
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step


def _release_run(session: Session, nb: Notebook) -> ReleaseRun:
    """Open the release, try to edit and delete locked cells, run to the first stub, Validate."""
    relative = f"release/{_id(nb)}.ipynb"
    copy_into(session.workspace, relative, _release(nb))
    steps = Steps()
    with session.notebook(relative) as notebook:
        steps.lap("open")
        cells = [nbformat.from_dict(c) for c in notebook.model()["cells"]]
        stubs = [
            i for i, c in enumerate(cells) if is_answer_cell(c) and STUB in "".join(c["source"])
        ]
        assert stubs, "the release has no `raise NotImplementedError()` stub"
        stub = stubs[0]
        # nbgrader locks every cell but the answers (LockCells.lock_all_cells): the rest must be
        # read-only in the UI, whatever the release's metadata says.
        locked = [i for i, c in enumerate(cells) if not is_answer_cell(c)]
        edited, deleted = _try_to_change(notebook, cells, locked)
        answer_editable = _answer_takes_typing(notebook, stub)
        steps.lap("locks")
        # Everything above the stub from the Run menu, then the stub and its test cell.
        notebook.select(stub)
        notebook.menu("Run", "Run All Above Selected Cell")
        above = [i for i in range(stub) if cells[i]["cell_type"] == "code"]
        if above:
            notebook.wait_finished(above[-1], RUN_TIMEOUT)
        errors_before = [
            f"cell {i}: {traceback_text(out)}"
            for i, out in error_outputs(notebook.model())
            if i < stub
        ]
        tests = [i for i in range(stub + 1, len(cells)) if is_test_cell(cells[i])]
        notebook.select(stub)
        for _ in range(stub, (tests[0] if tests else stub) + 1):
            notebook.run_selected(RUN_TIMEOUT)
            if error_outputs(notebook.model()):
                break
        stub_errors = [
            {"cell": i, **out} for i, out in error_outputs(notebook.model()) if i >= stub
        ]
        # What the student sees at the first failing test cell (the window, not the notebook).
        notebook.screenshot(SCREENSHOTS / nb.assignment / f"{nb.name}-release.png", full=False)
        steps.lap("run to stub")
        validate = notebook.validate(VALIDATE_TIMEOUT)
        steps.lap("validate")
    return ReleaseRun(
        locked,
        edited,
        deleted,
        answer_editable,
        stub,
        errors_before,
        stub_errors,
        validate,
        steps.seconds,
    )


def _try_to_change(
    notebook: NotebookPage, cells: list[nbformat.NotebookNode], locked: list[int]
) -> tuple[list[int], list[int]]:
    """Type into, then delete, some locked cells; returns ``(edited, deleted)`` as seen after."""
    edited, deleted = [], []
    for i in _probes(cells, locked):
        before = notebook.source(i)
        notebook.try_to_type(i, LOCK_PROBE)
        if notebook.source(i) != before or LOCK_PROBE in notebook.cells.nth(i).inner_text():
            edited.append(i)
        if cells[i]["cell_type"] == "markdown":
            notebook.select(i)
            notebook.page.keyboard.press("Control+Enter")  # render it again
        count, before = notebook.count(), notebook.source(i)
        notebook.try_to_delete(i)
        if notebook.count() != count or notebook.source(i) != before:
            deleted.append(i)
    return edited, deleted


def _answer_takes_typing(notebook: NotebookPage, answer: int) -> bool:
    """Control for the lock probe: typing does change an answer cell (the text is removed again)."""
    notebook.cells.nth(answer).locator(".jp-InputArea .cm-content").click()
    notebook.page.keyboard.press("Control+End")
    notebook.page.keyboard.type(LOCK_PROBE)
    typed = LOCK_PROBE in notebook.source(answer)
    for _ in LOCK_PROBE:
        notebook.page.keyboard.press("Backspace")
    notebook.page.keyboard.press("Escape")
    return typed


def _probes(cells: list[nbformat.NotebookNode], locked: list[int]) -> list[int]:
    """Locked cells to try to change: every test cell, the first read-only markdown and code cell."""
    tests = {i for i in locked if is_test_cell(cells[i])}
    firsts = {
        next((i for i in locked if cells[i]["cell_type"] == kind), None)
        for kind in ("markdown", "code")
    }
    return sorted((tests | firsts) - {None})


@pytest.fixture
def release(session: Session, nb: Notebook) -> ReleaseRun:
    """The release run of ``nb`` (done once, shared by the release tests)."""
    return session.once(("release", _id(nb)), lambda: _release_run(session, nb))


@pytest.fixture(params=NOTEBOOKS, ids=_id)
def nb(request) -> Notebook:
    """Each notebook present in ``solutions/``."""
    return request.param


# --- The solved notebook ------------------------------------------------------------------------


@dataclass
class SolvedRun:
    """What the test saw when a solved copy ran in JupyterLab."""

    seconds: float
    model: dict
    figures: list[dict]
    cell_seconds: dict[int, tuple[float, float]]  # cell index -> (CPU, wall) seconds in the kernel
    images: list[dict]
    progress_cells: set[int]
    screenshot: Path
    validate: Outcome
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step


def _solved_run(session: Session, nb: Notebook) -> SolvedRun:
    """Open the solved copy, Run All from the Run menu, look at the outputs, then Validate."""
    if not session.source.exists():
        build_source(session.source)
    relative = f"solved/{_id(nb)}.ipynb"
    solved = solved_notebook(_release(nb), nb.source_notebook(session.source))
    copy_into(session.workspace, relative, solved)
    steps = Steps()
    with session.notebook(relative) as notebook:
        steps.lap("open")
        cells = notebook.model()["cells"]
        code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
        notebook.start_watching()
        steps.lap("watch")
        notebook.menu("Run", "Run All Cells")
        notebook.wait_finished(code[-1], RUN_TIMEOUT)
        steps.lap("run all")
        model = notebook.model()
        report = notebook.kernel_report()
        index = {cell.get("id"): i for i, cell in enumerate(model["cells"])}
        timing = {index[k]: tuple(v) for k, v in report["cells"].items() if k in index}
        images = notebook.rendered_images()
        progress = notebook.progress_cells()
        shot = notebook.screenshot(SCREENSHOTS / nb.assignment / f"{nb.name}.png")
        steps.lap("inspect")
        validate = notebook.validate(VALIDATE_TIMEOUT)
        steps.lap("validate")
    return SolvedRun(
        steps.seconds["run all"],
        model,
        report["figures"],
        timing,
        images,
        progress,
        shot,
        validate,
        steps.seconds,
    )


@pytest.fixture
def solved(session: Session, nb: Notebook) -> SolvedRun:
    """The solved run of ``nb`` (done once, shared by the solved-notebook tests)."""
    return session.once(("solved", _id(nb)), lambda: _solved_run(session, nb))


# --- Tests: the release -------------------------------------------------------------------------


def test_release_locked_cells_refuse_edits(release: ReleaseRun) -> None:
    """Typing into read-only cells (test cells among them) changes nothing."""
    assert release.locked_cells, "the release has only answer cells"
    assert release.answer_editable, "typing into an answer cell did not change it: probe broken"
    assert not release.edited, f"typing changed locked cells {release.edited}"


def test_release_locked_cells_refuse_deletion(release: ReleaseRun) -> None:
    """D D and X on read-only cells leave them in place."""
    assert not release.deleted, f"D D / X removed or changed locked cells {release.deleted}"


def test_release_runs_up_to_the_first_stub(release: ReleaseRun) -> None:
    """Run All Above the first stub succeeds."""
    assert not release.errors_before_stub, "\n".join(release.errors_before_stub)


def test_release_stub_raises_plain_not_implemented_error(release: ReleaseRun) -> None:
    """The first stub, run with its test cell, raises a bare NotImplementedError from its own line."""
    assert release.stub_errors, "running the first stub and its test cell raised nothing"
    first = release.stub_errors[0]
    assert (first["ename"], first["evalue"]) == ("NotImplementedError", ""), traceback_text(first)
    assert STUB in traceback_text(first), "the error did not come from the stub's own line"


def test_release_validate_reports_failure(release: ReleaseRun) -> None:
    """Validate refuses the untouched release and names the stub's error."""
    assert not release.validate.success, (
        f"Validate passed the untouched release:\n{release.validate.text}"
    )
    assert "NotImplementedError" in release.validate.text, release.validate.text


# --- Tests: the solved notebook -----------------------------------------------------------------


def test_solved_run_all_has_no_error_output(solved: SolvedRun) -> None:
    """Run All on the solved copy runs every code cell with no error output."""
    errors = error_outputs(solved.model)
    assert not errors, "\n\n".join(f"cell {i}:\n{traceback_text(out)}" for i, out in errors)
    unrun = [
        i
        for i, c in enumerate(solved.model["cells"])
        if c["cell_type"] == "code" and not c.get("execution_count")
    ]
    assert not unrun, f"cells {unrun} did not run"


def test_solved_figures_render_as_images(solved: SolvedRun) -> None:
    """Every rendered figure shows as a loaded image, none as a bare ``<Figure ...>`` text."""
    bare = [
        "".join(out["data"].get("text/plain", ""))
        for cell in solved.model["cells"]
        for out in cell.get("outputs", [])
        if "data" in out
        and "image/png" not in out["data"]
        and "".join(out["data"].get("text/plain", "")).startswith("<Figure size")
    ]
    assert not bare, f"figures shown as text instead of images: {bare}"
    broken = [img for img in solved.images if not img["natural"]]
    assert not broken, f"{len(broken)} output image(s) did not load"
    assert len(solved.images) >= len(solved.figures), (
        f"{len(solved.figures)} figures were rendered but only {len(solved.images)} images shown"
    )


def test_solved_figures_are_readable(solved: SolvedRun) -> None:
    """Every figure has a title, every axis with a scale a label, and fits the notebook width."""
    problems = []
    for n, fig in enumerate(solved.figures, 1):
        axes = [ax for ax in fig["axes"] if not ax["colorbar"]]
        if not fig["suptitle"] and not all(ax["title"] for ax in axes):
            problems.append(f"figure {n}: no title (suptitle or one per axes)")
        for k, ax in enumerate(axes, 1):
            for axis in ("x", "y"):
                shown = ax["axis_on"] and ax[f"{axis}ticks_shown"]  # the axis shows a scale
                if shown and not (ax[f"{axis}label"] or _words(ax[f"{axis}ticks"])):
                    problems.append(f"figure {n}, axes {k} ({ax['title']!r}): no {axis} label")
    for img in solved.images:
        if img["natural"] and img["shown"] < MIN_SHOWN_FRACTION * img["natural"]:
            problems.append(
                f"a {img['natural']} px wide figure is shrunk to {img['shown']:.0f} px: too wide "
                "for the notebook"
            )
    assert not problems, "\n".join(problems)


def _words(ticks: list[str]) -> bool:
    """True if tick labels name categories (they contain letters), which then label the axis."""
    return any(re.search(r"[A-Za-z]", t) for t in ticks)


def test_solved_long_cells_show_a_progress_bar(solved: SolvedRun) -> None:
    """Cells costing over twice the CPU time of importing torch show a progress bar (tqdm renders
    as a widget bar): about five CPU seconds here."""
    # CPU seconds, not wall seconds: what a cell costs hardly changes when the machine is busy; and
    # measured against the import cell, so that a slower CPU moves both alike. The import cell
    # itself is exempt: no progress bar can show an import.
    cells = solved.model["cells"]
    imports = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    limit = LONG_CELL_IMPORT_RATIO * solved.cell_seconds[imports][0]
    long = {i: cpu for i, (cpu, _) in solved.cell_seconds.items() if cpu > limit and i != imports}
    silent = {i: f"{s:.1f} CPU s" for i, s in long.items() if i not in solved.progress_cells}
    assert not silent, (
        f"cells over {limit:.1f} CPU s (2x the imports) without a progress bar: {silent}"
    )
    uses_tqdm = any(
        "tqdm(" in "".join(c["source"]) for c in solved.model["cells"] if c["cell_type"] == "code"
    )
    assert solved.progress_cells or not uses_tqdm, "tqdm is used but no progress bar was shown"


def test_solved_validate_reports_success(solved: SolvedRun) -> None:
    """nbgrader's Validate button passes the solved copy."""
    assert solved.validate.success, solved.validate.text


def test_solved_screenshot_written(solved: SolvedRun) -> None:
    """A full-length screenshot of the solved notebook after Run All exists."""
    assert solved.screenshot.stat().st_size > 10_000, f"{solved.screenshot} looks empty"


# --- Tests: how a student starts ----------------------------------------------------------------


def test_first_cell_tells_how_to_start(nb: Notebook) -> None:
    """The first cell says how to start: environment or kernel, lab_utils, run time."""
    if not _uses_lab_utils(nb):
        pytest.skip(f"{_id(nb)} does not use lab_utils")
    first = nbformat.read(_release(nb), as_version=4).cells[0]
    assert first.cell_type == "markdown", "the first cell should be the introduction"
    text = first.source
    missing = [
        what
        for what, pattern in {
            "where lab_utils comes from": r"lab_utils",
            "which environment or kernel to use": r"make (lab|setup)|\.venv|environment|conda|kernel",
            "how long the notebook takes": r"\d+\s*(s|sec|seconds?|min|minutes?)\b|minute|second",
        }.items()
        if not re.search(pattern, text, re.IGNORECASE)
    ]
    assert not missing, f"the first cell does not say {missing}:\n{text}"


BLOCKED_IMPORT = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
sys.modules["lab_utils"] = None  # as if the course package were not installed in this kernel
shell = InteractiveShell.instance()
errors = {}
for name, source in json.load(sys.stdin).items():
    shell.reset(new_session=False)
    result = shell.run_cell(source, silent=True)
    error = result.error_before_exec or result.error_in_exec
    errors[name] = None if error is None else [type(error).__name__, str(error)]
print(json.dumps(errors))
"""


@pytest.fixture(scope="module")
def without_lab_utils(tmp_path_factory) -> dict[str, list[str] | None]:
    """Each notebook's first code cell run where ``lab_utils`` cannot be imported: its error."""
    sources = {}
    for nb in NOTEBOOKS:
        if nb.release_notebook().exists() and _uses_lab_utils(nb):  # else its test fails
            cells = nbformat.read(nb.release_notebook(), as_version=4).cells
            sources[_id(nb)] = next(c.source for c in cells if c.cell_type == "code")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("no_lab_utils"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_first_code_cell_explains_missing_lab_utils(
    nb: Notebook, without_lab_utils: dict[str, list[str] | None]
) -> None:
    """Without lab_utils the first code cell stops with a message that says how to fix it."""
    if not _uses_lab_utils(nb):
        pytest.skip(f"{_id(nb)} does not use lab_utils")
    _release(nb)
    error = without_lab_utils[_id(nb)]
    assert error is not None, "the first code cell ran without lab_utils: it should stop there"
    name, message = error
    assert "lab_utils" in message, f"{name}: {message}"
    assert "halted; None in sys.modules" not in message and message != (
        "No module named 'lab_utils'"
    ), f"Python's own message, not the notebook's: {message}"
    assert re.search(r"pip install|make (lab|setup)|conda|activate|kernel", message), (
        f"the message does not say how to fix it: {message}"
    )
