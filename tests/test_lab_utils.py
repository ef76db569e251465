"""Unit tests of the student-facing lab_utils package."""

import time

import pytest
import torch
from torch import nn

import lab_utils
from lab_utils import (
    DigitsTransformer,
    DistilledStudent,
    MultiHeadSelfAttention,
    ToyTransformer,
    accuracy,
    count_parameters,
    digits_loaders,
    digits_splits,
    digits_transfer_pool,
    full_batch,
    load_teacher,
    measure_latency,
    peak_forward_memory,
    serialized_size,
    set_seed,
    train,
)
from lab_utils import teacher as teacher_module


def test_toy_transformer_keeps_shape_and_has_parameters():
    model = ToyTransformer()
    assert isinstance(model.attn, nn.MultiheadAttention) and model.attn.batch_first
    assert (model.hidden_size, model.num_heads, model.head_dim) == (256, 8, 32)
    assert count_parameters(model) > 0  # the original script's @dataclass version fails here
    assert model(torch.randn(2, 16, 256)).shape == (2, 16, 256)
    assert hash(model)  # a dataclass nn.Module is unhashable


def test_toy_transformer_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible"):
        ToyTransformer(hidden_size=10, num_heads=3)


def test_distilled_student_is_tanh_of_linear():
    student = DistilledStudent(8)
    x = torch.randn(2, 3, 8)
    assert torch.allclose(student(x), torch.tanh(student.linear(x)))


def test_attention_matches_nn_multihead_attention():
    set_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    ours = MultiHeadSelfAttention.from_multihead_attention(mha)
    x = torch.randn(3, 7, 32)
    expected, _ = mha(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected, atol=1e-6, rtol=1e-5)


def test_attention_all_ones_mask_is_no_mask_and_zero_mask_leaves_only_bias():
    attn = MultiHeadSelfAttention(16, 4)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(attn(x, head_mask=torch.ones(4)), attn(x))
    out = attn(x, head_mask=torch.zeros(4))
    torch.testing.assert_close(out, attn.out_proj.bias.expand_as(out))


def test_attention_can_hold_an_inner_width_other_than_the_model_width():
    attn = MultiHeadSelfAttention(16, num_heads=3, head_dim=4)
    assert attn.q_proj.weight.shape == (12, 16) and attn.out_proj.weight.shape == (16, 12)
    assert attn(torch.randn(2, 5, 16)).shape == (2, 5, 16)


def test_attention_rejects_bad_shapes_with_a_clear_message():
    attn = MultiHeadSelfAttention(16, 4)
    with pytest.raises(ValueError, match=r"\[B, T, 16\]"):
        attn(torch.randn(5, 16))
    with pytest.raises(ValueError, match="one gate per head"):
        attn(torch.randn(2, 5, 16), head_mask=torch.ones(3))
    with pytest.raises(ValueError, match="pass head_dim"):
        MultiHeadSelfAttention(10, 4)


def test_digits_model_shapes_and_head_masks():
    model = DigitsTransformer()
    images = torch.rand(4, 8, 8)
    assert model(images).shape == (4, 10)
    assert model.heads_per_layer() == [8, 8]
    torch.testing.assert_close(model(images, head_mask=torch.ones(2, 8)), model(images))
    per_layer = [torch.ones(8), torch.zeros(8)]
    assert not torch.allclose(model(images, head_mask=per_layer), model(images))
    with pytest.raises(ValueError, match="one entry per layer"):
        model(images, head_mask=torch.ones(3, 8))
    with pytest.raises(ValueError, match=r"\[B, 8, 8\]"):
        model(torch.rand(4, 7, 7))


def test_digits_splits_are_fixed_disjoint_and_complete():
    splits = digits_splits()
    sizes = {name: len(ds) for name, ds in splits.items()}
    assert sizes == {"train": 1257, "val": 180, "test": 360}
    images, labels = full_batch("test")
    again, _ = digits_splits()["test"].tensors
    assert torch.equal(images, again)
    assert images.shape == (360, 8, 8) and 0.0 <= images.min() and images.max() <= 1.0
    assert set(labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="Unknown split"):
        full_batch("dev")


def test_digits_are_exactly_scikit_learns_load_digits():
    from sklearn.datasets import load_digits

    from lab_utils.data import _digits

    bunch = load_digits()
    images, labels = _digits()
    assert torch.equal(images, torch.tensor(bunch.images, dtype=torch.float32) / 16.0)
    assert torch.equal(labels, torch.tensor(bunch.target, dtype=torch.int64))


