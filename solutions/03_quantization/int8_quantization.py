# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3 · INT8 quantization: 8 bits per number instead of 32
#
# A trained network stores every weight as a 32-bit float, yet it rarely needs that much
# precision. **Quantization** stores numbers as small integers plus a floating-point *scale*:
# 4x smaller at 8 bits, and integer arithmetic that CPUs can run faster. In this notebook you start
# from the original script's `simulate_int8_quantization` and build, one piece at a time, what real
# INT8 inference uses:
#
# 1. symmetric per-tensor quantization (the original script's function),
# 2. one scale per output channel,
# 3. affine quantization with a zero point (Jacob et al., 2018),
# 4. percentile calibration against outliers,
# 5. an integer matrix multiply that accumulates in int32,
#
# and then you measure what they do to the pretrained digits teacher (accuracy and size, down to
# 2 bits) and what PyTorch's real INT8 kernels do to size and speed.
#
# **How to start.** Open this notebook from JupyterLab started with `make lab` in the repository
# root (it creates `.venv` and installs the course package `lab_utils`), and pick the kernel
# "Python 3". Nothing is trained here: the notebook loads the course's pretrained digits teacher.
# The last cell prints the measured results, among them `run_seconds`: how many seconds the whole
# notebook took on your machine.
#
# **Exercises.** Seven functions to write, each in a cell that says `YOUR CODE HERE`; run the test
# cell right below it: it prints what it compared, and an `AssertionError` tells you what to fix.
# More (hidden) tests of the same behaviour run at grading time, so read each docstring carefully.
# One written question is graded by hand.
#
# | exercise | function | points |
# | --- | --- | --- |
# | 1 | `simulate_int8_quantization(tensor)` | 2 |
# | 2a | `quantize_per_channel(weight, axis=0)` | 2 |
# | 2b | `dequantize_per_channel(q, scale, axis=0)` | 1 |
# | 3a | `quantize_affine(x, num_bits=8)` | 2 |
# | 3b | `dequantize_affine(q, scale, zero_point)` | 1 |
# | written | per-channel scales and an exact zero | 2 |
# | 4 | `percentile_scale(x, percentile=99.99)` | 2 |
# | 5 | `int8_linear(x, w_q, w_scale, bias=None)` | 3 |
# | | **total** | **15** |

# %%
import copy
import io
import json
import os
import time
import warnings
from collections.abc import Callable

import torch
from IPython.display import Markdown, display
from torch import nn
from tqdm.auto import tqdm

try:
    import lab_utils
except ImportError as err:
    raise ImportError(
        "lab_utils is not importable: start JupyterLab with `make lab` from the repo root "
        "(it installs the course into .venv) and choose the 'Python 3' kernel."
    ) from err
from lab_utils import (
    ToyTransformer,
    accuracy,
    full_batch,
    load_teacher,
    measure_latency,
    serialized_size,
    set_seed,
    use_course_style,
)

GRADING = "NBGRADER_EXECUTION" in os.environ  # nbgrader sets it: demos below are skipped
if not GRADING:  # only the demos draw, and importing pyplot costs a third of torch's import
    import matplotlib.pyplot as plt
torch.set_num_threads(1)  # tiny models: one thread is enough, and all timings use one thread
use_course_style()
summary: dict[str, float | int | str] = {}
print(f"lab_utils from {os.path.dirname(lab_utils.__file__)}, torch {torch.__version__}")

STARTED = time.perf_counter()  # the summary reports the whole run's seconds

# %% tags=["parameters"]
SEED = 0
BENCH_SECONDS = 0.1  # min_run_time of each latency measurement (median of many calls)
LATENCY_BATCH = 64  # test images per teacher call when timing
SWEEP_WIDTHS = (64, 128, 256, 512, 1024)  # hidden widths of the FFN latency sweep
SWEEP_TOKENS = 16  # tokens per call in the sweep: one short sequence
FEWER_BITS = (8, 6, 4, 3, 2)  # bit widths for the whole-teacher table

# %%
set_seed(SEED)


