"""The student bundle (``python -m course_tools.bundle``): installs without the repo, runs, leaks nothing.

The bundle is unpacked in a temporary folder and its wheel installed with ``pip --no-deps
--no-index`` into a fresh venv. The heavy dependencies (torch, Jupyter) come from this test's own
environment through a plain ``.pth`` path line, which makes those packages importable without
running the ``.pth`` files there (so the repo's editable install stays off): the repo itself is
never importable in the student venv, and every command there runs outside the repo with no
``PYTHONPATH``.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest

from course_tools.bundle import NAME, STUDENT_REQUIREMENTS, build_bundle
from course_tools.course import RELEASE, REPO, assignments
from course_tools.grading.cells import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    SOLUTION_MARKERS,
    is_code_answer,
    is_test_cell,
)
from tests.release_layout import leaked
from tests.test_release_layout import IDS, NOTEBOOKS, _answers, _provided_to

pytestmark = pytest.mark.xdist_group("bundle")  # one worker builds the bundle and its venv once
KERNEL = "mcl-student-bundle"
# The module a package is imported as, where it differs from its name on PyPI.
IMPORT_NAMES = {"scikit-learn": "sklearn", "ipykernel": "IPython"}


# Every assignment past due: the default bundle then ships every release, the capstone included.
ALL_DUE = {a: datetime(2026, 1, 1, tzinfo=UTC) for a in assignments()}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The unpacked bundle of every released assignment: ``<tmp>/unpacked/<NAME>/``."""
    out = tmp_path_factory.mktemp("bundle")
    archive = build_bundle(out, due=ALL_DUE)
    print(f"student bundle: {archive.stat().st_size} bytes")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(out / "unpacked")
    return out / "unpacked" / NAME


def _wheel(bundle: Path) -> Path:
    (wheel,) = bundle.glob("*.whl")
    return wheel


def _files(bundle: Path) -> dict[str, bytes]:
    """Every file of the bundle and of its wheel: ``{path in the bundle: bytes}``."""
    files = {
        p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()
    }
    with zipfile.ZipFile(_wheel(bundle)) as zf:
        for member in zf.namelist():
            files[f"{_wheel(bundle).name}!/{member}"] = zf.read(member)
    return files


def _texts(bundle: Path) -> dict[str, str]:
    """The files of :func:`_files` that are text (every one but the checkpoint and the wheel)."""
    texts = {}
    for name, data in _files(bundle).items():
        try:
            texts[name] = data.decode()
        except UnicodeDecodeError:
            continue
    return texts


