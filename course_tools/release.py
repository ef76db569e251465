"""Build ``notebooks/`` (the student release) and the gradebook from ``solutions/``.

``python -m course_tools.release`` regenerates the release; ``--check`` only reports whether the
committed release is out of date (exit 1 if it is).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from course_tools.course import (
    RELEASE,
    REPO,
    assignments,
    build_source,
    course_config,
    nbgrader_api,
)
from course_tools.due_dates import DUE_DATES, DueDateError, apply_due_dates, read_due_dates


def generate(release_dir: Path = RELEASE, root: Path = REPO) -> list[str]:
    """Run nbgrader ``generate_assignment`` for every assignment into ``release_dir``."""
    build_source()
    config = course_config(root, release_directory=str(release_dir))
    api = nbgrader_api(config)
    names = assignments()
    for i, assignment in enumerate(names, 1):
        print(f"[{i}/{len(names)}] generate_assignment {assignment}", flush=True)
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(
                f"generate_assignment {assignment} failed:\n{result.get('error', '')}"
            )
    due = read_due_dates()
    if unknown := sorted(set(due) - set(names)):
        raise DueDateError(f"{DUE_DATES.name} names no such assignment: {', '.join(unknown)}")
    directory = config.CourseDirectory
    apply_due_dates(directory.db_url, directory.course_id, due)
    return names


def _normalised(path: Path) -> dict:
    """A release notebook's JSON, for comparison."""
    return json.loads(path.read_text())


def stale_files(release_dir: Path = RELEASE) -> list[str]:
    """Release files that differ from a fresh build (missing, extra or changed), as relative paths."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "release"
        generate(fresh, root=Path(tmp))
        want = {p.relative_to(fresh) for p in fresh.rglob("*.ipynb")}
        have = {p.relative_to(release_dir) for p in release_dir.rglob("*.ipynb")}
        problems = [f"missing: {p}" for p in sorted(want - have)]
        problems += [f"not built from solutions/: {p}" for p in sorted(have - want)]
        problems += [
            f"out of date: {p}"
            for p in sorted(want & have)
            if _normalised(fresh / p) != _normalised(release_dir / p)
        ]
    return problems


def main() -> None:
    """Regenerate the release, or check it with ``--check``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report an out-of-date release")
    args = parser.parse_args()
    if args.check:
        problems = stale_files()
        for line in problems:
            print(line)
        if problems:
            sys.exit("notebooks/ is out of date: run `make release` and commit the result.")
        print("notebooks/ is up to date.")
        return
    names = generate()
    print(f"released {len(names)} assignment(s) into {RELEASE.relative_to(REPO)}/")


if __name__ == "__main__":
    main()