def relative_error(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """``||x - x_hat|| / ||x||`` over all elements (0 = perfect)."""
    return ((x - x_hat).norm() / x.norm()).item()


def show_table(header: list[str], rows: list[list[str]]) -> None:
    """Display a markdown table: one header row, then rows of already-formatted strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


if not GRADING:
    teacher = load_teacher()
    test_images, test_labels = full_batch("test")
    fp32_acc = accuracy(teacher, (test_images, test_labels))
    summary["teacher_fp32_acc"] = fp32_acc
    print(f"teacher: fp32 test accuracy {fp32_acc:.1%} on {len(test_labels)} images")

# %% [markdown]
# ## 1. Symmetric per-tensor quantization
#
# **Intuition.** Lay a ruler of 255 equally spaced marks over the range of the tensor, from
# $-\max|x|$ to $+\max|x|$, and move every number to its nearest mark. You now only need to store
# the mark's index (an 8-bit integer) and the spacing of the marks (one float, the *scale*).
#
# **Maths.** With scale $s$, the integer code $q_i$ and the dequantized value $\hat x_i$ are
#
# $$
# s = \frac{\max_i |x_i|}{127}, \qquad
# q_i = \operatorname{clamp}\!\left(\operatorname{round}\!\left(\frac{x_i}{s}\right), -128, 127\right), \qquad
# \hat x_i = s\, q_i .
# $$
#
# Every value inside the range moves by at most $s/2$; for values spread over many marks the error
# is roughly uniform on $[-s/2, s/2]$, so its mean square is $s^2/12$. The largest value lands
# exactly on code $\pm 127$. With this scale $x_i/s$ never goes below $-127$, so code $-128$ stays
# unused (many libraries use the "restricted" range $[-127, 127]$ on purpose); the clamp is a
# guard for scales chosen some other way (section 4). Round with `torch.round`, which rounds
# halves to the nearest even integer ($0.5 \to 0$, $1.5 \to 2$, $2.5 \to 2$), as PyTorch's own
# `torch.quantize_per_tensor` does. Not every library agrees on ties: gemmlowp and TensorFlow Lite
# round halves *away from zero* when they requantize ($2.5 \to 3$). Ties are rare on real data,
# but bit-exact tests must pick one rule, and this notebook's tests use `torch.round`.
#
# This "quantize then dequantize" round trip is called **fake quantization**: it keeps floats but
# shows exactly the error that INT8 storage would introduce (Jacob et al., 2018, *Quantization and
# Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference*; Nagel et al., 2021,
# *A White Paper on Neural Network Quantization*).
#
# **Exercise 1 (2 points).** Implement the original script's function. An all-zero tensor has scale 0: return
# zeros instead of dividing by zero (no NaN).


# %% nbgrader={"grade": false, "grade_id": "simulate_int8_answer", "locked": false, "schema_version": 3, "solution": true}
def simulate_int8_quantization(tensor: torch.Tensor) -> torch.Tensor:
    """Symmetric per-tensor INT8 fake quantization: ``[...] -> [...]``.

    Inputs:
        tensor: float tensor of any shape and float dtype (not modified).
    Returns:
        ``q * scale`` with ``scale = max|tensor| / 127`` and
        ``q = clamp(round(tensor / scale), -128, 127)`` (``torch.round``): same shape and dtype as
        ``tensor``. An all-zero tensor comes back as zeros (never NaN).
    """
    ### BEGIN SOLUTION
    scale = tensor.abs().max() / 127
    if scale == 0:
        return torch.zeros_like(tensor)
    q = torch.clamp(torch.round(tensor / scale), -128, 127)
    return q * scale
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "simulate_int8_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
x = torch.tensor([0.5, -1.0, 0.26, 2.54])  # max|x| = 2.54, so the scale is 0.02
x_before = x.clone()
x_hat = simulate_int8_quantization(x)
print("x     =", x.tolist())
print("x_hat =", x_hat.tolist())
assert torch.equal(x, x_before), "Do not modify the input tensor in place (no /=, no .div_())."
assert isinstance(x_hat, torch.Tensor), "Return a torch.Tensor."
assert x_hat.shape == x.shape and x_hat.dtype == x.dtype, (
    f"Expected shape {tuple(x.shape)} and dtype {x.dtype}, got {tuple(x_hat.shape)} {x_hat.dtype}."
)
assert torch.isclose(x_hat[3], x[3]), (
    "The largest |x| must land exactly on code 127: check the scale."
)
assert (x_hat - x).abs().max() <= 0.02 / 2 + 1e-6, "Every value must move by at most scale / 2."
assert torch.allclose(x_hat / 0.02, torch.round(x_hat / 0.02), atol=1e-4), (
    "Return q * scale (values on the grid of the scale), not the integer codes q."
)
zeros = simulate_int8_quantization(torch.zeros(5))
print("all-zero input ->", zeros.tolist())
assert not zeros.isnan().any() and torch.equal(zeros, torch.zeros(5)), (
    "An all-zero tensor has scale 0: return zeros instead of dividing by 0 (NaN)."
)
### BEGIN HIDDEN TESTS
ties = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, -3.51])  # scale is exactly 1
out = simulate_int8_quantization(ties)
expected = torch.tensor([127.0, 0.0, 2.0, 2.0, 0.0, -2.0, -2.0, 3.0, -4.0])
assert torch.equal(out, expected), (
    f"Rounding: {ties.tolist()} should become {expected.tolist()}, got {out.tolist()}. Use "
    "torch.round (halves go to the even neighbour), not floor, trunc, ceil or floor(x + 0.5)."
)
neg = torch.tensor([-2.0, 1.0, 0.5])
out = simulate_int8_quantization(neg)
assert torch.allclose(out, torch.tensor([-2.0, 1.0, 0.5]), atol=2 / 127 / 2 + 1e-6), (
    f"{neg.tolist()} -> {out.tolist()}: the scale must come from max|x| (abs), not max(x)."
)
torch.manual_seed(1)
rand = torch.randn(7, 9) * torch.logspace(-2, 1, 7).unsqueeze(1)  # rows of very different size
ref_scale = rand.abs().max() / 127
ref = torch.clamp(torch.round(rand / ref_scale), -128, 127) * ref_scale
out = simulate_int8_quantization(rand)
assert out.shape == rand.shape, "Keep the shape of a 2-D tensor."
assert torch.allclose(out, ref, atol=1e-6), (
    "A 2-D tensor must use ONE scale (max|x| over the whole tensor) and max|x| / 127, not / 128 "
    "or a per-row max."
)
x64 = torch.tensor([1.0, -0.3, 0.77], dtype=torch.float64)
assert simulate_int8_quantization(x64).dtype == torch.float64, (
    "Keep the input dtype (float64 in, float64 out)."
)
const = simulate_int8_quantization(torch.full((4,), -3.0))
assert torch.allclose(const, torch.full((4,), -3.0)), "A constant tensor must come back unchanged."
### END HIDDEN TESTS

# %% [markdown]
# **What the grid looks like on a real weight matrix.** The left panel shows all weights of the
# teacher's first FFN layer with one tick per INT8 level along the bottom; the right panel zooms
# into a few levels around 0, where every weight (blue) is moved to its nearest level (orange).

# %%
if not GRADING:
    weight = teacher.blocks[0].ffn[0].weight.detach()  # [128, 64]
    w_hat = simulate_int8_quantization(weight)
    scale = (weight.abs().max() / 127).item()
    levels = torch.arange(-127, 128) * scale
    fig, (ax_full, ax_zoom) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_full.hist(weight.flatten(), bins=120, color="C0", alpha=0.8, label="fp32 weights")
    ax_full.plot(levels, torch.zeros_like(levels), "|", color="C1", ms=10, label="INT8 levels")
    ax_full.set(
        title=f"teacher blocks[0].ffn[0].weight {list(weight.shape)}",
        xlabel="weight value",
        ylabel="count",
    )
    ax_full.legend()
    window = 4.5 * scale
    inside = weight.flatten()[weight.flatten().abs() <= window]
    ax_zoom.hist(inside, bins=90, color="C0", alpha=0.8, label="fp32 weights")
    values, counts = torch.unique(
        w_hat.flatten()[w_hat.flatten().abs() <= window], return_counts=True
    )
    ax_zoom.vlines(values, 0, counts / 10, color="C1", lw=3, label="INT8 values (count / 10)")
    ax_zoom.set(
        title=f"zoom: 9 levels, scale = {scale:.2e}",
        xlabel="weight value",
        ylabel="count",
        xlim=(-window, window),
    )
    ax_zoom.legend(loc="upper right")
    fig.tight_layout()
    plt.show()
    print(
        f"max |w - w_hat| = {(weight - w_hat).abs().max():.2e} (scale / 2 = {scale / 2:.2e}), "
        f"relative error {relative_error(weight, w_hat):.2%}"
    )

# %% [markdown]
# ## 2. One scale per output channel
#
# **Intuition.** One scale for the whole matrix is set by its single largest weight. If one
# output row (one neuron) has much larger weights than the others, the small rows are measured
# with a ruler far too coarse for them. Give every row its own ruler.
#
# **Maths.** For a weight $W \in \mathbb{R}^{m \times n}$ (one row per output), use
# $s_j = \max_k |W_{jk}| / 127$ and $q_{jk} = \operatorname{clamp}(\operatorname{round}(W_{jk}/s_j), -128, 127)$.
# This is free at inference time, because the row's scale factors out of the dot product that
# computes output $j$:
#
# $$
# y_j = \sum_k W_{jk} x_k \approx \sum_k s_j q_{jk} x_k = s_j \sum_k q_{jk} x_k .
# $$
#
# A scale along the *input* axis $k$ would sit inside the sum and could not be factored out: that
# is why weights get per-output-channel scales and activations usually one scale per tensor.
#
# **Exercise 2a (2 points).** `quantize_per_channel(weight, axis=0)` returns `(q, scale)`: one
# scale per slice along `axis` (the maximum of $|w|$ over every *other* dimension, divided by 127),
# codes `q` as `torch.int8` with the shape of `weight`. A channel of zeros would get scale 0 and
# divide 0 by 0: give it scale 1.0 instead (its codes are then 0), as `quantize_affine` will do
# for an empty range.


# %% nbgrader={"grade": false, "grade_id": "quantize_per_channel_answer", "locked": false, "schema_version": 3, "solution": true}
def quantize_per_channel(weight: torch.Tensor, axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 quantization with one scale per slice along ``axis``.

    Inputs:
        weight: float tensor of any shape ``[..., C, ...]`` with ``C = weight.shape[axis]``
            (not modified); ``axis`` may be negative.
    Returns:
        q: ``torch.int8`` tensor, same shape as ``weight``,
            ``clamp(round(weight / scale_c), -128, 127)`` along ``axis`` (``torch.round``: halves
            to the even neighbour).
        scale: float tensor ``[C]`` (dtype of ``weight``), ``max|weight|`` over every other
            dimension divided by 127; 1.0 for an all-zero channel (whose codes are 0).
    """
    ### BEGIN SOLUTION
    axis = axis % weight.dim()
    other = [d for d in range(weight.dim()) if d != axis]
    scale = weight.abs().amax(dim=other) / 127 if other else weight.abs() / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero channel: 1.0
    shape = [1] * weight.dim()
    shape[axis] = -1
    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.int8)
    return q, scale
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "quantize_per_channel_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
w = torch.tensor([[0.5, -2.0], [0.25, -0.1], [0.0, 0.0]])  # 3 output channels, row 2 all zero
w_before = w.clone()
q, scale = quantize_per_channel(w, axis=0)
print("q =", q.tolist(), " scale * 127 =", (scale * 127).tolist())
assert torch.equal(w, w_before), "Do not modify the weight in place (no /=, no .div_())."
assert q.dtype == torch.int8, f"q must be torch.int8 (signed codes), got {q.dtype}."
assert q.shape == w.shape, (
    f"q must have the shape of weight {tuple(w.shape)}, got {tuple(q.shape)}."
)
assert scale.shape == (3,), (
    f"axis=0 of a [3, 2] weight needs 3 scales, got shape {tuple(scale.shape)}."
)
assert scale.dtype.is_floating_point, f"scale must be a float tensor, got {scale.dtype}."
assert torch.allclose(scale[:2] * 127, torch.tensor([2.0, 0.25])), (
    "scale[c] must be max|w| of channel c divided by 127 (channel 0: 2.0 / 127, channel 1: 0.25 / 127)."
)
assert q[:2].tolist() == [[32, -127], [127, -51]], (
    f"Expected codes [[32, -127], [127, -51]] for the first two rows, got {q[:2].tolist()}."
)
assert scale[2].item() == 1.0 and q[2].tolist() == [0, 0], (
    f"An all-zero channel must get scale 1.0 and codes 0 (no division by 0), got scale "
    f"{scale[2].item()} and codes {q[2].tolist()}."
)
q1, scale1 = quantize_per_channel(w, axis=1)
print("axis=1: q =", q1.tolist(), " scale * 127 =", (scale1 * 127).tolist())
assert scale1.shape == (2,), f"axis=1 of a [3, 2] weight needs 2 scales, got {tuple(scale1.shape)}."
assert torch.allclose(scale1 * 127, torch.tensor([0.5, 2.0])), "axis=1: one scale per column."
### BEGIN HIDDEN TESTS
ties = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5]])  # scale exactly 1
q, _ = quantize_per_channel(ties)
assert q.tolist() == [[127, 0, 2, 2, 0, -2, -2]], (
    f"Rounding: got {q.tolist()}, expected [[127, 0, 2, 2, 0, -2, -2]]. Use torch.round "
    "(halves to even), not floor, trunc or floor(x + 0.5)."
)
torch.manual_seed(2)
rows = torch.randn(6, 6) * torch.logspace(-2, 0, 6).unsqueeze(1)  # square, rows of different size
for axis in (0, 1):
    q, scale = quantize_per_channel(rows, axis=axis)
    ref_scale = rows.abs().amax(dim=1 - axis) / 127
    assert torch.allclose(scale, ref_scale), (
        f"axis={axis} of a square matrix: scale[c] must be the max over the OTHER axis of slice c "
        "(along axis=0 one scale per row). Did you reduce over the wrong axis, or use one global max?"
    )
    view = (-1, 1) if axis == 0 else (1, -1)
    ref_q = torch.clamp(torch.round(rows / ref_scale.view(view)), -128, 127)
    assert torch.equal(q.to(torch.float32), ref_q), (
        f"axis={axis}: codes differ from round(w / scale_c) with the channel's own scale."
    )
assert scale.unique().numel() > 1, "Per-channel means one scale per channel, not one global scale."
conv = torch.randn(4, 3, 2, 2) * torch.tensor([1.0, 0.1, 3.0, 0.01]).view(4, 1, 1, 1)
q, scale = quantize_per_channel(conv, axis=0)
assert q.shape == conv.shape and scale.shape == (4,), (
    "A 4-D conv weight [4, 3, 2, 2] with axis=0 needs q [4, 3, 2, 2] and scale [4]."
)
assert torch.allclose(scale, conv.abs().amax(dim=(1, 2, 3)) / 127), (
    "For a 4-D weight, take the max over ALL other dimensions (1, 2, 3), divided by 127 (not 128)."
)
assert (q.to(torch.int32).abs().amax(dim=(1, 2, 3)) == 127).all(), (
    "Each channel's largest |w| must map to code +-127."
)
q_neg, scale_neg = quantize_per_channel(conv, axis=-4)
assert torch.equal(q_neg, q) and torch.allclose(scale_neg, scale), "A negative axis must work too."
q, scale = quantize_per_channel(torch.zeros(3, 4))
assert torch.equal(scale, torch.ones(3)) and (q == 0).all() and q.dtype == torch.int8, (
    "An all-zero weight must give int8 codes 0 and scales 1.0."
)
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 2b (1 point).** `dequantize_per_channel(q, scale, axis=0)` multiplies each slice of the
# codes by its scale, $\hat w = s_c\, q$. Make the scale broadcast along `axis` (reshape it), and
# compute in floating point.