@pytest.fixture(scope="module")
def student_venv(bundle, tmp_path_factory) -> dict:
    """A fresh venv with the bundle's wheel installed, and how to run commands in it."""
    work = tmp_path_factory.mktemp("student")
    venv = work / "venv"
    # Without pip: its own old setuptools would shadow the shared one (pip itself comes from there).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {
        "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONNOUSERSITE": "1",
        "JUPYTER_PATH": str(venv / "share" / "jupyter"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), *args], cwd=work, env=env, check=check, capture_output=True, text=True
        )

    purelib = Path(
        run("-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    shared = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "shared-course-environment.pth").write_text("\n".join(sorted(shared)) + "\n")
    # What installing nbgrader puts into the environment: its extensions, all switched on.
    nbgrader_on = Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.d", "nbgrader.json")
    server_config = venv / "etc" / "jupyter" / "jupyter_server_config.d"
    server_config.mkdir(parents=True)
    (server_config / nbgrader_on.name).write_bytes(nbgrader_on.read_bytes())
    run("-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(_wheel(bundle)))
    run("-m", "ipykernel", "install", "--prefix", str(venv), "--name", KERNEL)
    return {"venv": venv, "python": python, "work": work, "run": run}


def test_bundle_holds_the_readme_the_wheel_and_every_released_notebook(bundle):
    released = sorted(p.relative_to(RELEASE).as_posix() for p in RELEASE.glob("*/*.ipynb"))
    names = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert names == sorted(
        ["README.md", _wheel(bundle).name, *(f"notebooks/{n}" for n in released)]
    )
    for name in released:
        assert (bundle / "notebooks" / name).read_bytes() == (RELEASE / name).read_bytes()


def test_wheel_holds_lab_utils_with_the_teacher_and_nothing_else(bundle):
    with zipfile.ZipFile(_wheel(bundle)) as zf:
        members = zf.namelist()
    packages = {m.split("/")[0] for m in members if ".dist-info/" not in m and ".data/" not in m}
    assert packages == {"lab_utils"}
    teacher = REPO / "lab_utils" / "checkpoints" / "teacher.pt"
    assert _files(bundle)[f"{_wheel(bundle).name}!/lab_utils/checkpoints/teacher.pt"] == (
        teacher.read_bytes()
    )
    sources = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "lab_utils").glob("*.py"))
    assert set(sources) <= set(members)


def test_bundle_holds_no_file_of_solutions_tests_or_course_tools(bundle):
    digests = {
        hashlib.sha256(p.read_bytes()).hexdigest(): p.relative_to(REPO).as_posix()
        for folder in ("solutions", "tests", "course_tools")
        for p in (REPO / folder).rglob("*")
        if p.is_file() and p.stat().st_size > 0 and "__pycache__" not in p.parts
    }
    copies = {
        name: digests[digest]
        for name, data in _files(bundle).items()
        if (digest := hashlib.sha256(data).hexdigest()) in digests
    }
    assert not copies, f"repo files in the bundle: {copies}"
    named = [n for n in _files(bundle) if re.search(r"(^|/)(solutions|tests|course_tools)/", n)]
    assert not named, f"instructor paths in the bundle: {named}"


def test_bundle_holds_no_hidden_test_solution_marker_or_instructor_import(bundle):
    markers = (HIDDEN_BEGIN, HIDDEN_END, *SOLUTION_MARKERS, "course_tools")
    found = {
        name: [m for m in markers if m in text]
        for name, text in _texts(bundle).items()
        if any(m in text for m in markers)
    }
    assert not found, f"instructor-only text in the bundle: {found}"


def test_bundle_holds_no_answer_except_those_a_later_notebook_is_given(bundle):
    answers = _answers()
    found = {}
    for name, text in _texts(bundle).items():
        nb = next(
            (n for n in NOTEBOOKS if name == f"notebooks/{n.assignment}/{n.name}.ipynb"), None
        )
        if nb is not None:  # a release: only the earlier answers its notebook asks for (README)
            own, allowed = IDS[NOTEBOOKS.index(nb)], _provided_to(nb)
            text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        else:
            own, allowed = None, set()
        found[name] = {
            other: [a for a in leaked(regions, text) if other == own or a not in allowed]
            for other, regions in answers.items()
        }
    leaks = {name: hits for name, hits in found.items() if any(hits.values())}
    assert not leaks, f"answers readable in the bundle: {leaks}"


def test_assignments_option_ships_only_the_chosen_notebooks(tmp_path):
    archive = build_bundle(tmp_path, ["01_pruning", "02_distillation"])
    with zipfile.ZipFile(archive) as zf:
        notebooks = {n.split("/")[2] for n in zf.namelist() if "/notebooks/" in n}
        readme = zf.read(f"{NAME}/README.md").decode()
    assert notebooks == {"01_pruning", "02_distillation"}
    assert "04_capstone" not in readme


def test_release_holding_answers_not_yet_due_is_left_out_by_default(tmp_path):
    notes = []
    archive = build_bundle(
        tmp_path, due={"01_pruning": ALL_DUE["01_pruning"]}, progress=notes.append
    )
    with zipfile.ZipFile(archive) as zf:
        notebooks = {n.split("/")[2] for n in zf.namelist() if "/notebooks/" in n}
    assert "04_capstone" not in notebooks and "01_pruning" in notebooks
    assert notes == [
        "left out 04_capstone: it holds reference answers of earlier notebooks, and 02_distillation "
        "has no due date (due_dates.csv; --before-due ships it anyway)"
    ]


def test_release_holding_answers_not_yet_due_is_refused_by_name(tmp_path):
    future = {
        "01_pruning": datetime(2999, 1, 1, tzinfo=UTC),
        "02_distillation": ALL_DUE["01_pruning"],
    }
    with pytest.raises(ValueError, match="01_pruning is due 2999-01-01 00:00 UTC"):
        build_bundle(tmp_path, ["04_capstone"], due=future)


def test_unknown_assignment_is_refused(tmp_path):
    with pytest.raises(ValueError, match="05_missing"):
        build_bundle(tmp_path, ["01_pruning", "05_missing"])


def _third_party_imports(source: str) -> set[str]:
    modules = {m.split(".")[0] for m in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.M)}
    return modules - set(sys.stdlib_module_names) - {"lab_utils"}


def test_wheel_requires_every_package_lab_utils_and_the_notebooks_import():
    sources = [p.read_text() for p in (REPO / "lab_utils").glob("*.py")]
    for path in RELEASE.glob("*/*.ipynb"):
        cells = nbformat.read(path, as_version=4).cells
        sources += [c.source for c in cells if c.cell_type == "code"]
    imported = set().union(*map(_third_party_imports, sources))
    names = {re.split(r"[<>=!~]", r)[0] for r in STUDENT_REQUIREMENTS}
    provided = {IMPORT_NAMES.get(n, n) for n in names}
    assert imported <= provided, f"imported but not required: {imported - provided}"