def test_transfer_pool_is_new_images_made_from_the_train_split():
    images, labels = digits_transfer_pool(seed=0)
    train_images, train_labels = full_batch("train")
    assert images.shape == train_images.shape and torch.equal(labels, train_labels)
    assert 0.0 <= images.min() and images.max() <= 1.0
    # no pool image equals any training image: the teacher never saw one of them
    assert torch.cdist(images.flatten(1), train_images.flatten(1)).min() > 0
    assert torch.equal(images, digits_transfer_pool(seed=0)[0])
    assert not torch.equal(images, digits_transfer_pool(seed=1)[0])


def test_loaders_shuffle_train_reproducibly():
    first = next(iter(digits_loaders(seed=3)["train"]))[1]
    second = next(iter(digits_loaders(seed=3)["train"]))[1]
    assert torch.equal(first, second)
    assert len(digits_loaders(batch_size=60)["test"]) == 6


def test_teacher_loads_and_reaches_the_promised_accuracy():
    teacher = load_teacher()
    assert not teacher.training
    assert accuracy(teacher, full_batch("test")) >= 0.94
    assert teacher_module.TEACHER_PATH.stat().st_size < 1_000_000


def test_teacher_loader_explains_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="make teacher"):
        load_teacher(tmp_path / "nope.pt")
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt"):
        load_teacher(bad)


def test_train_lowers_the_loss_and_accuracy_counts_correctly():
    set_seed(0)
    model = DigitsTransformer(width=16, num_heads=2, num_layers=1, ffn_width=32)
    losses = train(model, digits_loaders()["train"], epochs=3, progress=False)
    assert len(losses) == 3 and losses[-1] < losses[0]
    images, labels = full_batch("val")
    predicted = model(images).argmax(-1)
    assert accuracy(model, (images, labels)) == (predicted == labels).sum().item() / len(labels)
    with pytest.raises(ValueError, match="no examples"):
        accuracy(model, [])


class _Sleeps(nn.Module):
    """An identity that takes at least ``seconds`` per call, however fast the machine."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def test_size_helpers():
    model = nn.Linear(100, 10)
    assert count_parameters(model) == 1010
    assert 1010 * 4 < serialized_size(model) < 1010 * 4 + 2000


def test_measure_latency_returns_seconds_per_call():
    # Only lower bounds: a loaded machine makes calls slower, never faster than a sleep.
    assert measure_latency(nn.Linear(100, 10), torch.randn(4, 100), min_run_time=0.01) > 0
    assert measure_latency(_Sleeps(0.02), torch.randn(2), min_run_time=0.05) >= 0.02


def test_lab_utils_exports_are_documented():
    for name in lab_utils.__all__:
        assert getattr(lab_utils, name).__doc__, f"{name} needs a docstring"


def test_forward_with_internals_returns_the_logits_of_forward_and_every_internal():
    set_seed(0)
    model = DigitsTransformer(width=16, num_heads=4, num_layers=3, ffn_width=32)
    images = torch.rand(5, 8, 8)
    gates = torch.ones(3, 4)
    gates[1, 2] = 0
    out = model.forward_with_internals(images, head_mask=gates)
    assert torch.equal(out.logits, model(images, head_mask=gates))
    assert [tuple(h.shape) for h in out.hidden_states] == [(5, 17, 16)] * 4
    assert [tuple(a.shape) for a in out.attentions] == [(5, 4, 17, 17)] * 3
    for weights in out.attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones(5, 4, 17))


def test_attention_returns_its_maps_only_when_asked():
    attn = MultiHeadSelfAttention(16, 4)
    x = torch.randn(2, 5, 16)
    out, weights = attn(x, return_attention=True)
    assert torch.equal(out, attn(x)) and tuple(weights.shape) == (2, 4, 5, 5)


def test_peak_forward_memory_counts_the_activations_of_one_call():
    model = load_teacher()
    images = full_batch("test")[0]
    one, many = peak_forward_memory(model, images[:1]), peak_forward_memory(model, images[:64])
    # the attention scores of 64 images alone take 64 * 8 heads * 17 * 17 floats
    assert many >= 64 * 8 * 17 * 17 * 4 and many > 20 * one > 0