# %% nbgrader={"grade": false, "grade_id": "dequantize_per_channel_answer", "locked": false, "schema_version": 3, "solution": true}
def dequantize_per_channel(q: torch.Tensor, scale: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """Per-channel dequantization ``q * scale`` with ``scale`` broadcast along ``axis``.

    Inputs:
        q: integer codes (``torch.int8``) of any shape ``[..., C, ...]``, ``C = q.shape[axis]``.
        scale: float tensor ``[C]``.
    Returns:
        float tensor with the shape of ``q`` and the dtype of ``scale``.
    """
    ### BEGIN SOLUTION
    shape = [1] * q.dim()
    shape[axis] = -1
    return q.to(scale.dtype) * scale.view(shape)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "dequantize_per_channel_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
q = torch.tensor([[127, -64], [10, 0]], dtype=torch.int8)
scale = torch.tensor([0.5, 0.01])
w_hat = dequantize_per_channel(q, scale, axis=0)
print("axis=0:", w_hat.tolist())
assert w_hat.dtype == torch.float32, f"Return floats (float32 here), got {w_hat.dtype}."
assert torch.allclose(w_hat, torch.tensor([[63.5, -32.0], [0.1, 0.0]])), (
    "axis=0: row c must be multiplied by scale[c]. Expected [[63.5, -32.0], [0.1, 0.0]]."
)
w_hat1 = dequantize_per_channel(q, scale, axis=1)
print("axis=1:", w_hat1.tolist())
assert torch.allclose(w_hat1, torch.tensor([[63.5, -0.64], [5.0, 0.0]])), (
    "axis=1: column c must be multiplied by scale[c]. Expected [[63.5, -0.64], [5.0, 0.0]]."
)
### BEGIN HIDDEN TESTS
q = torch.randint(-128, 128, (3, 5), dtype=torch.int8)
scale = torch.tensor([0.1, 2.0, 0.003])
out = dequantize_per_channel(q, scale)
assert out.shape == (3, 5), "Keep the shape of q: [3, 5] with axis=0 and 3 scales."
assert torch.allclose(out, q.float() * scale.view(3, 1)), "Multiply (do not divide) by the scale."
q4 = torch.randint(-128, 128, (2, 3, 2, 2), dtype=torch.int8)
scale4 = torch.tensor([0.5, 0.25, 2.0])
out4 = dequantize_per_channel(q4, scale4, axis=1)
assert torch.allclose(out4, q4.float() * scale4.view(1, 3, 1, 1)), (
    "4-D codes with axis=1: the scale must broadcast as [1, 3, 1, 1]."
)
zero = dequantize_per_channel(torch.zeros(2, 3, dtype=torch.int8), torch.tensor([0.0, 1.0]))
assert torch.isfinite(zero).all() and (zero == 0).all(), "Codes 0 with scale 0 must give zeros."
### END HIDDEN TESTS

# %% [markdown]
# **Per-tensor against per-channel on the teacher.** The figure shows the range $\max_k|W_{jk}|$ of
# each output row of the teacher matrix whose rows differ most: one per-tensor scale must cover the
# largest row, so the smaller rows use only a fraction of the 255 levels.

# %%
if not GRADING:
    linears = {n: m for n, m in teacher.named_modules() if isinstance(m, nn.Linear)}
    spread = {
        n: (m.weight.abs().amax(dim=1).max() / m.weight.abs().amax(dim=1).min()).item()
        for n, m in linears.items()
    }
    widest = max(spread, key=spread.get)
    row_max = linears[widest].weight.detach().abs().amax(dim=1).sort(descending=True).values
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.bar(range(len(row_max)), row_max, color="C0", label="max |w| of the row (per-channel range)")
    ax.axhline(row_max[0], color="C3", ls="--", label="per-tensor range (largest row)")
    ax.set(
        title=f"row ranges of {widest}.weight (largest / smallest = {spread[widest]:.1f}x)",
        xlabel="output channel (sorted by range)",
        ylabel="max |w| (weight units)",
    )
    ax.set_ylim(0, 1.3 * row_max[0].item())
    ax.legend(loc="upper right")
    plt.show()

# %% [markdown]
# ## 3. Affine quantization: a zero point
#
# **Intuition.** Some tensors have a strongly asymmetric range. A ReLU output is never negative; a
# GELU output is negative for every negative input, but never below about $-0.17$ (its minimum,
# near $x = -0.75$), while its positive side grows with the input. A symmetric grid
# $[-\max|x|, \max|x|]$ spends about half its 256 codes on negative values that such a tensor
# never takes. An **affine** (asymmetric) grid covers $[\text{lo}, \text{hi}]$ instead, with
# unsigned codes $0 \dots 255$ and an integer **zero point** $z$: the code that means real 0
# (Jacob et al., 2018).
#
# **Maths.** For $b$ bits, widen the range so that it contains 0, then
#
# $$
# \text{lo} = \min(\min_i x_i, 0), \quad \text{hi} = \max(\max_i x_i, 0), \quad
# s = \frac{\text{hi} - \text{lo}}{2^b - 1}, \quad
# z = \operatorname{clamp}\!\left(\operatorname{round}\!\left(\frac{-\text{lo}}{s}\right), 0, 2^b - 1\right),
# $$
#
# $$
# q_i = \operatorname{clamp}\!\left(\operatorname{round}\!\left(\frac{x_i}{s}\right) + z,\ 0,\ 2^b - 1\right), \qquad
# \hat x_i = s\,(q_i - z).
# $$
#
# Real 0 maps to code $z$ and back to exactly 0. That matters: zero padding, ReLU zeros and masked
# positions must stay exactly 0, and an error on 0 would not be random noise but the same bias added
# to every one of the many zeros in a sum.
#
# **Exercise 3a (2 points).** `quantize_affine(x, num_bits=8)` returns `(q, scale, zero_point)`:
# `q` as `torch.uint8`, `scale` a Python float, `zero_point` a Python int. If the range is empty
# (all of `x` is 0) use `scale = 1.0` so nothing divides by 0. Raise `ValueError` unless
# `2 <= num_bits <= 8` (the codes must fit in a uint8).


# %% nbgrader={"grade": false, "grade_id": "quantize_affine_answer", "locked": false, "schema_version": 3, "solution": true}
def quantize_affine(x: torch.Tensor, num_bits: int = 8) -> tuple[torch.Tensor, float, int]:
    """Affine (asymmetric) per-tensor quantization to unsigned ``num_bits`` codes.

    Inputs:
        x: float tensor of any shape (not modified); num_bits: 2 to 8.
    Returns:
        q: ``torch.uint8`` tensor with the shape of ``x``,
            ``clamp(round(x / scale) + zero_point, 0, 2**num_bits - 1)``.
        scale: Python float ``(hi - lo) / (2**num_bits - 1)`` with ``lo = min(x.min(), 0)`` and
            ``hi = max(x.max(), 0)``; 1.0 if ``hi == lo``.
        zero_point: Python int ``round(-lo / scale)`` clamped to ``[0, 2**num_bits - 1]``.
        ``round`` is ``torch.round`` (halves to the even neighbour) in both formulas.
    Raises:
        ValueError: if ``num_bits`` is not between 2 and 8.
    """
    ### BEGIN SOLUTION
    if not 2 <= num_bits <= 8:
        raise ValueError(f"num_bits must be between 2 and 8 to fit uint8 codes, got {num_bits}.")
    qmax = 2**num_bits - 1
    lo = torch.clamp(x.min(), max=0.0)
    hi = torch.clamp(x.max(), min=0.0)
    scale = ((hi - lo) / qmax).item() if hi > lo else 1.0
    zero_point = int(torch.clamp(torch.round(-lo / scale), 0, qmax).item())
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.uint8)
    return q, scale, zero_point
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "quantize_affine_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
x = torch.tensor([-1.0, 0.0, 0.5, 4.1])  # range [-1, 4.1]: scale 5.1 / 255 = 0.02, zero point 50
q, scale, zero_point = quantize_affine(x)
print(f"q = {q.tolist()}, scale = {scale!r}, zero_point = {zero_point!r}")
assert q.dtype == torch.uint8, f"q must be torch.uint8 (unsigned codes 0..255), got {q.dtype}."
assert q.shape == x.shape, "q must have the shape of x."
assert isinstance(scale, float), f"Return scale as a Python float (use .item()), got {type(scale)}."
assert isinstance(zero_point, int) and not isinstance(zero_point, bool), (
    f"Return zero_point as a Python int (int(...)), got {type(zero_point)}."
)
assert abs(scale - 0.02) < 1e-6, f"scale should be (4.1 - (-1)) / 255 = 0.02, got {scale}."
assert zero_point == 50, f"zero_point should be round(1 / 0.02) = 50, got {zero_point}."
assert q.tolist() == [0, 50, 75, 255], f"Expected codes [0, 50, 75, 255], got {q.tolist()}."
x_pos = torch.tensor([1.0, 2.0, 3.0])  # all positive: the range must be widened to [0, 3]
q, scale, zero_point = quantize_affine(x_pos)
print(f"all positive: q = {q.tolist()}, scale = {scale!r}, zero_point = {zero_point!r}")
assert zero_point == 0 and abs(scale - 3 / 255) < 1e-7, (
    "For x in [1, 3] the range is [min(x.min(), 0), max(x.max(), 0)] = [0, 3]: zero_point 0, "
    "scale 3 / 255."
)
q, scale, zero_point = quantize_affine(torch.zeros(4))
print(f"all zero: q = {q.tolist()}, scale = {scale!r}, zero_point = {zero_point!r}")
assert scale == scale and 0 < scale < float("inf"), "All zeros: use scale 1.0 (never 0 or NaN)."
assert (q.int() - zero_point == 0).all(), "All zeros must dequantize to 0."
### BEGIN HIDDEN TESTS
x_neg = torch.tensor([-4.0, -1.0, -2.0])
q, scale, zero_point = quantize_affine(x_neg)
assert zero_point == 255 and abs(scale - 4 / 255) < 1e-7 and q.tolist()[0] == 0, (
    "For all-negative x the range is [-4, 0]: zero_point 255, scale 4 / 255, -4 -> code 0. "
    "Widen the range to include 0, and zero_point = round(-lo / scale) (mind the sign)."
)
for value in (3.0, -2.0):
    q, scale, zero_point = quantize_affine(torch.full((5,), value))
    x_back = (q.float() - zero_point) * scale
    assert torch.isfinite(torch.tensor(scale)) and torch.allclose(
        x_back, torch.full((5,), value)
    ), (
        f"A constant tensor of {value} must come back as {value} without NaN: widen the range "
        "to include 0 so hi > lo."
    )