def test_student_venv_imports_lab_utils_from_the_wheel_and_never_the_repo(student_venv):
    probe = (
        "import importlib.util, json, lab_utils\n"
        "teacher = lab_utils.load_teacher()\n"
        "print(json.dumps({'lab_utils': lab_utils.__file__, "
        "'course_tools': importlib.util.find_spec('course_tools') is not None, "
        "'teacher': type(teacher).__name__}))\n"
    )
    seen = json.loads(student_venv["run"]("-c", probe).stdout)
    assert Path(seen["lab_utils"]).is_relative_to(student_venv["venv"])
    assert not seen["course_tools"], "the repo's course_tools is importable in the student venv"
    assert seen["teacher"] == "DigitsTransformer"
    failed = student_venv["run"]("-c", "import course_tools", check=False)
    assert "ModuleNotFoundError" in failed.stderr


def test_student_requirements_accept_the_tested_versions(student_venv):
    check = student_venv["run"]("-m", "pip", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_student_venv_turns_off_the_instructor_extensions_and_sets_validates_timeout(student_venv):
    probe = (
        "import json\n"
        "from jupyter_core.paths import jupyter_config_path\n"
        "from jupyter_server.extension.config import ExtensionConfigManager\n"
        "from jupyterlab_server.config import get_static_page_config\n"
        "from nbgrader.apps import NbGrader\n"
        "server = ExtensionConfigManager(read_config_path=jupyter_config_path())\n"
        "lab = get_static_page_config(level='all')\n"
        "grader = NbGrader(); grader.config_file_paths.append(jupyter_config_path())\n"
        "grader.load_config_file()\n"
        "print(json.dumps({'server': server.get_jpserver_extensions(), "
        "'lab': lab.get('disabledExtensions', {}), 'timeout': grader.config.Execute.timeout}))\n"
    )
    seen = json.loads(student_venv["run"]("-c", probe).stdout.strip().splitlines()[-1])
    assert seen["server"]["nbgrader.server_extensions.validate_assignment"] is True
    assert seen["server"]["nbgrader.server_extensions.formgrader"] is False
    assert seen["lab"].get("@jupyter/nbgrader:formgrader") is True
    assert seen["timeout"] == 120


RUN_TO_FIRST_ERROR = """
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

path, kernel, out = sys.argv[1:4]
nb = nbformat.read(path, as_version=4)
# A probe first: which interpreter and which lab_utils the kernel really uses.
nb.cells.insert(0, new_code_cell("import sys, lab_utils\\nprint(sys.executable)\\nprint(lab_utils.__file__)"))
client = NotebookClient(
    nb, kernel_name=kernel, allow_errors=True, timeout=600,
    resources={"metadata": {"path": str(Path(path).parent)}},
)
with client.setup_kernel():
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        client.execute_cell(cell, index)
        if any(o.output_type == "error" for o in cell.outputs):
            break
nbformat.write(nb, out)
"""


@pytest.mark.notebooks
def test_released_notebook_runs_to_its_first_stub_in_the_student_venv(bundle, student_venv):
    notebook = bundle / "notebooks" / "01_pruning" / "head_pruning.ipynb"
    out = student_venv["work"] / "executed.ipynb"
    student_venv["run"]("-c", RUN_TO_FIRST_ERROR, str(notebook), KERNEL, str(out))
    probe, *cells = nbformat.read(out, as_version=4).cells
    executable, lab_utils_file = probe.outputs[0].text.split()
    assert Path(executable).parent.parent == student_venv["venv"]
    assert Path(lab_utils_file).is_relative_to(student_venv["venv"])
    code = [(i, c) for i, c in enumerate(cells) if c.cell_type == "code"]
    failing = [i for i, c in code if any(o.output_type == "error" for o in c.outputs)]
    assert failing, "the released notebook ran through without reaching a stub"
    first = failing[0]
    for i, cell in code:
        if i < first:
            assert cell.execution_count is not None, f"cell {i} did not run"
    error = next(o for o in cells[first].outputs if o.output_type == "error")
    assert error.ename == "NotImplementedError", f"{error.ename}: {error.evalue}"
    answers = [c for i, c in code if i < first and is_code_answer(c)]
    assert answers and "raise NotImplementedError()" in answers[-1].source
    assert is_test_cell(cells[first]), "the stub should first fail in the test cell below it"
