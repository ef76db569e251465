"""Benchmark every notebook against a notebook that only imports torch, measured in the same run.

``python -m course_tools.bench_notebooks`` (or ``make bench``); a measurement, not a test. Machines
differ by about 2x in speed, so every figure is also reported as a ratio to the baseline notebook
(one cell, ``import torch``, run by papermill exactly like the course's notebooks). Budgets, as
ratios that hold on any machine: each notebook headless at most ``BUDGET`` times the baseline, and
one student's autograde of every assignment in ``solutions/`` at most ``BUDGET`` times too.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from course_tools.course import Notebook, course_config, nbgrader_api, notebooks, submit
from course_tools.headless import run_headless
from course_tools.release import generate

BUDGET = 8.0  # headless per notebook, and one student's autograde of all assignments
BASELINE_NAME = "baseline (import torch)"


def write_baseline(folder: Path) -> Path:
    """A notebook whose only cell imports torch: the cost of a kernel, papermill and torch."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    path = folder / "baseline.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def run_baseline(path: Path, out_dir: Path) -> None:
    """Execute the baseline notebook as ``run_headless`` executes a course notebook."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(path),
        str(out_dir / path.name),
        cwd=str(out_dir),
        kernel_name="python3",
        progress_bar=False,
        log_output=False,
    )


def timed(call) -> float:
    """Wall seconds of ``call()``."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_headless(
    nbs: list[Notebook], baseline: Path, out_dir: Path, repeats: int
) -> dict[str, list[float]]:
    """Wall seconds of ``repeats`` papermill runs of the baseline and of each solution notebook.

    The runs are interleaved (baseline, then every notebook, ``repeats`` times), so a change of
    machine load during the benchmark affects the baseline and the notebooks alike.
    """
    times: dict[str, list[float]] = {BASELINE_NAME: []}
    for round_ in range(1, repeats + 1):
        times[BASELINE_NAME].append(timed(lambda: run_baseline(baseline, out_dir)))
        print(f"round {round_}: baseline {times[BASELINE_NAME][-1]:.1f} s", flush=True)
        for nb in nbs:
            name = f"{nb.assignment}/{nb.name}"
            seconds = timed(lambda nb=nb: run_headless(nb, out_dir=out_dir, progress=False))
            times.setdefault(name, []).append(seconds)
            print(f"round {round_}: {name} {seconds:.1f} s", flush=True)
    return times


def time_autograde(assignment: str, nbs: list[Notebook], root: Path) -> float:
    """Wall seconds nbgrader takes to autograde one student's submission of ``assignment``."""
    for nb in nbs:
        submit(root, nb, "bench", nb.source_notebook())
    config = course_config(root, release_directory=str(root / "release"))
    api = nbgrader_api(config)
    start = time.perf_counter()
    result = api.autograde(assignment, "bench")
    elapsed = time.perf_counter() - start
    if not result["success"]:
        raise RuntimeError(f"autograde of {assignment} failed:\n{result.get('error')}")
    return elapsed


def verdict(ratio: float) -> str:
    """``ok`` within the budget, else ``OVER BUDGET``."""
    return "ok" if ratio <= BUDGET else "OVER BUDGET"


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` and the core count (``?`` where unknown)."""
    name = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def main() -> None:
    """Print every notebook's headless time and one student's autograde, as seconds and ratios.

    Autograde ratios are to the median of every baseline run (one also runs before each autograde).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    nbs = notebooks()
    by_assignment: dict[str, list[Notebook]] = {}
    for nb in nbs:
        by_assignment.setdefault(nb.assignment, []).append(nb)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(release_dir=root / "release", root=root)
        baseline = write_baseline(root / "baseline")
        headless = time_headless(nbs, baseline, root / "executed", args.repeats)
        grades = {}
        for assignment, members in by_assignment.items():
            headless[BASELINE_NAME].append(timed(lambda: run_baseline(baseline, root / "executed")))
            grades[assignment] = time_autograde(assignment, members, root)
            print(f"autograde {assignment}: {grades[assignment]:.1f} s", flush=True)
    base = statistics.median(headless[BASELINE_NAME])
    # Each notebook's ratio: the median over rounds of its time over that round's baseline, so a
    # load that changes between rounds cancels out.
    ratios = {
        name: statistics.median(
            t / b for t, b in zip(runs, headless[BASELINE_NAME][: len(runs)], strict=True)
        )
        for name, runs in headless.items()
        if name != BASELINE_NAME
    } | {BASELINE_NAME: 1.0}
    print(f"\nmachine: {platform.processor() or platform.machine()}, {cpu_name()}")
    print(f"budget: each notebook headless and one student's autograde <= {BUDGET:g}x baseline\n")
    print(f"{'notebook':<40} {'headless median (s)':>20} {'runs (s)':>22} {'ratio':>7}")
    for name, runs in headless.items():
        median = statistics.median(runs)
        shown = ", ".join(f"{r:.1f}" for r in runs)
        flag = "" if name == BASELINE_NAME else verdict(ratios[name])
        print(f"{name:<40} {median:>20.1f} {shown:>22} {ratios[name]:>6.1f}x {flag}")
    print(
        f"(baseline runs: {len(headless[BASELINE_NAME])}, one before each round and each autograde)"
    )
    print(f"\n{'assignment':<40} {'autograde (s)':>20} {'ratio':>30}")
    for assignment, seconds in grades.items():
        print(f"{assignment:<40} {seconds:>20.1f} {seconds / base:>29.1f}x")
    total = sum(grades.values())
    print(
        f"{'one student, all assignments':<40} {total:>20.1f} {total / base:>29.1f}x "
        f"{verdict(total / base)}"
    )


if __name__ == "__main__":
    main()