# -11.5 / 243.5 with scale 1: zero point round(11.5) = 12, and 243.5 -> round(243.5) + 12 = 256
q, scale, zero_point = quantize_affine(torch.tensor([-11.5, 0.0, 243.5]))
assert scale == 1.0 and zero_point == 12, (
    f"Range [-11.5, 243.5]: scale 1.0 and zero_point round(11.5) = 12 (torch.round, halves to "
    f"even), got scale {scale}, zero_point {zero_point}."
)
assert q.tolist() == [0, 12, 255], (
    f"Got codes {q.tolist()}, expected [0, 12, 255]: clamp round(x / scale) + zero_point to "
    "[0, 255] BEFORE casting to uint8 (256 would wrap around to 0)."
)
q, scale, zero_point = quantize_affine(torch.tensor([-10.5, 0.5, 1.5, 2.5, 244.5]))
assert zero_point == 10 and q.tolist() == [0, 10, 12, 12, 254], (
    f"Range [-10.5, 244.5], scale 1: expected zero_point 10 and codes [0, 10, 12, 12, 254], got "
    f"{zero_point} and {q.tolist()}. Use torch.round (halves to even), not floor/trunc/floor(x+0.5)."
)
torch.manual_seed(3)
rand = torch.randn(50, 40) * 2 + 0.7
q, scale, zero_point = quantize_affine(rand)
lo, hi = min(rand.min().item(), 0.0), max(rand.max().item(), 0.0)
assert abs(scale - (hi - lo) / 255) < 1e-6 * (hi - lo), (
    "scale must be (hi - lo) / (2**num_bits - 1) = (hi - lo) / 255, not / 256."
)
ref = torch.clamp(torch.round(rand / scale) + zero_point, 0, 255)
assert (q.float() - ref).abs().max() <= 1 and (q.float() == ref).float().mean() > 0.99, (
    "Codes must be clamp(round(x / scale) + zero_point, 0, 255) with torch.round."
)
assert q.shape == rand.shape, "Keep the shape of x."
before = rand.clone()
quantize_affine(rand)
assert torch.equal(rand, before), "Do not modify x in place."
q4, scale4, zp4 = quantize_affine(torch.tensor([-1.0, 2.0, 0.3]), num_bits=4)
assert q4.dtype == torch.uint8 and int(q4.max()) == 15 and abs(scale4 - 0.2) < 1e-6 and zp4 == 5, (
    f"num_bits=4: 16 codes 0..15, scale 3 / 15 = 0.2, zero_point 5; got max code {int(q4.max())}, "
    f"scale {scale4}, zero_point {zp4}."
)
for bad in (0, 9, 16):
    try:
        quantize_affine(torch.ones(3), num_bits=bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"num_bits={bad} must raise ValueError (codes are uint8: 2..8 bits).")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 3b (1 point).** `dequantize_affine(q, scale, zero_point)` returns
# $\hat x = s\,(q - z)$ as float32. Careful: `q` is `uint8`, and integer arithmetic on `uint8`
# wraps around (`0 - 1` is 255): convert to float *before* subtracting.


# %% nbgrader={"grade": false, "grade_id": "dequantize_affine_answer", "locked": false, "schema_version": 3, "solution": true}
def dequantize_affine(q: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """Affine dequantization ``(q - zero_point) * scale``: uint8 codes ``[...]`` -> float32 ``[...]``."""
    ### BEGIN SOLUTION
    return (q.to(torch.float32) - zero_point) * scale
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "dequantize_affine_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
q = torch.tensor([0, 50, 75, 255], dtype=torch.uint8)
x_hat = dequantize_affine(q, 0.02, 50)
print("x_hat =", x_hat.tolist())
assert x_hat.dtype == torch.float32, f"Return float32, got {x_hat.dtype}."
assert torch.allclose(x_hat, torch.tensor([-1.0, 0.0, 0.5, 4.1])), (
    "Expected (q - 50) * 0.02 = [-1.0, 0.0, 0.5, 4.1]. Subtract the zero point, then scale."
)
### BEGIN HIDDEN TESTS
q = torch.tensor([[0, 3], [12, 255]], dtype=torch.uint8)
out = dequantize_affine(q, 0.5, 12)
assert torch.equal(out, torch.tensor([[-6.0, -4.5], [0.0, 121.5]])), (
    f"Got {out.tolist()}: uint8 arithmetic wraps around (0 - 12 = 244). Convert q to float "
    "before subtracting the zero point."
)
assert out.shape == q.shape, "Keep the shape of q."
assert dequantize_affine(torch.tensor([7], dtype=torch.uint8), 1.0, 7).item() == 0.0, (
    "The zero point code must give exactly 0."
)
### END HIDDEN TESTS

# %% [markdown]
# **Error of each scheme on the teacher's weights and activations.** Forward hooks capture the
# inputs of three Linear layers while the teacher classifies the digits test images: after a
# LayerNorm (the input of `q_proj`), after the GELU inside the first FFN (the input of `ffn.2`), and
# before the classification head. The table gives each tensor's range and the relative error
# $\|x-\hat x\|/\|x\|$ of 8-bit fake quantization. For weights the error is pooled over all
# Linear matrices, each with its own scale(s). The per-channel column for activations uses one
# scale per *feature*; a scale on the reduction axis cannot be factored out of the matrix product
# (section 2), so real kernels do not use it: the column only shows what it would buy. Which
# tensors have an asymmetric range, and is that where the zero point lowers the error most?

# %%
if not GRADING:
    ACTIVATION_SITES = {
        "blocks.0.attn.q_proj": "after LayerNorm (q_proj input)",
        "blocks.0.ffn.2": "after GELU (ffn.2 input)",
        "head": "before the head (head input)",
    }
    captured: dict[str, torch.Tensor] = {}

    def keep_input(name: str) -> Callable:
        """A forward hook that stores the module's input, flattened to ``[tokens, features]``."""

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            captured[name] = inputs[0].detach().reshape(-1, inputs[0].shape[-1])

        return hook

    handles = [
        teacher.get_submodule(n).register_forward_hook(keep_input(n)) for n in ACTIVATION_SITES
    ]
    with torch.no_grad():
        teacher(test_images)
    for handle in handles:
        handle.remove()

    def scheme_errors(x: torch.Tensor) -> dict[str, float]:
        """Relative error of 8-bit per-tensor, per-channel (dim 0 of ``x``) and affine quantization."""
        q, scale = quantize_per_channel(x, axis=0)
        return {
            "per-tensor": relative_error(x, simulate_int8_quantization(x)),
            "per-channel": relative_error(x, dequantize_per_channel(q, scale, axis=0)),
            "affine": relative_error(x, dequantize_affine(*quantize_affine(x))),
        }

    def pooled_weight_errors(model: nn.Module) -> dict[str, float]:
        """Errors of each scheme pooled over every Linear weight (each matrix quantized alone)."""
        sq = {"per-tensor": 0.0, "per-channel": 0.0, "affine": 0.0}
        total = 0.0
        for module in model.modules():
            if isinstance(module, nn.Linear):
                w = module.weight.detach()
                for name, err in scheme_errors(w).items():
                    sq[name] += (err * w.norm().item()) ** 2
                total += w.norm().item() ** 2
        return {name: (value / total) ** 0.5 for name, value in sq.items()}

    all_weights = torch.cat(
        [m.weight.detach().flatten() for m in teacher.modules() if isinstance(m, nn.Linear)]
    )
    rows = [["all Linear weights", all_weights, pooled_weight_errors(teacher)]]
    for site, label in ACTIVATION_SITES.items():
        # activations: channels are the features, the last dimension
        acts = captured[site]
        rows.append([f"activations {label}", acts, scheme_errors(acts.T.contiguous())])
    schemes = ("per-tensor", "per-channel", "affine")
    show_table(
        [
            "tensor",
            "min",
            "max",
            "per-tensor symmetric",
            "per-channel symmetric",
            "affine (zero point)",
        ],
        [
            [name, f"{x.min():.3f}", f"{x.max():.3f}"] + [f"{errs[k]:.2%}" for k in schemes]
            for name, x, errs in rows
        ],
    )
    for key, (_, x, errs) in zip(("weight", "ln_act", "gelu_act", "head_act"), rows, strict=True):
        summary[f"{key}_min"], summary[f"{key}_max"] = x.min().item(), x.max().item()
        for scheme in schemes:
            summary[f"{scheme.replace('-', '_')}_{key}_err"] = errs[scheme]

# %% [markdown]
# **Written question (2 points, graded by hand).** (a) When does per-channel quantization of a
# weight matrix clearly beat per-tensor quantization, and when does it make no difference? Why are
# per-output-channel scales free in an integer matrix multiply, while per-input-channel scales are
# not? (b) Why must real 0 be exactly representable, and how does the affine scheme guarantee it?
# Answer in the cell below in a few sentences; you may point at the table and figures above.

# %% [markdown] nbgrader={"grade": true, "grade_id": "per_channel_and_zero_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Model answer.** (a) Per-channel wins when the output rows have very different ranges: a single
# scale is set by the largest row, so rows with small weights get a coarse grid (few of the 255
# levels) and a large *relative* error; with its own scale each row uses the full grid. If all
# rows have about the same max |w|, both schemes give nearly the same scale and the same error.
# A per-output-channel scale $s_j$ multiplies every term of output $j$'s sum, so it comes out of the
# sum ($y_j = s_j \sum_k q_{jk} x_k$) and is applied once after the int32 accumulation; a scale per
# input channel $k$ differs between the terms of the sum, so the integer products could not be
# added before rescaling each one. (b) Zeros are everywhere and exact by construction: zero
# padding, ReLU/GELU outputs near 0, masked positions, pruned weights. If 0 were rounded to a
# non-zero value, the same error would be added to every such entry, a systematic bias that
# accumulates over a long dot product instead of averaging out. The affine scheme widens the range
# to include 0 and uses an integer zero point $z = \operatorname{round}(-\text{lo}/s)$, so real 0 maps to
# code $z$ and back to $s(z - z) = 0$ exactly.

# %% [markdown]
# ## 4. Outliers and calibration: clip or round?
#
# **Intuition.** If a tensor has a few huge values, the max-based scale stretches the grid to
# cover them and the bulk of ordinary values falls on a handful of levels. Choosing a smaller
# scale **clips** the outliers (a large error on a few values) but **rounds** the bulk more finely
# (a smaller error on all others). Calibration picks the scale from data, e.g. from a percentile
# of $|x|$ instead of its maximum.
#
# **Maths.** With clipping threshold $c = 127 s$, the squared error of $N$ values has two parts:
#
# $$
# \text{SE}(c) \approx \underbrace{N_{|x| \le c}\,\frac{s^2}{12}}_{\text{rounding: grows with } c}
# \;+\; \underbrace{\sum_{|x_i| > c} \left(|x_i| - c\right)^2}_{\text{clipping: shrinks with } c},
# \qquad s = \frac{c}{127},
# $$
#
# and the best $c$ balances them.
#
# **Exercise 4 (2 points).** `percentile_scale(x, percentile=99.99)` returns the symmetric INT8
# scale `torch.quantile(|x|, percentile / 100) / 127` (default linear interpolation) as a Python
# float. Raise `ValueError` unless `0 < percentile <= 100`.


# %% nbgrader={"grade": false, "grade_id": "percentile_scale_answer", "locked": false, "schema_version": 3, "solution": true}
def percentile_scale(x: torch.Tensor, percentile: float = 99.99) -> float:
    """Symmetric INT8 scale that clips outliers: ``quantile(|x|, percentile / 100) / 127``.

    Inputs:
        x: float tensor of any shape (flattened; not modified); percentile in ``(0, 100]``.
    Returns:
        Python float, the ``percentile``-th percentile of ``|x|`` (``torch.quantile``, linear
        interpolation) divided by 127.
    Raises:
        ValueError: if ``percentile`` is not in ``(0, 100]``.
    """
    ### BEGIN SOLUTION
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}.")
    values = x.detach().abs().flatten()
    if not values.is_floating_point():
        values = values.float()
    return (torch.quantile(values, percentile / 100) / 127).item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "percentile_scale_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
