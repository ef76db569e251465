"""Notebook 4's prose states these measured outcomes: each is checked on the ``summary`` of the
papermill run that ``test_pipeline.py`` makes anyway. Every other measured outcome in its prose is
asked as a question or printed as a sentence computed in the run. Margins hold on any x86 CPU: the
teacher and data are shipped, training is seeded, and no claim is about time."""

import pytest

from course_tools.course import Notebook
from course_tools.headless import read_summary

pytestmark = [pytest.mark.notebooks, pytest.mark.xdist_group("papermill-04_capstone")]

NOTEBOOK = Notebook("04_capstone", "compress_end_to_end")
SCHEMES = ("per_tensor", "per_channel")


@pytest.fixture(scope="module")
def measured(executed_notebook) -> dict:
    return read_summary(executed_notebook(NOTEBOOK))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ptq_at_2_bits_loses_more_than_10_points(measured, scheme):
    # Part 1: "PTQ loses more than 10 points there with either scheme"
    assert measured[f"ptq_acc_{scheme}_2bit"] < measured["teacher_acc"] - 0.10


@pytest.mark.parametrize("scheme", SCHEMES)
def test_qat_at_2_bits_wins_back_more_than_a_third_of_the_ptq_loss(measured, scheme):
    # Part 1: "half an epoch of QAT wins back more than a third of that loss"
    ptq = measured[f"ptq_acc_{scheme}_2bit"]
    loss = measured["teacher_acc"] - ptq
    assert measured[f"qat_acc_{scheme}_2bit_mean"] - ptq > loss / 3


def test_qat_model_served_by_int8_kernels_has_the_size_of_the_int8_teacher(measured):
    # Part 1: "so the QAT model's size and speed are those of INT8" (its bytes, checked here)
    assert measured["qat4_int8_bytes"] == pytest.approx(measured["teacher_int8_bytes"], rel=0.01)
    assert measured["teacher_int8_bytes_ratio"] > 2
