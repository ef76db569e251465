"""Notebook 3's prose states these measured outcomes: each is checked on the ``summary`` of the
papermill run that ``test_pipeline.py`` makes anyway. Every other measured outcome in its prose is
asked as a question. Margins hold on any x86 CPU: the teacher and test data are shipped, the
synthetic tensors come from seeded generators, and no claim is about time."""

import pytest

from course_tools.course import Notebook
from course_tools.headless import read_summary

pytestmark = [pytest.mark.notebooks, pytest.mark.xdist_group("papermill-03_quantization")]

NOTEBOOK = Notebook("03_quantization", "int8_quantization")
GELU_MIN = -0.17  # min of x * Phi(x), at x = -0.75: -0.16997


@pytest.fixture(scope="module")
def measured(executed_notebook) -> dict:
    return read_summary(executed_notebook(NOTEBOOK))


def test_gelu_activations_stay_above_gelu_minimum_with_a_strongly_asymmetric_range(measured):
    # section 3: "never below about -0.17 ... its positive side grows"
    assert GELU_MIN - 1e-3 <= measured["gelu_act_min"] < 0
    assert measured["gelu_act_max"] > 10 * abs(measured["gelu_act_min"])


def test_zero_point_lowers_the_error_most_on_the_asymmetric_gelu_activations(measured):
    # the question under the error table presumes an answer: the GELU input, by a clear margin
    gain = {
        site: measured[f"per_tensor_{site}_err"] / measured[f"affine_{site}_err"]
        for site in ("ln_act", "gelu_act", "head_act")
    }
    assert gain["gelu_act"] > 1.5, gain
    assert gain["gelu_act"] > 1.3 * max(gain["ln_act"], gain["head_act"]), gain


def test_splitting_off_outlier_features_beats_every_clipping_threshold(measured):
    # section 4: "the split lowers the error far more than any clipping threshold"
    assert measured["features_kept_in_float"] == 2  # exactly the 2 planted outlier features
    assert measured["features_mse_split"] * 10 < measured["features_mse_best_percentile"]
    assert measured["features_mse_best_percentile"] <= measured["features_mse_max_scale"]


def test_dynamic_int8_linear_quantizes_activations_to_7_bits(measured):
    # section 7: "the activations get only 7 bits" (reduce_range=True) "on every x86 CPU"
    if measured["quantized_engine"] != "x86":
        pytest.skip(f"the 7-bit story is x86's; this CPU runs {measured['quantized_engine']}")
    assert measured["dynamic_int8_act_bits"] == 7
    assert (
        measured["dynamic_int8_emulation_err_7bit"] * 20
        < measured["dynamic_int8_emulation_err_8bit"]
    )


def test_only_the_toy_ffn_approaches_the_4x_size_saving(measured):
    # section 7: quantize_dynamic skips nn.MultiheadAttention, "so only the FFN can approach 4x"
    assert 3.5 < measured["dynamic_int8_size_ratio_toy_ffn"] < 4
    assert measured["dynamic_int8_size_ratio_toy"] < measured["dynamic_int8_size_ratio_toy_ffn"] - 1