x = torch.tensor([-4.0, 1.0, 2.0, 3.0])  # |x| = [4, 1, 2, 3]
s100 = percentile_scale(x, 100)
s50 = percentile_scale(x, 50)
print(
    f"percentile 100 -> {s100!r} (127 * s = {127 * s100:.4f}); percentile 50 -> 127 * s = {127 * s50:.4f}"
)
assert isinstance(s100, float), f"Return a Python float (use .item()), got {type(s100)}."
assert abs(s100 - 4 / 127) < 1e-7, "Percentile 100 of |x| is max|x| = 4: expect 4 / 127."
assert abs(s50 - 2.5 / 127) < 1e-7, "The median of |x| = [4, 1, 2, 3] is 2.5: expect 2.5 / 127."
for bad in (0, 101):
    try:
        percentile_scale(x, bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"percentile={bad} must raise ValueError (valid: 0 < p <= 100).")
### BEGIN HIDDEN TESTS
neg = -torch.arange(1.0, 1001.0)  # all negative: |x| = 1..1000
s = percentile_scale(neg, 99.9)
assert s > 0, (
    "Take the percentile of |x| (x.abs()), not of x: an all-negative tensor gave a negative scale."
)
ref = torch.quantile(torch.arange(1.0, 1001.0), 0.999).item() / 127
assert abs(s - ref) < 1e-6 * ref, (
    f"percentile 99.9 of |x| = 1..1000 with linear interpolation is {127 * ref:.3f}, got "
    f"{127 * s:.3f}. Use torch.quantile(|x|, percentile / 100) (not 100 - percentile, not "
    "'nearest') and divide by 127 (not 128)."
)
s_default = percentile_scale(neg)
ref_default = torch.quantile(torch.arange(1.0, 1001.0), 0.9999).item() / 127
assert abs(s_default - ref_default) < 1e-6 * ref_default, "The default percentile must be 99.99."
s_low = percentile_scale(torch.arange(1.0, 101.0), 10)
assert abs(s_low - 10.9 / 127) < 1e-6, (
    f"percentile 10 of 1..100 is 10.9 (linear interpolation), expected {10.9 / 127:.6f}, got "
    f"{s_low:.6f}: use percentile / 100 as the quantile, not 1 - percentile / 100."
)
m = torch.tensor([[1.0, -9.0], [3.0, 5.0]])
assert abs(percentile_scale(m, 100) - 9 / 127) < 1e-7, "Flatten a 2-D tensor: max|x| is 9."
before = m.clone()
percentile_scale(m, 50)
assert torch.equal(m, before), "Do not modify x in place."
zero = percentile_scale(torch.zeros(10), 99.0)
assert zero == 0.0, f"All zeros give scale 0.0 (no NaN), got {zero}."
### END HIDDEN TESTS

# %% [markdown]
# **Error against percentile, two kinds of outliers.** The left panel uses a heavy-tailed tensor:
# 100 000 ordinary values (Gaussian) and, at random positions, 1 in 2 000 values 10 to 40 times
# larger. For each percentile we clip to $\pm 127 s$ and quantize (your two functions: clipping
# first, then `simulate_int8_quantization`, whose max-based scale is then exactly $s$) and split
# the mean squared error into the rounding part (values inside the range) and the clipping part
# (values outside).
#
# Large language models have outliers of another kind: not scattered values but a few fixed
# *feature dimensions* that are large for most tokens (next paragraph). The right panel repeats
# the sweep on such a tensor: activations of 512 tokens by 256 features, Gaussian except 2 fixed
# features that are 10 to 40 times larger for every token. Its dashed line is a different remedy,
# the split of LLM.int8(): every feature with a value of magnitude 6 or more stays in float, the
# other features share one INT8 scale (`simulate_int8_quantization`). On this tensor the split
# lowers the error far more than any clipping threshold. Where is the best percentile on each
# tensor, and how much does it gain over the max scale? Why can no clipping threshold remove the
# cost of outlier features, while the split can?

# %%
if not GRADING:
    gen = torch.Generator().manual_seed(SEED)
    heavy = torch.randn(100_000, generator=gen)
    outliers = torch.rand(100_000, generator=gen) < 1 / 2000
    heavy[outliers] *= 10 + 30 * torch.rand(int(outliers.sum()), generator=gen)
    features = torch.randn(512, 256, generator=gen)  # [tokens, features]
    outlier_features = torch.randperm(256, generator=gen)[:2]
    features[:, outlier_features] *= 10 + 30 * torch.rand(2, generator=gen)
    tail = torch.logspace(-4, 0.3, 25)  # 100 - percentile

    def percentile_sweep(x: torch.Tensor) -> tuple[list[float], list[float]]:
        """Rounding and clipping MSE of ``x`` for each percentile of ``tail``, then for 100."""
        rounding, clipping = [], []
        for p in tqdm((100 - tail).tolist() + [100.0], desc="percentiles", leave=False):
            s = percentile_scale(x, min(p, 100.0))
            err2 = (simulate_int8_quantization(x.clamp(-127 * s, 127 * s)) - x) ** 2
            inside = x.abs() <= 127 * s
            rounding.append((err2 * inside).sum().item() / x.numel())
            clipping.append((err2 * ~inside).sum().item() / x.numel())
        return rounding, clipping

    # LLM.int8() split: features with any |x| >= 6 stay in float (no error), the rest share a scale
    in_float = (features.abs() >= 6).any(dim=0)
    split = features.clone()
    split[:, ~in_float] = simulate_int8_quantization(features[:, ~in_float])
    split_mse = ((split - features) ** 2).mean().item()

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for ax, x, title, key in (
        (axes[0], heavy, "scattered outliers (1 in 2000 values)", ""),
        (axes[1], features, "outlier features (2 of 256 features)", "features_"),
    ):
        rounding, clipping = percentile_sweep(x)
        total = [a + b for a, b in zip(rounding, clipping, strict=True)]
        best = min(range(len(tail)), key=lambda i: total[i])
        ax.loglog(tail, rounding[:-1], "C0-", label="rounding error (inside the range)")
        ax.loglog(tail, clipping[:-1], "C3-", label="clipping error (outliers)")
        ax.loglog(tail, total[:-1], "k-", lw=2, label="total")
        ax.axhline(total[-1], color="grey", ls=":", label="max scale (no clipping)")
        ax.plot(
            tail[best], total[best], "ko", ms=8, label=f"best: percentile {100 - tail[best]:.3f}"
        )
        ax.set(title=title, xlabel="100 - percentile (%), log scale: right = clip more")
        summary[f"{key}best_percentile"] = 100 - tail[best].item()
        summary[f"{key}mse_best_percentile"] = total[best]
        summary[f"{key}mse_max_scale"] = total[-1]
        print(
            f"{title}: max scale MSE {total[-1]:.2e}; best percentile {100 - tail[best]:.3f}: "
            f"MSE {total[best]:.2e} ({total[-1] / total[best]:.2f}x lower)"
        )
    axes[1].axhline(split_mse, color="C2", ls="--", label="outlier features kept in float")
    for ax in axes:
        ax.set_ylabel("mean squared error")
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.show()
    summary["features_kept_in_float"] = int(in_float.sum())
    summary["features_mse_split"] = split_mse
    print(
        f"split: {int(in_float.sum())} features kept in float, MSE {split_mse:.2e} "
        f"({summary['features_mse_best_percentile'] / split_mse:.0f}x lower than the best percentile)"
    )

