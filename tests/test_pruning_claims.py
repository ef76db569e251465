"""Notebook 1's prose states these measured outcomes: each is checked on the ``summary`` of the
papermill run that ``test_pipeline.py`` makes anyway, and each test quotes the sentence it backs.
Every other measured outcome in its prose, and everything about time, is asked as a question or
printed from the measurement. Margins hold on any CPU: the teacher and the data are shipped, the
random head orders come from seeded generators, the fine-tuning gaps (about 20 points) are checked
with 5-point margins, and every claim also held with the notebook's ``SEED`` set to 1 and 2."""

import pytest

from course_tools.course import Notebook
from course_tools.headless import read_summary

pytestmark = [pytest.mark.notebooks, pytest.mark.xdist_group("papermill-01_pruning")]

NOTEBOOK = Notebook("01_pruning", "head_pruning")


@pytest.fixture(scope="module")
def pruning(executed_notebook) -> dict:
    return read_summary(executed_notebook(NOTEBOOK))


def test_original_mask_keeps_half_the_q_block_and_no_k_or_v_row(pruning):
    # "that is half of the Q block and nothing of the K and V blocks" (width 256, keep 4 of 8 heads)
    assert pruning["original_mask_q_rows_kept"] == 128
    assert pruning["original_mask_kv_rows_kept"] == 0


def test_original_mask_makes_the_attention_output_one_zero_vector(pruning):
    # "the layer's output is the same vector for every token of every input (...) that vector is
    # even zero"
    assert pruning["original_mask_output_spread"] < 1e-6
    assert pruning["original_mask_output_max_abs"] < 1e-6


def test_one_batch_importance_is_shrunk_by_cancelling_signs(pruning):
    # "opposite signs from different images cancel" (the figure: "one batch (signs cancel)")
    assert pruning["importance_one_batch_total"] < 0.8 * pruning["importance_minibatch_total"]


def test_importance_order_keeps_teacher_accuracy_up_to_half_the_heads(pruning):
    # "keeps the accuracy close to the teacher's until half of the heads are off"
    gap = pruning["teacher_acc"] - pruning["sens_up_to_half_off_importance_min_acc"]
    assert gap < 0.1, f"accuracy fell {gap:.1%} below the teacher's with up to half the heads off"


def test_most_important_first_ruins_accuracy_far_sooner(pruning):
    # "removing the most important heads first ruins it far sooner"
    assert pruning["sens_half_off_reverse_acc"] < 0.3
    assert pruning["sens_area_reverse"] < pruning["sens_area_random_mean"] - 0.1


def test_random_orders_land_between_the_two_importance_orders(pruning):
    # "random orders land in between"
    assert (
        pruning["sens_half_off_reverse_acc"] + 0.05
        < pruning["sens_half_off_random_mean_acc"]
        < pruning["sens_half_off_importance_acc"] - 0.05
    )
    assert (
        pruning["sens_area_reverse"] + 0.05
        < pruning["sens_area_random_mean"]
        < pruning["sens_area_importance"] - 0.05
    )


def test_random_orders_spread_widely_between_seeds(pruning):
    # "with a wide spread between seeds"
    spread = pruning["sens_half_off_random_max_acc"] - pruning["sens_half_off_random_min_acc"]
    assert spread > 0.2, f"random orders with half the heads off spread over only {spread:.1%}"


def test_one_batch_scores_cost_accuracy(pruning):
    # "The dashed curve (one-batch scores) lies below the solid one, with half of the heads off and
    # on average over the figure: that is the price of letting per-image gradients cancel."
    assert pruning["sens_half_off_one_batch_acc"] < pruning["sens_half_off_importance_acc"] - 0.05
    assert pruning["sens_area_one_batch"] < pruning["sens_area_importance"] - 0.03


def test_pruned_models_compute_what_the_masked_teacher_computes(pruning):
    # "The masked teacher has the same outputs as the 50% pruned model (checked above)."
    assert pruning["masked_vs_pruned_max_diff"] < 1e-4


@pytest.mark.parametrize("percent", [25, 50, 75])
def test_pruned_model_shrinks_less_than_the_fraction_of_heads_removed(pruning, percent):
    # "The pruned models shrink, but less than the fraction of heads removed"
    for what in ("params", "bytes"):
        ratio = pruning[f"{what}_ratio_{percent}"]
        assert 1 - percent / 100 < ratio < 1, f"{what} ratio {ratio:.3f} at {percent}% removed"


def test_half_the_heads_halve_the_multiply_adds(pruning):
    # "Removing half the heads should therefore halve the work, an expected ratio near 2x."
    assert pruning["attn_layer_mac_ratio"] == pytest.approx(2.0)


def test_pruning_more_heads_loses_more_accuracy(pruning):
    # "Removing 75% of the heads loses more accuracy than removing 50%"
    assert pruning["pruned75_acc"] < pruning["pruned50_acc"] - 0.05


def test_fine_tuning_recovers_accuracy(pruning):
    # "Part 5. Fine-tuning recovers accuracy"
    assert pruning["finetuned75_acc"] > pruning["pruned75_acc"] + 0.05


def test_fine_tuning_wins_back_more_after_pruning_more(pruning):
    # "... and fine-tuning wins back more of it."
    gain75 = pruning["finetuned75_acc"] - pruning["pruned75_acc"]
    gain50 = pruning["finetuned50_acc"] - pruning["pruned50_acc"]
    assert gain75 > gain50 + 0.05, f"fine-tuning gained {gain75:.1%} at 75%, {gain50:.1%} at 50%"


def test_magnitude_pruned_teacher_keeps_every_parameter_and_byte(pruning):
    # "The magnitude-pruned teacher keeps every parameter and every byte (measured: its parameter
    # count and serialized size are those of the teacher)"
    assert pruning["magnitude50_params_ratio"] == 1.0
    assert pruning["magnitude50_bytes_ratio"] == pytest.approx(1.0, abs=0.01)


def test_magnitude_pruning_zeroes_more_weights_than_half_the_heads_for_more_accuracy(pruning):
    # "magnitude pruning compares: many more weights can go for the same accuracy" (the curves of
    # Part 6: half of the Linear weights zeroed against half of the heads, a quarter of them)
    assert pruning["heads_half_weight_fraction"] < 0.3
    assert pruning["magnitude50_acc"] > pruning["heads_half_acc"] + 0.01


def test_half_the_heads_are_half_the_weights_of_the_big_layer(pruning):
    # "with half of its weights zeroed by `magnitude_prune`, and with half of its heads removed by
    # `prune_heads` (which also removes half of its weights)"
    assert pruning["big_sparse_zero_fraction"] == pytest.approx(0.5, abs=1e-6)
    assert pruning["big_half_weight_ratio"] == pytest.approx(0.5)
