"""Benchmark each notebook: headless run time (median of 3) and autograde time of one submission.

``python -m course_tools.bench_notebooks`` (or ``make bench``); a measurement, not a test.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from course_tools.course import course_config, nbgrader_api, notebooks, submit
from course_tools.headless import run_headless
from course_tools.release import generate


def time_headless(nb, out_dir: Path, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` papermill runs of the solution notebook."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_headless(nb, out_dir=out_dir, progress=False)
        times.append(time.perf_counter() - start)
    return times


def time_autograde(nb, root: Path) -> float:
    """Wall seconds nbgrader takes to autograde the solution submitted by one student."""
    submit(root, nb, "bench", nb.source_notebook())
    config = course_config(root, release_directory=str(root / "release"))
    api = nbgrader_api(config)
    start = time.perf_counter()
    result = api.autograde(nb.assignment, "bench")
    elapsed = time.perf_counter() - start
    if not result["success"]:
        raise RuntimeError(f"autograde of {nb.assignment} failed:\n{result.get('error')}")
    return elapsed


def main() -> None:
    """Print one row per notebook."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(release_dir=root / "release", root=root)
        rows = []
        for nb in notebooks():
            runs = time_headless(nb, root / "executed", args.repeats)
            grade = time_autograde(nb, root)
            rows.append((f"{nb.assignment}/{nb.name}", statistics.median(runs), runs, grade))
            print(
                f"{rows[-1][0]}: headless median {rows[-1][1]:.1f} s, autograde {grade:.1f} s",
                flush=True,
            )
    print(f"\n{'notebook':<40} {'headless median (s)':>20} {'runs (s)':>22} {'autograde (s)':>14}")
    for name, median, runs, grade in rows:
        shown = ", ".join(f"{r:.1f}" for r in runs)
        print(f"{name:<40} {median:>20.1f} {shown:>22} {grade:>14.1f}")
    print(f"{'one student, all notebooks':<40} {'':>20} {'':>22} {sum(r[3] for r in rows):>14.1f}")


if __name__ == "__main__":
    main()