# %% [markdown]
# **What large models do about outliers.** From a few billion parameters on, transformers develop
# *outlier features*: a handful of fixed hidden dimensions whose activations are tens of times
# larger than the rest (SmoothQuant reports about 100x), for most tokens and in almost every layer.
# Clipping them destroys accuracy, and keeping them stretches the grid for every other feature.
# **LLM.int8()** (Dettmers et al., 2022) splits the matrix product: the few input features that
# hold a value of magnitude 6 or more (those columns of the activations $X$, and the matching input
# columns of $W$) are multiplied in 16-bit floats, everything else in INT8 with one scale per row of
# $X$ (per token) and one per output channel of the weight (per row of our `W[out, in]`). Both
# scales sit outside the sum over input features, so both factor out (section 2).
# **SmoothQuant** (Xiao et al., 2023) rescales instead: it divides each activation feature $j$ by a
# factor $s_j$ and multiplies the matching *input column* $W_{:,j}$ of the weight by the same
# $s_j$, so $XW^\top$ is unchanged, with $s_j = \max|X_{:,j}|^{\alpha} / \max|W_{:,j}|^{1-\alpha}$
# ($\alpha = 0.5$ by default). This migrates part of the outliers' range from the activations into
# the weights. It works because weights are flat, with no outlier features of their own: a few
# input columns grown by $s_j$ still leave every weight row with a range its INT8 grid handles,
# while the activations, freed of their outlier features, get a much finer per-tensor grid. (The
# per-output-channel scales of $W$ do not absorb $s_j$: an input column runs through every row.)

# %% [markdown]
# ## 5. An integer matrix multiply
#
# Fake quantization shows the error but saves nothing. The real gain comes from multiplying the
# integer codes directly. With per-tensor activation codes $q^x$ (scale $s_x$) and per-output-channel
# weight codes $q^w$ (scales $s^w_j$):
#
# $$
# y_j = \sum_k x_k W_{jk} + b_j \approx s_x\, s^w_j \underbrace{\sum_k q^x_k\, q^w_{jk}}_{\text{integer, int32}} + b_j .
# $$
#
# How wide must the sum be? A product of two codes in $[-127, 127]$ is at most
# $127^2 = 16\,129 < 2^{14}$ in magnitude, so it fits in 15 bits with the sign (code $-128$ would
# make $(-128)^2 = 2^{14}$, one bit more). A sum of $K$ such products needs up to
# $15 + \lceil\log_2 K\rceil$ bits. int8 overflows at the first product; int16 (largest value
# 32 767) holds two products but can overflow at the third; float16, with an 11-bit significand,
# cannot represent every integer above 2 048 and rounds the sum; int32 holds it for $K$ up to
# $2^{31} / 127^2 \approx 133\,000$. That is why INT8 kernels multiply 8-bit codes and
# **accumulate in int32**, then rescale once per output. Section 7 shows what happens when a CPU's
# instructions put a 16-bit step in between.
#
# **Exercise 5 (3 points).** `int8_linear(x, w_q, w_scale, bias=None)`: quantize `x` per tensor as
# in exercise 1 (`scale = max|x| / 127`, round, clamp to $[-128, 127]$; an all-zero `x` gives
# codes 0), multiply the integer tensors in `torch.int32`
# (`a.to(torch.int32) @ b.to(torch.int32).T` works on CPU), rescale by `x_scale * w_scale`, add the
# float bias. Raise `ValueError` if the last dimension of `x` is not `w_q.shape[1]`.


# %% nbgrader={"grade": false, "grade_id": "int8_linear_answer", "locked": false, "schema_version": 3, "solution": true}
def int8_linear(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Linear layer computed with INT8 codes and int32 accumulation: ``[..., in] -> [..., out]``.

    Inputs:
        x: float32 ``[..., in]`` (not modified), quantized inside with ONE scale for the whole
            tensor, batch dimensions included: ``x_scale = max|x| / 127``,
            ``q_x = clamp(round(x / x_scale), -128, 127)`` (``torch.round``: halves to the even
            neighbour); an all-zero ``x`` gives codes 0, so the output is exactly ``bias`` (or 0).
        w_q: ``torch.int8`` weight codes ``[out, in]``; w_scale: float ``[out]`` (per output channel).
        bias: optional float ``[out]``, added after rescaling.
    Returns:
        float32 ``[..., out]``: ``(q_x @ w_q.T)`` accumulated in int32, times ``x_scale * w_scale``
        (``w_scale[j]`` scales output ``j``), plus ``bias``.
    Raises:
        ValueError: if ``x.shape[-1] != w_q.shape[1]``.
    """
    ### BEGIN SOLUTION
    if x.shape[-1] != w_q.shape[1]:
        raise ValueError(f"x has {x.shape[-1]} input features, w_q expects {w_q.shape[1]}.")
    x_scale = x.abs().max() / 127
    safe = x_scale if x_scale > 0 else torch.ones_like(x_scale)
    x_q = torch.clamp(torch.round(x / safe), -128, 127).to(torch.int32)
    acc = x_q @ w_q.to(torch.int32).T  # [..., out], int32
    y = acc.to(torch.float32) * (x_scale * w_scale).to(torch.float32)
    if bias is not None:
        y = y + bias
    return y.to(torch.float32)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "int8_linear_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
x = torch.tensor([[127.0, -2.5, 0.5]])  # max|x| = 127: x_scale 1, codes [127, -2, 0]
w_q = torch.tensor([[1, 2, 3], [-1, 0, 1]], dtype=torch.int8)
w_scale = torch.tensor([0.5, 0.25])
bias = torch.tensor([1.0, -1.0])
y = int8_linear(x, w_q, w_scale, bias)
print("y =", y.tolist(), "(expected [[62.5, -32.75]])")
assert y.dtype == torch.float32 and y.shape == (1, 2), (
    f"Return float32 of shape [1, 2] ([..., out]), got {y.dtype} {tuple(y.shape)}."
)
assert torch.allclose(y, torch.tensor([[62.5, -32.75]])), (
    "Codes [127, -2, 0] . [1, 2, 3] = 123 -> 123 * 1 * 0.5 + 1 = 62.5; "
    "[127, -2, 0] . [-1, 0, 1] = -127 -> -127 * 0.25 - 1 = -32.75."
)
torch.manual_seed(0)
x = torch.randn(4, 16)
w_q = torch.randint(-127, 128, (8, 16), dtype=torch.int8)
w_scale = torch.rand(8) / 100
y_float = x @ (w_q.float() * w_scale[:, None]).T
y = int8_linear(x, w_q, w_scale)
rel = ((y - y_float).norm() / y_float.norm()).item()
print(f"relative difference from the float product: {rel:.2e} (should be about 1e-2 or less)")
assert rel < 0.02, "Far from x @ (w_q * w_scale).T: check the scales (x_scale AND w_scale)."
### BEGIN HIDDEN TESTS
x = torch.full((2, 64), 127.0)  # codes 127: the int32 sum is 64 * 127 * 127 = 1 032 256
w_q = torch.full((3, 64), 127, dtype=torch.int8)
w_q[1] = -128
w_q[2, ::2] = -1
y = int8_linear(x, w_q, torch.ones(3))
exact = torch.tensor([64 * 127 * 127, -64 * 127 * 128, 32 * 127 * 127 - 32 * 127]).float()
assert torch.isfinite(y).all() and torch.equal(y, exact.expand(2, 3)), (
    f"Got {y[0].tolist()}, expected {exact.tolist()}: accumulate in int32. An int8 sum wraps "
    "around and a float16 sum overflows or rounds."
)
x = torch.tensor([[12.7, -0.5, 3.0], [0.3, 1.0, -6.35]])  # x_scale 0.1
w_q = torch.tensor([[10, -20, 30], [1, 1, 1], [-127, 0, 64]], dtype=torch.int8)  # square
w_scale = torch.tensor([0.5, 2.0, 0.01])
x_q = torch.round(x / 0.1).clamp(-128, 127)
ref = (x_q @ w_q.float().T) * 0.1 * w_scale
y = int8_linear(x.clone(), w_q, w_scale)
assert torch.allclose(y, ref, rtol=1e-5, atol=1e-5), (
    f"Got {y.tolist()}, expected {ref.tolist()}. Check: x quantized with ONE scale max|x| / 127 "
    "(not per row), torch.round, both scales applied, w_scale[j] multiplying output column j."
)
bias = torch.tensor([100.0, -3.0, 0.5])
y_b = int8_linear(x, w_q, w_scale, bias)
assert torch.allclose(y_b, ref + bias, rtol=1e-5, atol=1e-5), (
    "Add the float bias AFTER rescaling the int32 sums (do not scale or quantize the bias)."
)
ties = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5]])  # x_scale 1: codes [127, 0, 2, 2, 0, -2]
eye = torch.eye(6, dtype=torch.int8)
y = int8_linear(ties, eye, torch.ones(6))
assert y.tolist() == [[127.0, 0.0, 2.0, 2.0, 0.0, -2.0]], (
    f"Activation codes {y.tolist()} should be [127, 0, 2, 2, 0, -2]: use torch.round (halves to "
    "even), not floor, trunc or floor(x + 0.5)."
)
w_rect = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.int8)  # [out=2, in=3]
y = int8_linear(torch.tensor([[127.0, 0.0, 0.0]]), w_rect, torch.tensor([1.0, 10.0]))
assert torch.allclose(y, torch.tensor([[127.0, 5080.0]])), (
    "w_q is [out, in]: multiply by its transpose, and w_scale[j] scales output j."
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "int8_linear_edge_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
w_q = torch.tensor([[1, 2, 3], [-1, 0, 1]], dtype=torch.int8)
w_scale = torch.tensor([0.5, 0.25])
bias = torch.tensor([1.0, -1.0])
y0 = int8_linear(torch.zeros(2, 3), w_q, w_scale, bias)
print("all-zero x ->", y0.tolist())
assert torch.equal(y0, bias.expand(2, 2)), "An all-zero x must give exactly the bias (no NaN)."
x3 = torch.randn(2, 5, 3)
x3_before = x3.clone()
y3 = int8_linear(x3, w_q, w_scale)
assert torch.equal(x3, x3_before), "Do not modify x in place (no /=, no .div_())."
assert y3.shape == (2, 5, 2), (
    f"x [2, 5, 3] must give [2, 5, 2] ([..., out]), got {tuple(y3.shape)}."
)
try:
    int8_linear(torch.randn(2, 4), w_q, w_scale)
except ValueError:
    pass
else:
    raise AssertionError("x with 4 features and w_q [2, 3] must raise ValueError.")
### BEGIN HIDDEN TESTS
assert y3.dtype == torch.float32, "Return float32."
flat = int8_linear(x3.reshape(10, 3), w_q, w_scale).reshape(2, 5, 2)
assert torch.allclose(y3, flat), (
    "Batch dimensions share one x_scale: [2, 5, 3] must equal the [10, 3] result."
)
### END HIDDEN TESTS

# %% [markdown]
# **Your kernel on the teacher.** `Int8Linear` stores a Linear layer as your per-channel INT8 codes
# and scales and runs `int8_linear`. First one layer on real activations, then the whole teacher
# with every Linear layer replaced.


# %%
class Int8Linear(nn.Module):
    """A Linear layer stored as INT8 per-channel codes and run with ``int8_linear``: ``[..., in] -> [..., out]``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w_q, w_scale = quantize_per_channel(linear.weight.detach(), axis=0)
        self.register_buffer("w_q", w_q)
        self.register_buffer("w_scale", w_scale)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in] -> [..., out]`` through the integer matrix multiply."""
        return int8_linear(x, self.w_q, self.w_scale, self.bias)


def replace_linears(model: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.Linear`` replaced by ``make(linear)``."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, make(child))
    return model


if not GRADING:
    layer = teacher.blocks[0].ffn[2]
    acts = captured["blocks.0.ffn.2"]
    with torch.no_grad():
        y_fp32 = layer(acts)
    y_int8 = Int8Linear(layer)(acts)
    layer_err = relative_error(y_fp32, y_int8)
    own_int8 = replace_linears(teacher, Int8Linear).eval()
    own_acc = accuracy(own_int8, (test_images, test_labels))
    summary["int8_linear_layer_err"] = layer_err
    summary["own_int8_acc"] = own_acc
    print(f"blocks[0].ffn[2] on {len(acts)} test tokens: relative error {layer_err:.2%}")
    print(
        f"teacher with every Linear as Int8Linear: test accuracy {own_acc:.1%} (fp32 {fp32_acc:.1%})"
    )

# %% [markdown]
# ## 6. Fewer bits: the whole teacher
#
# Now every Linear weight of the teacher is fake-quantized, per tensor or per output channel, at 8
# bits and below (activations stay float). A $b$-bit symmetric grid has scale
# $\max|w| / (2^{b-1} - 1)$; to reuse your INT8 functions we append to each row one extra value
# $\max|w| \cdot 127 / (2^{b-1} - 1)$, so that your max-based scale becomes the $b$-bit scale, and drop it
# afterwards. Per-tensor is per-channel with a single channel (the flattened matrix).
#
# **How the size is counted.** "serialized" is the byte count of `torch.save` of the state dict in
# which every Linear weight is replaced by its `int8` codes plus `float32` scales (everything else
# stays `float32`), i.e. what you would ship. Codes of fewer than 8 bits are still stored one per byte
# there, so the serialized size does not shrink below 8 bits; the last column computes what bit
# packing the Linear codes ($b$ bits each) would give.


# %%
def fake_quantize(weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """``bits``-bit symmetric fake quantization of ``weight [out, in]`` with your INT8 functions."""
    rows = weight if per_channel else weight.reshape(1, -1)
    if bits < 8:  # one sentinel per row stretches the INT8 scale to the b-bit scale
        sentinel = rows.abs().amax(dim=1, keepdim=True) * 127 / (2 ** (bits - 1) - 1)
        rows = torch.cat([rows, sentinel], dim=1)
    q, scale = quantize_per_channel(rows, axis=0)
    w_hat = dequantize_per_channel(q, scale, axis=0)
    return (w_hat if bits == 8 else w_hat[:, :-1]).reshape(weight.shape)


def fake_quantized_model(model: nn.Module, bits: int, per_channel: bool) -> nn.Module:
    """A copy of ``model`` whose Linear weights are ``bits``-bit fake-quantized."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.copy_(fake_quantize(module.weight, bits, per_channel))
    return model


