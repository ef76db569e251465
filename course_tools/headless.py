"""Execute every solution notebook headless with papermill and print its key measured results.

``python -m course_tools.headless`` (or ``make run``) writes executed notebooks to ``build/executed/``.
"""

import argparse
import json
import time
from pathlib import Path

import nbformat

from course_tools.course import BUILD, REPO, Notebook, build_source, notebooks

EXECUTED = BUILD / "executed"


def run_headless(nb: Notebook, out_dir: Path = EXECUTED, progress: bool = True) -> Path:
    """Run one solution notebook with papermill (demos included); returns the executed copy."""
    import papermill

    out = out_dir / nb.assignment / f"{nb.name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(nb.source_notebook()),
        str(out),
        cwd=str(out.parent),
        kernel_name="python3",
        progress_bar=progress,
        log_output=False,
    )
    return out


def read_summary(executed: Path) -> dict:
    """The JSON dict printed by the cell tagged ``summary`` of an executed notebook."""
    notebook = nbformat.read(executed, as_version=4)
    for cell in notebook.cells:
        if "summary" in cell.metadata.get("tags", []):
            text = "".join(
                o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout"
            )
            return json.loads(text.strip().splitlines()[-1])
    raise ValueError(f"{executed} has no cell tagged 'summary'.")


def format_summary(values: dict) -> str:
    """One ``key: value`` line per result, floats to 4 significant digits."""
    return "\n".join(
        f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}"
        for key, value in values.items()
    )


def main() -> None:
    """Execute the selected (default: all) notebooks and print their summaries."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("assignments", nargs="*", help="only these assignments (default: all)")
    args = parser.parse_args()
    build_source()
    selected = [
        nb for nb in notebooks() if not args.assignments or nb.assignment in args.assignments
    ]
    if not selected:
        raise SystemExit(f"No notebook matches {args.assignments}; see solutions/.")
    for i, nb in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {nb.assignment}/{nb.name}", flush=True)
        start = time.perf_counter()
        out = run_headless(nb)
        print(f"  executed in {time.perf_counter() - start:.1f} s -> {out.relative_to(REPO)}")
        print(format_summary(read_summary(out)), flush=True)


if __name__ == "__main__":
    main()
