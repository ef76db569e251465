"""The shipped teacher is exactly what ``python -m course_tools.make_teacher`` produces."""

import subprocess
import sys

from lab_utils.teacher import TEACHER_PATH, TEACHER_SHA256, sha256_of


def test_shipped_teacher_matches_its_recorded_hash():
    assert sha256_of(TEACHER_PATH) == TEACHER_SHA256


def test_make_teacher_reproduces_the_shipped_checkpoint(tmp_path):
    out = tmp_path / "teacher.pt"
    subprocess.run(
        [sys.executable, "-m", "course_tools.make_teacher", "--out", str(out), "--quiet"],
        check=True,
        timeout=300,
    )
    assert sha256_of(out) == TEACHER_SHA256, (
        "Retraining gave different bytes: training is no longer deterministic, or the recipe "
        "changed without `make teacher` and an updated TEACHER_SHA256."
    )