def int8_serialized_size(model: nn.Module, per_channel: bool) -> int:
    """Bytes of ``torch.save`` of the state dict with Linear weights as int8 codes + float32 scales."""
    linear_weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    state = {}
    for key, value in model.state_dict().items():
        if key in linear_weights:
            rows = value if per_channel else value.reshape(1, -1)
            q, scale = quantize_per_channel(rows, axis=0)
            state[key + "_q"], state[key + "_scale"] = q.reshape(value.shape), scale
        else:
            state[key] = value
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def packed_size(model: nn.Module, bits: int, per_channel: bool) -> int:
    """Computed bytes if Linear codes were bit-packed (``bits`` each) + float32 scales and the rest."""
    total = 0.0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, nn.Linear) and name == "weight":
                total += p.numel() * bits / 8 + 4 * (p.shape[0] if per_channel else 1)
            else:
                total += 4 * p.numel()
    return int(total)


if not GRADING:
    fp32_size = serialized_size(teacher)
    table = [
        ["fp32", "32", f"{fp32_acc:.1%}", f"{fp32_size / 1024:.1f}", f"{fp32_size / 1024:.1f}"]
    ]
    fake_models = {}
    for per_channel in (False, True):
        size = int8_serialized_size(teacher, per_channel)
        scheme = "per-channel" if per_channel else "per-tensor"
        for bits in FEWER_BITS:
            model = fake_quantized_model(teacher, bits, per_channel)
            fake_models[scheme, bits] = model
            acc = accuracy(model, (test_images, test_labels))
            summary[f"acc_{scheme.replace('-', '_')}_{bits}bit"] = acc
            table.append(
                [
                    scheme,
                    str(bits),
                    f"{acc:.1%}",
                    f"{size / 1024:.1f}",
                    f"{packed_size(teacher, bits, per_channel) / 1024:.1f}",
                ]
            )
    show_table(
        ["weights", "bits", "test accuracy", "serialized (KiB)", "bit-packed, computed (KiB)"],
        table,
    )

# %% [markdown]
# ## 7. Real INT8 kernels
#
# PyTorch ships INT8 kernels for the CPU (the `x86` quantized engine, built on FBGEMM and oneDNN).
# `torch.ao.quantization.quantize_dynamic` replaces every `nn.Linear` by a layer that stores INT8
# weights and, at every call, quantizes the incoming activations per tensor with a scale measured
# on the fly ("dynamic"), multiplies the integer codes with int32 accumulation and rescales: the
# idea of your `int8_linear`, with three differences. The activations get an affine grid (uint8
# codes and a zero point, from their min and max); the weights, by default, one scale per tensor;
# and the activations get only **7 bits**: codes 0 to 127, not 0 to 255 (the layer calls its
# kernel with `reduce_range=True`).
#
# Why throw a bit away? The accumulator of section 5, in silicon. FBGEMM's kernels for x86 CPUs
# without the VNNI extension multiply uint8 activations by int8 weights with the AVX2 instruction
# `vpmaddubsw`, which multiplies 8-bit pairs and adds each two neighbouring products into a
# **saturating int16** before they are widened and summed in int32. With 8-bit activations two
# products reach $2 \times 255 \times 128 = 65\,280$ in magnitude, far beyond int16's 32 767, and
# the sum would silently stick at the limit; with 7-bit activations they stay within
# $2 \times 127 \times 128 = 32\,512$. CPUs with VNNI (`vpdpbusd`) add four products straight
# into int32 and would not need the spare bit, but the layer reduces the range on every x86 CPU,
# so a model gives the same numbers on any of them. ARM CPUs (Apple silicon, for one) have no `x86`
# engine and run `qnnpack`, whose kernels do not need the spare bit. The cell checks which grid the
# kernel used on this machine by comparing one layer with two emulations of it: which did yours use?
#
# `torch.ao.quantization` now warns that it is deprecated in favour of the separate `torchao`
# package; we hide exactly that warning (and its companion about quantized tensors) in `dynamic_int8`
# below, and no other.
#
# Below: the original script's `ToyTransformer` at its default width (256) on one sequence of 16 tokens, and the
# digits teacher on a batch of test images, both on one thread (the cell also times the teacher
# variants of section 8 in the same rounds). The size ratio is fp32 bytes over
# INT8 bytes (`serialized_size`), the speed-up is fp32 latency over INT8 latency (`measure_latency`,
# median of many calls after a warm-up, best of three rounds). Note what `quantize_dynamic` skips:
# `nn.MultiheadAttention` keeps its packed `in_proj_weight` (a bare parameter) and its `out_proj`
# in fp32, so only the ToyTransformer's FFN can approach the 4x saving of 8-bit weights; its own
# row shows how close it gets.

# %%
DEPRECATED_AO = r"torch\.ao\.quantization is deprecated"
DEPRECATED_QTENSOR = r"torch\.quantize_per_tensor, torch\.quantize_per_channel"


def dynamic_int8(model: nn.Module, per_channel: bool = False) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers run PyTorch's dynamic INT8 kernels."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    spec = {nn.Linear: per_channel_dynamic_qconfig} if per_channel else {nn.Linear}
    with warnings.catch_warnings():  # hide only the two deprecation notices, nothing else
        warnings.filterwarnings("ignore", message=DEPRECATED_AO, category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=DEPRECATED_QTENSOR, category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def best_latency(
    models: dict[str, nn.Module], *inputs: torch.Tensor, rounds: int = 3
) -> dict[str, float]:
    """Best-of-``rounds`` median latency (s) of each model, measured in interleaved rounds."""
    times = {name: float("inf") for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name] = min(
                times[name], measure_latency(model, *inputs, min_run_time=BENCH_SECONDS)
            )
    return times


def emulate_dynamic_linear(int8_layer: nn.Module, x: torch.Tensor, act_bits: int) -> torch.Tensor:
    """A dynamic INT8 Linear in float: ``act_bits``-bit affine activations, its stored weight codes."""
    x_hat = dequantize_affine(*quantize_affine(x, num_bits=act_bits))
    return x_hat @ int8_layer.weight().dequantize().T + int8_layer.bias()


if not GRADING:
    engines = torch.backends.quantized.supported_engines  # ARM CPUs have only qnnpack
    torch.backends.quantized.engine = "x86" if "x86" in engines else "qnnpack"
    print("quantized engine:", torch.backends.quantized.engine)
    summary["quantized_engine"] = torch.backends.quantized.engine
    set_seed(SEED)
    toy = ToyTransformer().eval()
    toy_int8 = dynamic_int8(toy)
    toy_x = torch.randn(1, 16, toy.hidden_size)
    teacher_int8 = dynamic_int8(teacher)
    # which activation grid did the kernel use? compare it with 7-bit and 8-bit emulations
    kernel_layer, gelu_acts = teacher_int8.blocks[0].ffn[2], captured["blocks.0.ffn.2"]
    y_kernel = kernel_layer(gelu_acts)
    emulation_err = {
        bits: relative_error(y_kernel, emulate_dynamic_linear(kernel_layer, gelu_acts, bits))
        for bits in (7, 8)
    }
    act_bits = min(emulation_err, key=emulation_err.get)
    print(
        f"blocks[0].ffn[2] as dynamic INT8: relative difference {emulation_err[7]:.1e} from a "
        f"7-bit emulation, {emulation_err[8]:.1e} from an 8-bit one: activations got {act_bits} bits"
    )
    summary["dynamic_int8_act_bits"] = act_bits
    summary["dynamic_int8_emulation_err_7bit"] = emulation_err[7]
    summary["dynamic_int8_emulation_err_8bit"] = emulation_err[8]
    teacher_x = test_images[:LATENCY_BATCH]
    toy_t = best_latency({"fp32": toy, "int8": toy_int8}, toy_x)
    # every teacher variant that runs its own kernels, timed in the same interleaved rounds
    # (section 8 reuses these numbers)
    teacher_variants = {
        "fp32": teacher,
        "Int8Linear (your int8_linear)": own_int8,
        "dynamic INT8, per-tensor (x86)": teacher_int8,
        "dynamic INT8, per-channel (x86)": dynamic_int8(teacher, per_channel=True),
    }
    teacher_latency = best_latency(teacher_variants, teacher_x)
    teacher_t = {
        "fp32": teacher_latency["fp32"],
        "int8": teacher_latency["dynamic INT8, per-tensor (x86)"],
    }
    rows = []
    for name, fp32_model, int8_model, t in (
        ("ToyTransformer(256), whole model", toy, toy_int8, toy_t),
        ("ToyTransformer(256), FFN only", toy.ffn, toy_int8.ffn, None),
        ("digits teacher", teacher, teacher_int8, teacher_t),
    ):
        ratio = serialized_size(fp32_model) / serialized_size(int8_model)
        speed = "" if t is None else f"{t['fp32'] * 1e3:.3f} / {t['int8'] * 1e3:.3f} ms"
        speedup = "" if t is None else f"{t['fp32'] / t['int8']:.2f}x"
        rows.append(
            [
                name,
                f"{serialized_size(fp32_model) / 1024:.0f} / {serialized_size(int8_model) / 1024:.0f} KiB",
                f"{ratio:.2f}x",
                speed,
                speedup,
            ]
        )
    show_table(["model", "size fp32 / INT8", "size ratio", "latency fp32 / INT8", "speed-up"], rows)
    summary["dynamic_int8_size_ratio_toy"] = serialized_size(toy) / serialized_size(toy_int8)
    summary["dynamic_int8_size_ratio_toy_ffn"] = serialized_size(toy.ffn) / serialized_size(
        toy_int8.ffn
    )
    summary["dynamic_int8_speedup_toy"] = toy_t["fp32"] / toy_t["int8"]
    summary["dynamic_int8_size_ratio_teacher"] = serialized_size(teacher) / serialized_size(
        teacher_int8
    )
    summary["dynamic_int8_speedup_teacher"] = teacher_t["fp32"] / teacher_t["int8"]

# %% [markdown]
# **Where does INT8 start to pay?** Dynamic quantization adds work per call (measuring and
# quantizing the activations, rescaling the outputs) and can save work per multiply-add. The
# figure times FFN blocks `Linear(H, 4H) - GELU - Linear(4H, H)` on one sequence of 16 tokens (one
# thread) for growing widths $H$; the dashed line marks "as fast as fp32". On this CPU, from which
# width on is INT8 faster, and where do the teacher and the ToyTransformer sit?

# %%
if not GRADING:
    speedups = []
    for width in tqdm(SWEEP_WIDTHS, desc="widths", leave=False):
        set_seed(SEED)
        ffn = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        ).eval()
        t = best_latency(
            {"fp32": ffn, "int8": dynamic_int8(ffn)}, torch.randn(1, SWEEP_TOKENS, width), rounds=2
        )
        speedups.append(t["fp32"] / t["int8"])
        summary[f"dynamic_int8_speedup_ffn_{width}"] = speedups[-1]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(SWEEP_WIDTHS, speedups, "o-", color="C0", label=f"FFN, {SWEEP_TOKENS} tokens, 1 thread")
    ax.axhline(1.0, color="grey", ls="--", label="break-even (fp32 = INT8)")
    ax.axvline(teacher.config["width"], color="C3", ls=":", label="digits teacher width")
    ax.axvline(toy.hidden_size, color="C2", ls=":", label="ToyTransformer width")
    ax.set_xscale("log", base=2)
    ax.set(
        title="dynamic INT8 speed-up over fp32 vs width",
        xlabel="hidden width H (features)",
        ylabel="fp32 latency / INT8 latency (x)",
        xticks=list(SWEEP_WIDTHS),
        xticklabels=[str(w) for w in SWEEP_WIDTHS],
    )
    ax.legend()
    plt.show()

# %% [markdown]
# ## 8. The trade-off
#
# All variants of the teacher side by side, measured in this run on the digits test set (accuracy)
# and on a batch of test images on one thread (latency, from section 7, where all teacher variants
# were timed in the same interleaved rounds). The fake-quantized models compute in fp32 with the
# teacher's kernels, so their rows repeat the fp32 latency: they show the accuracy an INT8 model
# would have and the size it would ship at, not a speed-up. Your `Int8Linear` really multiplies
# integers, but through PyTorch's generic int32 matrix multiply, not an optimized INT8 kernel. Only
# the `quantize_dynamic` rows use real INT8 kernels. The cell ends with a few conclusions computed
# from these measurements.

# %%
if not GRADING:
    variants = {
        "fp32": teacher,
        "fake INT8 per-tensor": fake_models["per-tensor", 8],
        "fake INT8 per-channel": fake_models["per-channel", 8],
    } | {name: model for name, model in teacher_variants.items() if name != "fp32"}
    sizes = {name: serialized_size(model) for name, model in variants.items()}
    sizes["fake INT8 per-tensor"] = int8_serialized_size(teacher, per_channel=False)
    sizes["fake INT8 per-channel"] = int8_serialized_size(teacher, per_channel=True)
    # measured in section 7; fake-quantized models run the teacher's fp32 kernels: same latency
    latencies = dict(teacher_latency)
    latencies["fake INT8 per-tensor"] = latencies["fake INT8 per-channel"] = latencies["fp32"]
    accuracies = {
        name: accuracy(model, (test_images, test_labels)) for name, model in variants.items()
    }
    rows = [
        [
            name,
            f"{accuracies[name]:.1%}",
            f"{sizes[name] / 1024:.1f}",
            f"{sizes['fp32'] / sizes[name]:.2f}x",
            f"{latencies[name] * 1e3:.2f}",
            f"{latencies['fp32'] / latencies[name]:.2f}x",
        ]
        for name in variants
    ]
    show_table(
        [
            "teacher",
            "test accuracy",
            "size (KiB)",
            "smaller",
            f"latency (ms / {LATENCY_BATCH} images)",
            "speed-up",
        ],
        rows,
    )
    summary["teacher_int8_acc"] = accuracies["dynamic INT8, per-tensor (x86)"]
    summary["teacher_int8_size_ratio"] = sizes["fp32"] / sizes["dynamic INT8, per-tensor (x86)"]
    summary["teacher_int8_speedup"] = (
        latencies["fp32"] / latencies["dynamic INT8, per-tensor (x86)"]
    )
    summary["own_int8_speedup"] = latencies["fp32"] / latencies["Int8Linear (your int8_linear)"]

    def fewest_bits(scheme: str, tolerance: float = 0.01) -> int:
        """Fewest bits whose fake-quantized teacher stays within ``tolerance`` of fp32 accuracy."""
        key = scheme.replace("-", "_")
        ok = [b for b in FEWER_BITS if summary[f"acc_{key}_{b}bit"] >= fp32_acc - tolerance]
        return min(ok) if ok else 32

    faster = [w for w, s in zip(SWEEP_WIDTHS, speedups, strict=True) if s > 1]
    slower = [w for w in SWEEP_WIDTHS if w not in faster]
    print("Computed from this run:")
    for scheme in ("per-tensor", "per-channel"):
        print(f"- {scheme} weights keep accuracy within 1 point down to {fewest_bits(scheme)} bits")
    print(
        f"- dynamic INT8 teacher: {summary['teacher_int8_size_ratio']:.2f}x smaller, "
        f"{summary['teacher_int8_speedup']:.2f}x the fp32 speed (width {teacher.config['width']})"
    )
    print(f"- FFN sweep: dynamic INT8 faster than fp32 at widths {faster}, not at {slower}")

# %% [markdown]
# **Reading the tables.** Check with the numbers printed above: how many bits does each weight
# scheme need before accuracy drops? Which of the size ratios come close to the 4x of 8-bit
# weights, and what keeps the others below it (scales, zero points, layers left in fp32)? Where
# does the teacher's width sit in the latency sweep, and what does that predict for its speed-up?
# These numbers are measured again every time the notebook runs, on whatever CPU runs it.

# %% tags=["summary"]
summary["run_seconds"] = round(time.perf_counter() - STARTED, 1)
print(json.dumps(summary))
