# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Notebook 4, the capstone: compress one model end to end
#
# Notebooks 1 to 3 each taught one technique on its own. Real compression combines them, in an
# order you choose (Part 3 measures two). Here you start from the course's digits teacher with
# one goal: **the smallest and fastest model that keeps test accuracy within 1 point of the
# teacher**. On the way you add what the first three notebooks left out:
#
# 1. **quantization-aware training** (QAT): train *through* the rounding, with the straight-through
#    estimator of Bengio, Léonard and Courville (2013), as Jacob et al. (2018) do, and compare it
#    with the post-training quantization (PTQ) of notebook 3 at 8, 4, 3 and 2 bits;
# 2. **multi-path distillation**: a student that imitates the teacher's hidden states and attention
#    maps, not only its outputs (FitNets, Romero et al. 2015; TinyBERT, Jiao et al. 2020);
# 3. **the full chain**: prune heads, recover with distillation, quantize, in two orders;
# 4. **the trade-off**: every model in one measured table and its Pareto front.
#
# Each part ends with measured rows of one table: parameters, serialized bytes, peak memory of one
# forward pass, latency of one image and of a batch, test accuracy.
#
# **Release order.** This notebook is released after notebooks 1 to 3 are due: one cell below holds
# the reference answers of notebooks 1 and 2 (`head_importance`, `prune_heads`, `prune_model`,
# `kd_loss`), copied from the instructor's solutions when the notebook was released.
#
# **How to start.** Open this notebook from JupyterLab started with `make lab` in the repository
# root (it creates `.venv` and installs the course package `lab_utils`) and pick the kernel
# "Python 3". Run the cells from the top; a laptop CPU is all it needs. The last cell prints the
# measured results, among them `run_seconds`: how many seconds the whole notebook took on your
# machine.
#
# **Exercises.** Five pieces to write, each in a cell marked `# YOUR CODE HERE`; run the test cell
# right below it: it prints what it compared, and an `AssertionError` message tells you what to
# fix. The graders run more (hidden) tests of the same behaviour, so read each docstring carefully:
# they test only what the docstring states. Two written questions are graded by hand.
#
# | exercise | function | points |
# | --- | --- | --- |
# | 1 | `fake_quantize_ste(weight, num_bits, per_channel=True)` | 3 |
# | 2a | `QuantLinear(linear, num_bits, per_channel=True)` | 2 |
# | 2b | `quantize_model(model, num_bits, per_channel=True)` | 2 |
# | 3 | `multipath_kd_loss(student, teacher, labels, projection=None, ...)` | 4 |
# | 4 | `pareto_front(points)` | 3 |
# | written | which order of the steps worked, and why | 2 |
# | written | which model you would ship under a latency budget | 2 |
# | | **total** | **18** |

# %%
import copy
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn
from tqdm.auto import tqdm

try:
    import lab_utils  # noqa: F401
except ImportError as err:
    raise ImportError(
        "lab_utils is not importable: start JupyterLab with `make lab` from the repo root "
        "(it installs the course into .venv) and choose the 'Python 3' kernel."
    ) from err
from lab_utils import (
    DigitsTransformer,
    Internals,
    accuracy,
    count_parameters,
    full_batch,
    load_teacher,
    measure_latency,
    peak_forward_memory,
    serialized_size,
    set_seed,
    use_course_style,
)

GRADING = "NBGRADER_EXECUTION" in os.environ  # nbgrader sets it: the demos below are skipped
if not GRADING:  # only the demos draw, and importing pyplot costs a third of torch's import
    import matplotlib.pyplot as plt
torch.set_num_threads(1)  # tiny models: one thread is fastest, and all timings use one thread
set_seed(0)
use_course_style()
summary: dict[str, float | int | str] = {}  # key measured results, printed by the last cell

STARTED = time.perf_counter()  # the summary reports the whole run's seconds

# %% tags=["parameters"]
SEEDS = (0, 1, 2)  # training seeds of the PTQ / QAT comparison (more seeds, more minutes)
STUDENT_SEEDS = (0, 1)  # training seeds of the student comparison (each one trains 3 students)
BITS = (8, 4, 3, 2)  # weight bit widths of the PTQ / QAT comparison
QAT_BATCHES = 10  # batches of quantization-aware fine-tuning (half an epoch)
QAT_LR = 5e-4  # fine-tuning a trained model: small steps; decays to 0 along a cosine
STUDENT_CONFIG = dict(width=32, num_heads=4, num_layers=1, ffn_width=64)  # patch 2, as the teacher
STUDENT_EPOCHS = 5
STUDENT_LR = 1e-2
TEMPERATURE = 4.0
ALPHA = 0.9
HEADS_TO_PRUNE = 8  # of the teacher's 16
RECOVER_EPOCHS = 1  # epochs of distillation after pruning
RECOVER_LR = 1e-3
CHAIN_BITS = 4
BATCH_SIZE = 64
LATENCY_BATCH = 64  # images per call for the batch latency and the peak memory
BENCH_SECONDS = 0.03  # min_run_time of each latency measurement (median of many calls)


# %%
def expect_value_error(call: Callable[[], object], what: str) -> None:
    """Run ``call()``; fail with a readable message unless it raises ``ValueError``."""
    try:
        call()
    except ValueError as err:
        print(f"ValueError for {what}: {err}")
        return
    raise AssertionError(f"Expected a ValueError for {what}, but nothing was raised.")


def show_table(header: list[str], rows: list[list[str]]) -> None:
    """Display a markdown table: one header row, then rows of already formatted strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# %% [markdown]
# The reference answers of notebooks 1 and 2, exactly as the instructor wrote them (read-only):

# %% nbgrader={"grade": false, "grade_id": "earlier_answers", "locked": true, "schema_version": 3, "solution": false}
from course_tools.provided import head_importance, kd_loss, prune_heads, prune_model  # noqa: F401

# %% [markdown]
# ## Part 0. The teacher, measured
#
# Every model of this notebook gets one row of the same table. Latency is the median of many calls
# after a warm-up, on one thread, for one image and for a batch of `LATENCY_BATCH` test images.
# Peak memory is `lab_utils.peak_forward_memory`: the largest total of tensors that one forward
# pass on that batch keeps alive at once (its activations; the weights are in the bytes column).

# %%
MODELS: dict[str, dict[str, float | int]] = {}  # every measured row, by model name


def measure(
    name: str, model: nn.Module, params: int | None, x_test: torch.Tensor, y_test: torch.Tensor
) -> None:
    """Measure ``model`` and add its row to ``MODELS`` (``params``: None counts its parameters)."""
    batch = x_test[:LATENCY_BATCH]
    MODELS[name] = dict(
        params=count_parameters(model) if params is None else params,
        bytes=serialized_size(model),
        peak_memory=peak_forward_memory(model, batch),
        latency_one=measure_latency(model, x_test[:1], min_run_time=BENCH_SECONDS),
        latency_batch=measure_latency(model, batch, min_run_time=BENCH_SECONDS),
        acc=accuracy(model, (x_test, y_test)),
    )


def show_models() -> None:
    """Display every row of ``MODELS`` measured so far."""
    base = next(iter(MODELS.values()))
    rows = [
        [
            row_name,
            f"{row['params']:,}",
            f"{row['bytes'] / 1024:.1f} ({base['bytes'] / row['bytes']:.1f}x smaller)",
            f"{row['peak_memory'] / 1024:.0f}",
            f"{row['latency_one'] * 1e3:.3f}",
            f"{row['latency_batch'] * 1e3:.2f}",
            f"{row['acc']:.1%}",
        ]
        for row_name, row in MODELS.items()
    ]
    header = ["model", "parameters", "serialized KiB", "peak memory KiB"]
    header += ["latency ms, 1 image", f"latency ms, {LATENCY_BATCH} images", "test accuracy"]
    show_table(header, rows)


if not GRADING:
    teacher = load_teacher()
    x_train, y_train = full_batch("train")
    x_val, y_val = full_batch("val")
    x_test, y_test = full_batch("test")
    measure("teacher (fp32)", teacher, None, x_test, y_test)
    show_models()
    teacher_acc = MODELS["teacher (fp32)"]["acc"]
    summary["teacher_acc"] = teacher_acc

# %% [markdown]
# ## Part 1. Quantization-aware training
#
# **Intuition.** Post-training quantization (PTQ, notebook 3) rounds the trained weights once; the
# network never learns to live with the rounding. Quantization-aware training (QAT) puts the
# rounding *into* the forward pass while training, so the weights move to where the rounded model
# works well. The model keeps its float weights: every forward pass uses their rounded copy, and the
# gradient updates the float weights.
#
# **The maths.** Symmetric $b$-bit quantization with scale $s = \max|w| / q_{\max}$,
# $q_{\max} = 2^{b-1} - 1$ (one scale per tensor, or per output row):
#
# $$
# \hat w = s \cdot \mathrm{clamp}\big(\mathrm{round}(w / s),\, -q_{\max},\, q_{\max}\big) .
# $$
#
# Rounding is flat almost everywhere, so its true gradient is zero and nothing would learn. The
# **straight-through estimator** (STE) pretends the quantizer is the identity in the backward pass:
# $\partial \hat w / \partial w := 1$. In PyTorch this is one line: `w + (w_hat - w).detach()` has
# the value `w_hat` and the gradient of `w`.
#
# ### Exercise 1 (3 points): fake quantization with a straight-through gradient


# %% nbgrader={"grade": false, "grade_id": "fake_quantize_ste_answer", "locked": false, "schema_version": 3, "solution": true}
def fake_quantize_ste(
    weight: torch.Tensor, num_bits: int, per_channel: bool = True
) -> torch.Tensor:
    """Symmetric ``num_bits`` fake quantization whose gradient is the identity (straight-through).

    Inputs:
        weight: float tensor ``[out_features, in_features]`` (may require grad); not modified.
        num_bits: int in ``2 .. 8``; the codes are the integers ``-q_max .. q_max`` with
            ``q_max = 2**(num_bits - 1) - 1``.
        per_channel: True: one scale per row (output channel), ``max |row| / q_max``; False: one
            scale for the whole tensor, ``max |weight| / q_max``. A row (or tensor) of zeros has
            scale 0 and stays zero (no NaN).
    Returns:
        A tensor of ``weight``'s shape and dtype whose value is ``scale * round(weight / scale)``
        (clamped to ``-q_max .. q_max``) and whose gradient with respect to ``weight`` is the
        identity: ``d output / d weight = 1`` element by element, nothing flows to the scales.
    Raises:
        ValueError: if ``num_bits`` is not an int in ``2 .. 8``, or ``weight`` is not 2-D.
    """
    ### BEGIN SOLUTION
    if isinstance(num_bits, bool) or not isinstance(num_bits, int) or not 2 <= num_bits <= 8:
        raise ValueError(f"num_bits must be an int in 2..8, got {num_bits!r}.")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D [out, in], got shape {list(weight.shape)}.")
    q_max = 2 ** (num_bits - 1) - 1
    w = weight.detach()
    peak = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().max()
    scale = peak / q_max
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    w_hat = torch.clamp(torch.round(w / safe), -q_max, q_max) * scale
    return weight + (w_hat - weight).detach()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "fake_quantize_ste_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
w = torch.tensor([[0.7, -0.2, 0.05], [-3.0, 1.0, 2.0]], requires_grad=True)
got = fake_quantize_ste(w, num_bits=3)  # q_max = 3: row scales 0.7/3 and 3/3
expected = torch.tensor([[0.7, -0.7 / 3, 0.0], [-3.0, 1.0, 2.0]])
print("3-bit per-channel:\n", got.detach())
assert tuple(got.shape) == (2, 3) and got.dtype == w.dtype, "Keep the weight's shape and dtype."
assert torch.allclose(got.detach(), expected, atol=1e-6), (
    f"Expected {expected.tolist()}: scale = max|row| / (2**(b-1) - 1), round, multiply back."
)
per_tensor = fake_quantize_ste(w, num_bits=3, per_channel=False)  # one scale 3/3 = 1
print("3-bit per-tensor:\n", per_tensor.detach())
assert torch.allclose(per_tensor.detach(), torch.tensor([[1.0, 0.0, 0.0], [-3.0, 1.0, 2.0]])), (
    "per_channel=False uses ONE scale, max |weight| / q_max, for the whole tensor."
)
upstream = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
(got * upstream).sum().backward()
print("gradient of sum(output * g) with respect to the weight:\n", w.grad)
assert w.grad is not None and torch.equal(w.grad, upstream), (
    "The gradient must pass straight through: d output / d weight = 1 (use the detach trick)."
)
### BEGIN HIDDEN TESTS
torch.manual_seed(0)
big = torch.randn(6, 10)
for bits in (2, 4, 8):
    q_max = 2 ** (bits - 1) - 1
    for per_channel in (True, False):
        scale = (big.abs().amax(dim=1, keepdim=True) if per_channel else big.abs().max()) / q_max
        ref = torch.round(big / scale) * scale
        out = fake_quantize_ste(big, bits, per_channel=per_channel)
        codes = out / scale
        assert torch.allclose(codes, codes.round(), atol=1e-4), (
            f"{bits} bits, per_channel={per_channel}: the output is not on the grid "
            "scale * integer: scale = max|w| / (2**(bits-1) - 1), per ROW when per_channel."
        )
        assert codes.abs().max() <= q_max + 1e-4, (
            f"{bits} bits: codes must stay within -{q_max}..{q_max} (symmetric, q_max = "
            "2**(bits-1) - 1)."
        )
        assert torch.allclose(out, ref, atol=1e-6), (
            f"{bits} bits, per_channel={per_channel}: values differ from round(w / s) * s "
            "(round to nearest, not floor; one scale per row when per_channel)."
        )
leaf = big.clone().requires_grad_()
g = torch.randn(6, 10)
(fake_quantize_ste(leaf, 4) * g).sum().backward()
assert torch.allclose(leaf.grad, g), (
    "The gradient differs from the identity at some entries (often the largest |w| of a row): "
    "compute the scale from weight.detach() so that nothing flows through it."
)
zero_row = torch.cat([torch.zeros(1, 4), torch.ones(1, 4)])
out = fake_quantize_ste(zero_row, 4)
assert not torch.isnan(out).any() and torch.equal(out[0], torch.zeros(4)), (
    "A row of zeros has scale 0: return zeros there, not NaN (avoid dividing by 0)."
)
assert not torch.isnan(fake_quantize_ste(torch.zeros(3, 3), 4, per_channel=False)).any(), (
    "An all-zero tensor must give zeros, not NaN."
)
before = big.clone()
fake_quantize_ste(big, 3)
assert torch.equal(big, before), "fake_quantize_ste changed its input: return a new tensor."
double = fake_quantize_ste(big.double(), 4)
assert double.dtype == torch.float64, "Return the input's dtype."
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "fake_quantize_ste_errors_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
expect_value_error(lambda: fake_quantize_ste(torch.ones(2, 2), num_bits=1), "num_bits=1")
expect_value_error(lambda: fake_quantize_ste(torch.ones(2, 2), num_bits=9), "num_bits=9")
### BEGIN HIDDEN TESTS
expect_value_error(lambda: fake_quantize_ste(torch.ones(2, 2), num_bits=0), "num_bits=0")
expect_value_error(lambda: fake_quantize_ste(torch.ones(2, 2), num_bits=4.0), "num_bits=4.0")
expect_value_error(lambda: fake_quantize_ste(torch.ones(4), num_bits=4), "a 1-D weight")
for bits in (2, 8):
    try:
        fake_quantize_ste(torch.ones(2, 2), num_bits=bits)
    except ValueError as exc:
        raise AssertionError(f"num_bits={bits} is allowed (2..8 inclusive).") from exc
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2a (2 points): a Linear layer that trains through its quantizer
#
# `QuantLinear` keeps a trainable float copy of a Linear layer's weight and bias; its forward pass
# uses the fake-quantized weight. Build it from an existing `nn.Linear` without sharing memory with
# it: the original model must stay as it was while the copy trains.


# %% nbgrader={"grade": false, "grade_id": "quant_linear_answer", "locked": false, "schema_version": 3, "solution": true}
class QuantLinear(nn.Module):
    """A Linear layer ``[..., in] -> [..., out]`` whose forward pass uses its fake-quantized weight.

    Inputs (constructor):
        linear: an ``nn.Linear``; left unchanged, and nothing is shared with it.
        num_bits: int in ``2 .. 8``; per_channel: as in ``fake_quantize_ste``.
    Attributes:
        weight: ``nn.Parameter [out, in]``, a copy of ``linear.weight`` (the float weight that
            training updates); bias: ``nn.Parameter [out]``, a copy of ``linear.bias``, or None when
            ``linear`` has no bias; num_bits, per_channel, in_features, out_features as given.
        These two are the module's only parameters.
    Forward:
        ``x [..., in]`` -> ``x @ fake_quantize_ste(weight, num_bits, per_channel).T + bias``,
        quantizing the *current* weight at every call.
    Raises:
        ValueError: if ``num_bits`` is not an int in ``2 .. 8`` (when constructed).
    """

    ### BEGIN SOLUTION
    def __init__(self, linear: nn.Linear, num_bits: int, per_channel: bool = True) -> None:
        super().__init__()
        fake_quantize_ste(linear.weight.detach()[:1], num_bits)  # validates num_bits
        self.num_bits, self.per_channel = num_bits, per_channel
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().clone())
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in] -> [..., out]`` with the fake-quantized weight."""
        return F.linear(
            x, fake_quantize_ste(self.weight, self.num_bits, self.per_channel), self.bias
        )

    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "quant_linear_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
torch.manual_seed(0)
linear = nn.Linear(5, 3)
linear_before = copy.deepcopy(linear)
layer = QuantLinear(linear, num_bits=4)
x = torch.randn(2, 7, 5)
expected = F.linear(x, fake_quantize_ste(linear.weight.detach(), 4), linear.bias.detach())
err = (layer(x) - expected).abs().max().item()
print(f"max |QuantLinear(x) - x @ fake_quantize_ste(W).T - b| = {err:.1e} (should be < 1e-6)")
assert err < 1e-6, "forward must use fake_quantize_ste(self.weight, num_bits, per_channel)."
names = sorted(name for name, _ in layer.named_parameters())
print("parameters:", names)
assert names == ["bias", "weight"], "Keep exactly two parameters: weight and bias (float copies)."
layer(x).sum().backward()
assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0, (
    "No gradient reached QuantLinear.weight: keep it an nn.Parameter and quantize with the STE."
)
with torch.no_grad():
    layer.weight.add_(0.3)
assert torch.equal(linear.weight, linear_before.weight), (
    "Changing QuantLinear.weight changed the original nn.Linear: copy the tensors (clone)."
)
### BEGIN HIDDEN TESTS
torch.manual_seed(1)
lin = nn.Linear(6, 4)
ql = QuantLinear(lin, num_bits=3, per_channel=False)
assert (ql.num_bits, ql.per_channel, ql.in_features, ql.out_features) == (3, False, 6, 4), (
    "Keep num_bits, per_channel, in_features and out_features as attributes."
)
xs = torch.randn(8, 6)
ref = F.linear(xs, fake_quantize_ste(lin.weight.detach(), 3, per_channel=False), lin.bias.detach())
assert torch.allclose(ql(xs), ref, atol=1e-6), "per_channel=False must reach fake_quantize_ste."
delta = torch.linspace(-0.3, 0.3, 24).view(4, 6)
with torch.no_grad():
    ql.weight.add_(delta)
ref2 = F.linear(xs, fake_quantize_ste(lin.weight.detach() + delta, 3, per_channel=False), lin.bias)
assert torch.allclose(ql(xs), ref2, atol=1e-5), (
    "After the float weight changes, forward must quantize the NEW weight: quantize at every "
    "call, not once in __init__."
)
up = torch.randn(8, 4)
ql.zero_grad()
(ql(xs) * up).sum().backward()
assert torch.allclose(ql.weight.grad, up.T @ xs, atol=1e-5), (
    "The weight's gradient must be what a Linear with the quantized weight gives (STE)."
)
assert torch.allclose(ql.bias.grad, up.sum(0), atol=1e-5), "The bias must be a trainable copy."
with torch.no_grad():
    ql.bias.add_(1.0)
assert not torch.equal(ql.bias, lin.bias), "The bias is shared with the original: clone it."
no_bias = QuantLinear(nn.Linear(3, 2, bias=False), num_bits=8)
assert no_bias.bias is None and no_bias(torch.randn(4, 3)).shape == (4, 2), (
    "A Linear without bias gives a QuantLinear whose bias is None."
)
expect_value_error(lambda: QuantLinear(nn.Linear(3, 2), num_bits=1), "QuantLinear with 1 bit")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2b (2 points): quantize a whole model
#
# Swap every `nn.Linear` of a model, at any depth (the attention projections inside each block
# too), for a `QuantLinear`, in a copy.


# %% nbgrader={"grade": false, "grade_id": "quantize_model_answer", "locked": false, "schema_version": 3, "solution": true}
def quantize_model(model: nn.Module, num_bits: int, per_channel: bool = True) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear``, at any depth, replaced by a ``QuantLinear``.

    Inputs:
        model: any ``nn.Module``; left unchanged (same modules, same weights).
        num_bits, per_channel: passed to every ``QuantLinear``.
    Returns:
        A new module of the same class whose ``nn.Linear`` layers are now
        ``QuantLinear(layer, num_bits, per_channel)`` built from the copy's layers, and whose other
        modules and parameters are copies (training it never changes ``model``).
    Raises:
        ValueError: if ``num_bits`` is not an int in ``2 .. 8``.
    """
    ### BEGIN SOLUTION
    fake_quantize_ste(torch.zeros(1, 1), num_bits)  # validates num_bits, even without a Linear
    model = copy.deepcopy(model)

    def swap(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, QuantLinear(child, num_bits, per_channel))
            else:
                swap(child)

    swap(model)
    return model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "quantize_model_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check_model = load_teacher()
check_state = {k: v.clone() for k, v in check_model.state_dict().items()}
quantized = quantize_model(check_model, num_bits=8)
kinds = {type(m).__name__ for m in quantized.modules()}
linears = sum(isinstance(m, nn.Linear) for m in check_model.modules())
swapped = sum(isinstance(m, QuantLinear) for m in quantized.modules())
print(f"nn.Linear in the teacher: {linears}; QuantLinear in the copy: {swapped}")
assert quantized is not check_model and not any(
    isinstance(m, nn.Linear) for m in quantized.modules()
), (
    "Every nn.Linear, at any depth (blocks[i].attn.q_proj, blocks[i].ffn[0], ...), must be swapped "
    "in a copy."
)
assert swapped == linears, f"Expected {linears} QuantLinear layers, got {swapped}."
check_x = full_batch("val")[0][:32]
with torch.no_grad():
    gap = (quantized(check_x) - check_model(check_x)).abs().max().item()
print(f"8-bit teacher vs fp32 teacher, max logit difference: {gap:.3f} (small, not zero)")
assert 0 < gap < 0.5, "At 8 bits the quantized teacher's logits should be close to the teacher's."
assert all(torch.equal(check_state[k], v) for k, v in check_model.state_dict().items()), (
    "quantize_model changed its input model: work on copy.deepcopy(model)."
)
### BEGIN HIDDEN TESTS
q2 = quantize_model(check_model, num_bits=2, per_channel=False)
layers = [m for m in q2.modules() if isinstance(m, QuantLinear)]
assert all(m.num_bits == 2 and m.per_channel is False for m in layers), (
    "Pass num_bits and per_channel to every QuantLinear."
)
assert isinstance(q2, DigitsTransformer) and q2.heads_per_layer() == [8, 8], (
    "Return the same class of model, with the same structure."
)
optimizer = torch.optim.SGD(q2.parameters(), lr=0.1)
loss = F.cross_entropy(q2(check_x), full_batch("val")[1][:32])
loss.backward()
optimizer.step()
assert all(torch.equal(check_state[k], v) for k, v in check_model.state_dict().items()), (
    "Training the quantized copy changed the original model: the copy must share nothing with it."
)
nested = nn.Sequential(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), nn.Linear(3, 2))
qn = quantize_model(nested, num_bits=4)
assert isinstance(qn[0][0], QuantLinear) and isinstance(qn[1], QuantLinear), (
    "Linear layers nested inside containers must be swapped too."
)
assert isinstance(nested[0][0], nn.Linear), "The input model must keep its nn.Linear layers."
expect_value_error(lambda: quantize_model(nested, num_bits=9), "quantize_model with 9 bits")
### END HIDDEN TESTS

# %% [markdown]
# ### PTQ versus QAT, 8 to 2 bits
#
# For each bit width and scheme: **PTQ** is `quantize_model(teacher, bits)` as it is (the rounding
# of notebook 3, with your functions); **QAT** fine-tunes that model through the quantizer, once
# per training seed (the seed changes the order of the batches). The recipe is the usual one for
# fine-tuning a trained model: start from the float teacher's weights, take small steps
# (`QAT_LR`, a twentieth of the students' learning rate in Part 2, decaying to 0 along a cosine)
# for `QAT_BATCHES` batches (half an epoch), and learn from the float teacher's soft targets with
# notebook 2's `kd_loss`, so the quantized copy is pulled back towards what the float model
# computed. Accuracies are on the test set, with the fake-quantized weights.


# %%
def fit(
    model: nn.Module,
    loss_of_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int,
    lr: float,
    seed: int,
    extra: Sequence[nn.Parameter] = (),
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
    cosine: bool = False,
    desc: str = "train",
) -> nn.Module:
    """Train ``model`` in place with AdamW on the training split; ``loss_of_batch(x, y, index)``.

    ``max_batches`` stops each epoch early (a partial epoch of shuffled batches); ``cosine``
    decays the learning rate to 0 along a cosine over all steps.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([*model.parameters(), *extra], lr=lr, fused=True)  # fewer ops
    steps = epochs * len(torch.arange(len(y_train)).split(batch_size)[:max_batches])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)) if cosine else 1.0
    )
    model.train()
    for _ in tqdm(range(epochs), desc=desc, leave=False):
        order = torch.randperm(len(y_train), generator=generator)
        batches = order.split(batch_size)[:max_batches]
        for index in batches:
            loss = loss_of_batch(x_train[index], y_train[index], index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def ce_loss(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The plain cross-entropy of ``model`` on a batch (the labels only)."""
    return lambda images, labels, _: F.cross_entropy(model(images), labels)


def kd_step(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``kd_loss`` of ``model`` on a batch against the float teacher's logits ``t_logits[index]``."""
    return lambda images, labels, index: kd_loss(
        model(images), t_logits[index], labels, TEMPERATURE, ALPHA
    )


if not GRADING:
    with torch.no_grad():
        t_logits = teacher(x_train)  # [N_train, 10], computed once for every distillation below
    ptq_acc, qat_acc = {}, {}
    for per_channel in (False, True):
        scheme = "per-channel" if per_channel else "per-tensor"
        for bits in tqdm(BITS, desc=f"PTQ / QAT, {scheme}", leave=False):
            ptq = quantize_model(teacher, bits, per_channel)
            ptq_acc[scheme, bits] = accuracy(ptq, (x_test, y_test))
            runs = []
            for seed in SEEDS:
                set_seed(seed)
                qat = quantize_model(teacher, bits, per_channel)
                fit(qat, kd_step(qat), 1, QAT_LR, seed, max_batches=QAT_BATCHES, cosine=True)
                runs.append(accuracy(qat, (x_test, y_test)))
                if (per_channel, bits, seed) == (True, CHAIN_BITS, SEEDS[0]):
                    qat4 = qat  # measured as a deployable model below
            qat_acc[scheme, bits] = mean_std(runs)
            key = f"{scheme.replace('-', '_')}_{bits}bit"
            summary[f"ptq_acc_{key}"] = ptq_acc[scheme, bits]
            summary[f"qat_acc_{key}_mean"], summary[f"qat_acc_{key}_std"] = qat_acc[scheme, bits]
    show_table(
        ["weights", "bits", "PTQ", f"QAT, mean ± std over {len(SEEDS)} seeds", "QAT - PTQ"],
        [
            [
                scheme,
                str(bits),
                f"{ptq_acc[scheme, bits]:.1%}",
                f"{qat_acc[scheme, bits][0]:.1%} ± {qat_acc[scheme, bits][1]:.1%}",
                f"{(qat_acc[scheme, bits][0] - ptq_acc[scheme, bits]) * 100:+.1f} points",
            ]
            for scheme, bits in ptq_acc
        ],
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, scheme in zip(axes, ("per-tensor", "per-channel"), strict=True):
        ax.plot(BITS, [ptq_acc[scheme, b] * 100 for b in BITS], "o-", label="PTQ")
        ax.errorbar(
            BITS,
            [qat_acc[scheme, b][0] * 100 for b in BITS],
            yerr=[qat_acc[scheme, b][1] * 100 for b in BITS],
            fmt="s-",
            capsize=3,
            label=f"QAT (mean ± std, {len(SEEDS)} seeds)",
        )
        ax.axhline(teacher_acc * 100, color="grey", ls="--", label="fp32 teacher")
        ax.set(title=f"{scheme} weights", xlabel="weight bits", xticks=list(BITS))
        ax.invert_xaxis()
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
    axes[1].legend()
    fig.tight_layout()
    plt.show()

# %% [markdown]
# Read the table. At 8 and 4 bits PTQ stays within 1 point of the teacher with either scheme, so
# there is little for QAT to win back there, and QAT stays within half a point of the teacher too:
# short fine-tuning with small steps does no harm. At 3 bits per channel PTQ loses more than a
# point, and QAT wins back more than half of that loss. At 2 bits the grid has only three values
# per scale ($-s, 0, s$): PTQ loses more than 10 points with either scheme (per tensor far more than
# per channel), and half an epoch of QAT wins back more than a third of that loss.
#
# - At 3 bits per tensor, is the gap between QAT and PTQ larger than the spread over seeds? (A
#   difference smaller than the spread is not a result.)
# - Why does per-channel PTQ hold on to so much more accuracy than per-tensor at 2 bits (think of
#   what one scale for the whole matrix does to its rows of small weights)? Does it hold more at 3
#   bits too in your run? If not, how can a finer scale, which rounds every row more finely, still
#   cost more test accuracy (is the rounding error the quantity the test set measures)?
# - Rerun this part with `QAT_LR = 2e-3` and `ce_loss` (the labels only) in place of `kd_step`:
#   what happens at 8 bits, and at 2 bits? AdamW moves every weight by about the learning rate at
#   each step, whatever the size of its gradient: what does that do to weights that were already
#   trained?
#
# The deployable form of a quantized model uses PyTorch's real INT8 kernels
# (`torch.ao.quantization.quantize_dynamic`, notebook 3): the 4-bit values sit on a coarser grid
# than INT8 and are stored one per byte (this PyTorch has no 4-bit CPU kernel for Linear layers),
# so the QAT model's size is that of INT8, and it runs the same kernels (measure and compare the
# two rows' latencies); only its accuracy tells what the QAT bought. We add two rows: the teacher
# with PTQ to INT8, and the 4-bit QAT teacher (seed `SEEDS[0]`, per-channel, from the runs above)
# served by the INT8 kernels.

# %%
DEPRECATED_AO = r"torch\.ao\.quantization is deprecated"
DEPRECATED_QTENSOR = r"torch\.quantize_per_tensor, torch\.quantize_per_channel"


def dequantized(model: nn.Module) -> nn.Module:
    """A float copy of ``model``: each ``QuantLinear`` becomes an ``nn.Linear`` of its quantized weight."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, QuantLinear):
                linear = nn.Linear(child.in_features, child.out_features, child.bias is not None)
                with torch.no_grad():
                    linear.weight.copy_(
                        fake_quantize_ste(child.weight, child.num_bits, child.per_channel)
                    )
                    if child.bias is not None:
                        linear.bias.copy_(child.bias)
                setattr(module, name, linear)
    return model.eval()


def real_int8(model: nn.Module) -> tuple[nn.Module, int]:
    """``model`` (QuantLinear layers made float first) with PyTorch's dynamic INT8 Linear kernels.

    Also returns the number of parameters it stores: INT8 weights are packed, not parameters.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig

    float_model = dequantized(model)
    with warnings.catch_warnings():  # hide only the two deprecation notices, nothing else
        warnings.filterwarnings("ignore", message=DEPRECATED_AO, category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=DEPRECATED_QTENSOR, category=UserWarning)
        int8 = torch.ao.quantization.quantize_dynamic(
            float_model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    return int8, count_parameters(float_model)


if not GRADING:
    engines = torch.backends.quantized.supported_engines  # ARM CPUs have only qnnpack
    torch.backends.quantized.engine = "x86" if "x86" in engines else "qnnpack"
    measure("teacher, PTQ INT8", *real_int8(teacher), x_test, y_test)
    measure(f"teacher, QAT {CHAIN_BITS}-bit, INT8 kernels", *real_int8(qat4), x_test, y_test)
    show_models()
    summary["teacher_int8_bytes"] = MODELS["teacher, PTQ INT8"]["bytes"]
    summary["qat4_int8_bytes"] = MODELS[f"teacher, QAT {CHAIN_BITS}-bit, INT8 kernels"]["bytes"]
    summary["teacher_int8_bytes_ratio"] = (
        MODELS["teacher (fp32)"]["bytes"] / MODELS["teacher, PTQ INT8"]["bytes"]
    )

# %% [markdown]
# ## Part 2. Multi-path distillation
#
# **Intuition.** Notebook 2's student learned from the teacher's output distribution only: ten
# numbers per image. The teacher also knows *how* it got there: the hidden state of every token
# after every block, and where each head looks. A student can imitate those too. Two obstacles: the
# student is narrower, so its hidden states live in another space (a learned linear projection maps
# them into the teacher's, as in FitNets), and it has fewer heads, so we compare the attention maps
# averaged over heads (each row of such a map is still a distribution over the tokens).
#
# **The maths.** With logits $z^s, z^t$, last-block hidden states $H^s \in \mathbb R^{B \times T
# \times E_s}$, $H^t \in \mathbb R^{B \times T \times E_t}$, last-block attention maps averaged over
# heads $\bar A^s, \bar A^t \in \mathbb R^{B \times T \times T}$ and a projection $P$:
#
# $$
# \mathcal L = \underbrace{\mathcal L_{\text{KD}}(z^s, z^t, y; T, \alpha)}_{\text{notebook 2's kd\_loss}}
# + \beta \, \underbrace{\frac{1}{B T E_t} \lVert P(H^s) - H^t \rVert^2}_{\text{hidden-state MSE}}
# + \gamma \, \underbrace{\frac{1}{B T} \sum_{b, i} \mathrm{KL}\big(\bar A^t_{b,i} \,\|\, \bar A^s_{b,i}\big)}_{\text{attention KL}}
# $$
#
# `lab_utils` gives you what the student needs: `model.forward_with_internals(images)` returns an
# `Internals(logits, hidden_states, attentions)` (see `help(DigitsTransformer.forward_with_internals)`),
# and computes exactly what `model(images)` computes.
#
# ### Exercise 3 (4 points): the multi-path distillation loss


# %% nbgrader={"grade": false, "grade_id": "multipath_kd_loss_answer", "locked": false, "schema_version": 3, "solution": true}
def multipath_kd_loss(
    student: Internals,
    teacher: Internals,
    labels: torch.Tensor,
    projection: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
    hidden_weight: float = 1.0,
    attention_weight: float = 1.0,
) -> torch.Tensor:
    """Soft targets + hidden-state MSE + attention KL, between the LAST blocks of two models.

    Inputs:
        student, teacher: ``Internals`` from ``forward_with_internals``: ``logits [B, C]``,
            ``hidden_states`` (last one ``[B, T, E_s]`` / ``[B, T, E_t]``), ``attentions`` (last
            one ``[B, H_s, T, T]`` / ``[B, H_t, T, T]``; head counts may differ). Everything of the
            teacher is a constant: no gradient may reach it. Neither is modified in place.
        labels: int64 ``[B]``.
        projection: module ``[..., E_s] -> [..., E_t]`` applied to the student's last hidden state
            (gradients reach it); None means the identity, allowed only when ``E_s == E_t``.
        temperature, alpha: of the soft-target term, exactly notebook 2's ``kd_loss``.
        hidden_weight, attention_weight: the weights of the two other terms.
    Returns:
        A scalar tensor: ``kd_loss(student.logits, teacher.logits, labels, temperature, alpha)
        + hidden_weight * MSE + attention_weight * KL``, where MSE is the mean over all elements of
        ``(projection(h_s) - h_t)**2`` for the last hidden states, and KL is
        ``KL(A_t || A_s)`` between the last attention maps averaged over heads (``[B, T, T]``, each
        row a distribution over the keys), summed over keys and averaged over the ``B * T`` rows,
        with ``log(A_s)`` taken of ``A_s.clamp_min(1e-12)``.
    Raises:
        ValueError: if the last hidden states differ in width after the projection (e.g. no
            projection for different widths), or the two models have different token counts ``T``.
    """
    ### BEGIN SOLUTION
    h_s, h_t = student.hidden_states[-1], teacher.hidden_states[-1].detach()
    a_s = student.attentions[-1].mean(dim=1)
    a_t = teacher.attentions[-1].detach().mean(dim=1)
    if h_s.shape[:-1] != h_t.shape[:-1] or a_s.shape != a_t.shape:
        raise ValueError(
            f"Student and teacher see different token counts: hidden {list(h_s.shape)} vs "
            f"{list(h_t.shape)}; both models need the same patch size."
        )
    if projection is not None:
        h_s = projection(h_s)
    if h_s.shape != h_t.shape:
        raise ValueError(
            f"Hidden widths differ ({h_s.shape[-1]} vs {h_t.shape[-1]}): pass a projection "
            f"module mapping the student's width to the teacher's."
        )
    soft = kd_loss(student.logits, teacher.logits, labels, temperature, alpha)
    hidden = F.mse_loss(h_s, h_t)
    rows = a_s.shape[0] * a_s.shape[1]
    attention = F.kl_div(a_s.clamp_min(1e-12).log(), a_t, reduction="sum") / rows
    return soft + hidden_weight * hidden + attention_weight * attention
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "multipath_kd_loss_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
def fake_internals(
    batch: int, tokens: int, width: int, heads: int, seed: int, grad: bool = False
) -> Internals:
    """Random ``Internals`` (two blocks) with valid attention maps."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, 10, generator=gen) * 2
    hidden = [torch.randn(batch, tokens, width, generator=gen) for _ in range(3)]
    attn = [torch.randn(batch, heads, tokens, tokens, generator=gen).softmax(-1) for _ in range(2)]
    if grad:
        for t in [logits, *hidden, *attn]:
            t.requires_grad_()
    return Internals(logits, hidden, attn)


labels = torch.tensor([3, 1, 4])
s_out = fake_internals(3, 5, width=6, heads=2, seed=0)
t_out = fake_internals(3, 5, width=6, heads=4, seed=1)
only_kd = multipath_kd_loss(s_out, t_out, labels, hidden_weight=0.0, attention_weight=0.0)
print(
    f"with both extra weights 0: {only_kd.item():.6f}, kd_loss: {kd_loss(s_out.logits, t_out.logits, labels).item():.6f}"
)
assert only_kd.dim() == 0 and torch.allclose(
    only_kd, kd_loss(s_out.logits, t_out.logits, labels)
), (
    "With hidden_weight = attention_weight = 0 the loss is kd_loss(student.logits, teacher.logits, ...)."
)
only_hidden = multipath_kd_loss(s_out, t_out, labels, alpha=0.0, attention_weight=0.0)
mse = F.mse_loss(s_out.hidden_states[-1], t_out.hidden_states[-1])
ce = F.cross_entropy(s_out.logits, labels)
print(f"alpha=0, no attention term: {only_hidden.item():.6f}, CE + MSE = {(ce + mse).item():.6f}")
assert torch.allclose(only_hidden, ce + mse, atol=1e-6), (
    "The hidden term is the MEAN squared error between the LAST hidden states (hidden_states[-1])."
)
same = multipath_kd_loss(s_out, s_out, labels, alpha=1.0)
print(f"student == teacher, alpha=1: {same.item():.2e} (should be 0)")
assert abs(same.item()) < 1e-5, "Identical internals must give a loss of 0 (alpha=1)."
### BEGIN HIDDEN TESTS
_LOG_FLOOR = 1e-12  # the clamp the docstring states


def _attention_kl(a_s, a_t, direction="ts", per_head=False, keys="sum"):
    if not per_head:
        a_s, a_t = a_s.mean(1), a_t.mean(1)
    p, q = (a_t, a_s) if direction == "ts" else (a_s, a_t)
    per = p * (p.clamp_min(_LOG_FLOOR).log() - q.clamp_min(_LOG_FLOOR).log())
    return (per.sum() / per.shape[:-1].numel()) if keys == "sum" else per.mean()


_s = fake_internals(4, 6, width=8, heads=3, seed=2)
_t = fake_internals(4, 6, width=8, heads=3, seed=3)
_y = torch.tensor([0, 1, 2, 3])
_got = multipath_kd_loss(_s, _t, _y, alpha=0.0, hidden_weight=0.0).item()
_ce = F.cross_entropy(_s.logits, _y).item()
_ref = _ce + _attention_kl(_s.attentions[-1], _t.attentions[-1]).item()
_wrong = {
    "reversed": _ce + _attention_kl(_s.attentions[-1], _t.attentions[-1], "st").item(),
    "per_head": _ce + _attention_kl(_s.attentions[-1], _t.attentions[-1], per_head=True).item(),
    "mean_over_keys": _ce + _attention_kl(_s.attentions[-1], _t.attentions[-1], keys="mean").item(),
    "first_block": _ce + _attention_kl(_s.attentions[0], _t.attentions[0]).item(),
}
assert abs(_got - _wrong["reversed"]) > 1e-4, (
    "The attention KL is reversed: the TEACHER's map is the target, KL(A_t || A_s)."
)
assert abs(_got - _wrong["per_head"]) > 1e-4, (
    "Average the maps over heads FIRST, then take the KL (head counts may differ)."
)
assert abs(_got - _wrong["mean_over_keys"]) > 1e-4, (
    "Sum the KL over the keys and average over the B * T rows (not over the keys too)."
)
assert abs(_got - _wrong["first_block"]) > 1e-4, "Use the LAST block's attention maps."
assert abs(_got - _ref) < 1e-5, f"attention term: got {_got:.6f}, expected {_ref:.6f}"
_h = multipath_kd_loss(_s, _t, _y, alpha=0.0, attention_weight=0.0).item() - _ce
_ref_h = F.mse_loss(_s.hidden_states[-1], _t.hidden_states[-1]).item()
assert abs(_h - _ref_h * _s.hidden_states[-1].numel()) > 1e-3, (
    "Use the MEAN squared error, not the sum."
)
assert abs(_h - F.mse_loss(_s.hidden_states[0], _t.hidden_states[0]).item()) > 1e-4, (
    "Use the LAST hidden state (hidden_states[-1]), not the embeddings."
)
assert abs(_h - _ref_h) < 1e-5, f"hidden term: got {_h:.6f}, expected {_ref_h:.6f}"
_full = multipath_kd_loss(
    _s, _t, _y, temperature=2.0, alpha=0.7, hidden_weight=0.3, attention_weight=2.5
)
_ref_full = (
    kd_loss(_s.logits, _t.logits, _y, 2.0, 0.7)
    + 0.3 * F.mse_loss(_s.hidden_states[-1], _t.hidden_states[-1])
    + 2.5 * _attention_kl(_s.attentions[-1], _t.attentions[-1])
)
assert torch.allclose(_full, _ref_full, atol=1e-5), (
    "With every weight set, the loss must be kd_loss(T, alpha) + hidden_weight * MSE + "
    "attention_weight * KL: check that each weight multiplies its own term and that temperature "
    "and alpha reach kd_loss."
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "multipath_kd_loss_projection_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
narrow = fake_internals(3, 5, width=4, heads=2, seed=4, grad=True)
wide = fake_internals(3, 5, width=6, heads=4, seed=5, grad=True)
projection = nn.Linear(4, 6)
loss = multipath_kd_loss(narrow, wide, labels, projection=projection)
loss.backward()
teacher_grads = [t.grad for t in [wide.logits, *wide.hidden_states, *wide.attentions]]
print("gradient reached the projection:", projection.weight.grad is not None)
assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0, (
    "The projection maps the student's hidden state (gradients must reach it)."
)
assert all(g is None or not g.any() for g in teacher_grads), (
    "A gradient reached the teacher's internals: detach the teacher's logits, hidden states and "
    "attention maps."
)
expect_value_error(lambda: multipath_kd_loss(narrow, wide, labels), "widths 4 and 6, no projection")
### BEGIN HIDDEN TESTS
assert narrow.attentions[-1].grad is not None and narrow.attentions[-1].grad.abs().sum() > 0, (
    "No gradient reached the student's attention maps."
)
assert narrow.hidden_states[-1].grad is not None, "No gradient reached the student's hidden state."
_p = nn.Linear(4, 6)
with torch.no_grad():
    _direct = multipath_kd_loss(
        narrow, wide, labels, projection=_p, alpha=0.0, attention_weight=0.0
    )
    _ref = F.cross_entropy(narrow.logits, labels) + F.mse_loss(
        _p(narrow.hidden_states[-1]), wide.hidden_states[-1]
    )
assert torch.allclose(_direct, _ref, atol=1e-5), (
    "Apply the projection to the student's last hidden state."
)
other_tokens = fake_internals(3, 7, width=6, heads=4, seed=6)
expect_value_error(
    lambda: multipath_kd_loss(other_tokens, wide, labels), "7 tokens against 5 (other patch size)"
)
expect_value_error(
    lambda: multipath_kd_loss(narrow, wide, labels, projection=nn.Linear(4, 5)),
    "a projection to the wrong width",
)
_copy = [t.detach().clone() for t in [narrow.logits, *narrow.hidden_states, *narrow.attentions]]
multipath_kd_loss(narrow, wide, labels, projection=projection)
assert all(
    torch.equal(a, b.detach())
    for a, b in zip(_copy, [narrow.logits, *narrow.hidden_states, *narrow.attentions], strict=True)
), "multipath_kd_loss changed the student's tensors in place."
### END HIDDEN TESTS

# %% [markdown]
# ### A small student, three ways
#
# The student has one block of four heads at width 32 (`STUDENT_CONFIG`, patch 2 like the teacher,
# so both see the same 17 tokens). We train it on the training split with the labels only, with
# output distillation (`kd_loss`), and with your multi-path loss (a learned `nn.Linear(32, 64)`
# projection, trained with the student), from the same initialisation and batches for each seed
# of `STUDENT_SEEDS`. The teacher's internals on the training images are computed once.

# %%
if not GRADING:
    with torch.no_grad():
        t_train = teacher.forward_with_internals(x_train)
    t_hidden, t_attn = t_train.hidden_states[-1], t_train.attentions[-1]

    def train_student(arm: str, seed: int) -> DigitsTransformer:
        """A student trained with ``arm``: 'labels only', 'output KD' or 'multi-path KD'."""
        set_seed(seed)
        student = DigitsTransformer(**STUDENT_CONFIG)
        projection = nn.Linear(STUDENT_CONFIG["width"], teacher.config["width"])

        def loss_of_batch(images, labels, index):
            if arm == "labels only":
                return F.cross_entropy(student(images), labels)
            if arm == "output KD":
                return kd_loss(student(images), t_logits[index], labels, TEMPERATURE, ALPHA)
            target = Internals(t_logits[index], [t_hidden[index]], [t_attn[index]])
            return multipath_kd_loss(
                student.forward_with_internals(images),
                target,
                labels,
                projection,
                TEMPERATURE,
                ALPHA,
            )

        extra = list(projection.parameters()) if arm == "multi-path KD" else []
        return fit(student, loss_of_batch, STUDENT_EPOCHS, STUDENT_LR, seed, extra, desc=arm)

    ARMS = ("labels only", "output KD", "multi-path KD")
    students, student_acc = {}, {}
    for arm in ARMS:
        runs = []
        for seed in tqdm(STUDENT_SEEDS, desc=arm, leave=False):
            model = train_student(arm, seed)
            students[arm, seed] = model
            runs.append(accuracy(model, (x_test, y_test)))
        student_acc[arm] = runs
        key = arm.replace(" ", "_").replace("-", "_").lower()
        summary[f"student_{key}_acc_mean"], summary[f"student_{key}_acc_std"] = mean_std(runs)
    show_table(
        ["student", *[f"seed {s}" for s in STUDENT_SEEDS], "mean ± std"],
        [
            [
                arm,
                *[f"{a:.1%}" for a in student_acc[arm]],
                "{:.1%} ± {:.1%}".format(*mean_std(student_acc[arm])),
            ]
            for arm in ARMS
        ],
    )
    means = {arm: mean_std(student_acc[arm]) for arm in ARMS}
    gain = means["multi-path KD"][0] - means["output KD"][0]
    noise = max(means["multi-path KD"][1], means["output KD"][1])
    verdict = "larger than" if abs(gain) > 2 * noise else "within"
    print(
        f"Computed from this run: multi-path minus output-only KD = {gain * 100:+.1f} points, "
        f"{verdict} twice the larger spread over seeds ({2 * noise * 100:.1f} points)."
    )
    summary["multipath_minus_output_kd"] = gain
    for arm in ("labels only", "multi-path KD"):
        measure(f"student, {arm} (fp32)", students[arm, STUDENT_SEEDS[0]], None, x_test, y_test)
    multipath_int8 = real_int8(students["multi-path KD", STUDENT_SEEDS[0]])
    measure("student, multi-path KD, PTQ INT8", *multipath_int8, x_test, y_test)
    show_models()

# %% [markdown]
# Does imitating the hidden states and attention maps help this student beyond the outputs alone,
# by more than the spread between seeds? The printed line above answers for this run, and the
# answer may well be "not measurably". Think about why it could go either way: the hidden-state
# and attention terms give the student many more numbers to learn from per image than ten logits,
# but a one-block student must reproduce in one block what the teacher's *last* block built on top
# of another block, through a projection it learns at the same time. Two seeds give a thin
# spread: add a third to `STUDENT_SEEDS` and rerun this part; does the verdict change? How far are
# the students from the goal of 1 point, and what do they buy in size and speed (the new rows of
# the table)?
#
# ## Part 3. The full chain, in two orders
#
# Three steps, each from an earlier notebook: **P**, prune half the heads by importance
# (`head_importance` averaged over small validation batches, then `prune_model`, notebook 1);
# **D**, recover by distillation from the unpruned teacher (`kd_loss`, notebook 2) for
# `RECOVER_EPOCHS` epochs; **Q**, quantization-aware training to `CHAIN_BITS` bits per channel
# (your `quantize_model`) for `QAT_BATCHES` batches, with the same distillation loss. Two orders,
# with the same training budget:
#
# - **P → D → Q**: prune, recover in float, then quantize;
# - **Q → P → D**: quantize first, prune the quantized weights, then recover *under* the quantizer.
#
# Each final model is then served with PyTorch's INT8 kernels.

# %%
if not GRADING:
    importance = torch.stack(
        [
            head_importance(teacher, x_val[i : i + 8], y_val[i : i + 8])
            for i in range(0, len(y_val), 8)
        ]
    ).mean(dim=0)

    def step(model: nn.Module, name: str) -> nn.Module:
        """One step of the chain on (a copy of) ``model``: 'P', 'D' or 'Q'."""
        if name == "P":  # prune_model needs float Linear layers: dequantize, prune, requantize
            pruned = prune_model(dequantized(model), importance, HEADS_TO_PRUNE)
            quantized = any(isinstance(m, QuantLinear) for m in model.modules())
            return quantize_model(pruned, CHAIN_BITS) if quantized else pruned
        if name == "Q":
            model = quantize_model(model, CHAIN_BITS)
            return fit(
                model, kd_step(model), 1, QAT_LR, SEEDS[0], max_batches=QAT_BATCHES, cosine=True
            )
        model = copy.deepcopy(model)
        return fit(model, kd_step(model), RECOVER_EPOCHS, RECOVER_LR, SEEDS[0], desc="D")

    ORDERS = ("P → D → Q", "Q → P → D")
    chain_acc: dict[str, dict[str, float]] = {}
    finals, after_pd = {}, None
    for order in ORDERS:
        set_seed(SEEDS[0])
        model, chain_acc[order] = teacher, {}
        for name in order.split(" → "):
            model = step(model, name)
            chain_acc[order][name] = accuracy(model, (x_test, y_test))
            if order == ORDERS[0] and name == "D":
                after_pd = model
        finals[order] = model
    show_table(
        ["order", "after step 1", "after step 2", "after step 3"],
        [
            [order, *[f"{name}: {acc:.1%}" for name, acc in stages.items()]]
            for order, stages in chain_acc.items()
        ],
    )
    measure("pruned 50% + KD (fp32)", after_pd, None, x_test, y_test)
    for order, model in finals.items():
        measure(f"{order}, {CHAIN_BITS}-bit, INT8 kernels", *real_int8(model), x_test, y_test)
    show_models()
    summary["chain_pdq_acc"] = MODELS[f"P → D → Q, {CHAIN_BITS}-bit, INT8 kernels"]["acc"]
    summary["chain_qpd_acc"] = MODELS[f"Q → P → D, {CHAIN_BITS}-bit, INT8 kernels"]["acc"]

# %% [markdown]
# Which order ends closer to the teacher here, and by more than you would expect from a change of
# seed (Part 1 shows how much one seed moves a short fine-tuning run)? After pruning, which of the
# two orders still had training left to repair the damage, and in which number format did that
# repair happen? How much did D move the accuracy in each order? Under the quantizer, a weight's
# 4-bit value changes only when its float copy crosses a boundary of the grid (a step of
# $\max|\text{row}| / 7$): how far can `RECOVER_EPOCHS` epochs of AdamW at `RECOVER_LR` move it?
#
# ### Written question (2 points)
#
# Using the chain table above, say **which order of the steps worked better in your run, and why**.
# Name what each step does to the weights the next step starts from (which step's errors can a
# later step repair, and which cannot be repaired because no training follows it), and say
# whether the difference you measured is larger than the spread over seeds from Parts 1 and 2.

# %% [markdown] nbgrader={"grade": true, "grade_id": "chain_order_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Model answer.** A good answer quotes the accuracy after every step of both orders, reads
# them, and does not claim more than one seed can show. What each step leaves to the next: in
# P → D → Q, D repairs pruning's damage in float, where every small update of a weight counts, and
# Q then trains through the rounding of the already repaired model (at 4 bits the rounding itself
# costs little, Part 1). In Q → P → D, pruning damages a model that already sits on the 4-bit grid,
# and D must repair it *under* the quantizer: an update changes the model only where it pushes a
# float weight across a grid boundary, so one short epoch can repair less there than in float;
# if the run shows D moving the accuracy little in that order, this is the reason to give. Both
# orders end with a training step that sees the final structure, which is what makes either of
# them workable; an order that prunes or quantizes after its last training step (e.g. P → D,
# then PTQ) cannot repair that step at all. The chain runs with one seed (`SEEDS[0]`): a gap
# between the two orders that is not larger than the spread over seeds measured in Parts 1 and 2
# does not show that the order matters, and a good answer says so.

# %% [markdown]
# ## Part 4. The trade-off: every model, and its Pareto front
#
# A model is worth considering only if no other model is at least as small, at least as fast *and*
# at least as accurate, and strictly better in one of them. Those models form the **Pareto front**.
#
# ### Exercise 4 (3 points): the Pareto front


# %% nbgrader={"grade": false, "grade_id": "pareto_front_answer", "locked": false, "schema_version": 3, "solution": true}
def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points for (size, latency) minimised and accuracy maximised.

    Inputs:
        points: a sequence of ``(size, latency, accuracy)`` triples of finite numbers (any
            sequence type; may be empty).
    Returns:
        The sorted list of the indices ``i`` such that no point ``j`` dominates ``points[i]``.
        ``j`` dominates ``i`` when ``size_j <= size_i``, ``latency_j <= latency_i`` and
        ``accuracy_j >= accuracy_i`` with at least one of the three strictly better. Equal points
        therefore never dominate each other: every copy of a non-dominated point is listed.
    Raises:
        ValueError: if a point does not have exactly 3 values, or a value is NaN or infinite.
    """
    ### BEGIN SOLUTION
    rows = [tuple(float(v) for v in p) for p in points]
    for i, row in enumerate(rows):
        if len(row) != 3 or any(v != v or v in (float("inf"), float("-inf")) for v in row):
            raise ValueError(
                f"Point {i} must be 3 finite numbers (size, latency, accuracy): {points[i]}"
            )

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        no_worse = a[0] <= b[0] and a[1] <= b[1] and a[2] >= b[2]
        return no_worse and (a[0] < b[0] or a[1] < b[1] or a[2] > b[2])

    return [i for i, row in enumerate(rows) if not any(dominates(other, row) for other in rows)]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pareto_front_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
models = [
    (100.0, 5.0, 0.97),  # 0: big, slow, best
    (30.0, 2.0, 0.95),  # 1: small and fast
    (30.0, 3.0, 0.94),  # 2: as small as 1, slower and worse: dominated by 1
    (10.0, 1.0, 0.80),  # 3: smallest and fastest
    (120.0, 6.0, 0.96),  # 4: worse than 0 in everything: dominated
]
front = pareto_front(models)
print("front:", front)
assert front == [0, 1, 3], (
    f"Expected [0, 1, 3], got {front}: size and latency are minimised, accuracy maximised."
)
### BEGIN HIDDEN TESTS
assert pareto_front([]) == [], "No points, no front."
assert pareto_front([(1.0, 1.0, 0.5)]) == [0], "A single point is on the front."
twins = [(10.0, 2.0, 0.9), (10.0, 2.0, 0.9), (5.0, 3.0, 0.8)]
assert pareto_front(twins) == [0, 1, 2], (
    "Equal points never dominate each other: list every copy of a non-dominated point."
)
tie = [(10.0, 2.0, 0.9), (10.0, 2.0, 0.85)]
assert pareto_front(tie) == [0], (
    "Equal size and latency with lower accuracy is dominated (one strictly better value suffices)."
)
assert pareto_front([(10.0, 1.0, 0.9), (10.0, 2.0, 0.9)]) == [0], (
    "Equal size and accuracy but slower is dominated: latency counts too."
)
assert pareto_front([(10.0, 5.0, 0.9), (20.0, 1.0, 0.9)]) == [0, 1], (
    "Smaller but slower and larger but faster are both on the front."
)
assert pareto_front([(5.0, 1.0, 0.7), (5.0, 1.0, 0.9)]) == [1], "Accuracy is MAXIMISED."
assert pareto_front([(50.0, 1.0, 0.9), (10.0, 1.0, 0.9)]) == [1], "Size is MINIMISED."
order = pareto_front([(1.0, 9.0, 0.5), (9.0, 1.0, 0.5), (5.0, 5.0, 0.9)])
assert order == [0, 1, 2], f"Return the indices sorted ascending, got {order}."
as_lists = [[3.0, 3.0, 0.5], [1.0, 1.0, 0.9]]
assert pareto_front(as_lists) == [1], "Any sequence of triples works (lists too)."
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "pareto_front_errors_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
expect_value_error(lambda: pareto_front([(1.0, 2.0)]), "a point with 2 values")
### BEGIN HIDDEN TESTS
expect_value_error(lambda: pareto_front([(1.0, 2.0, 3.0, 4.0)]), "a point with 4 values")
expect_value_error(lambda: pareto_front([(1.0, float("nan"), 0.5)]), "a NaN latency")
expect_value_error(lambda: pareto_front([(float("inf"), 1.0, 0.5)]), "an infinite size")
### END HIDDEN TESTS

# %% [markdown]
# Every model measured in this notebook, with its front: accuracy against serialized size (left)
# and against the latency of one image (right). Filled red markers are on the front of all three
# criteria.

# %%
if not GRADING:
    names = list(MODELS)
    triples = [(MODELS[n]["bytes"], MODELS[n]["latency_one"], MODELS[n]["acc"]) for n in names]
    on_front = pareto_front(triples)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, scale, label in (
        (axes[0], "bytes", 1 / 1024, "serialized size (KiB, log scale)"),
        (axes[1], "latency_one", 1e3, "latency of one image (ms, log scale)"),
    ):
        for i, name in enumerate(names):
            x_value, y_value = MODELS[name][key] * scale, MODELS[name]["acc"] * 100
            front_point = i in on_front
            ax.scatter(
                x_value,
                y_value,
                s=60,
                color="C3" if front_point else "white",
                edgecolor="C3" if front_point else "grey",
                zorder=3,
            )
            ax.annotate(
                str(i), (x_value, y_value), textcoords="offset points", xytext=(5, 3), fontsize=8
            )
        ax.axhline(
            (teacher_acc - 0.01) * 100, color="grey", ls="--", lw=1, label="teacher - 1 point"
        )
        ax.set(xscale="log", xlabel=label)
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
    axes[0].set_title("accuracy vs size")
    axes[1].set_title("accuracy vs latency")
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    plt.show()
    print(
        "\n".join(
            f"{i}: {name}{'  (front)' if i in on_front else ''}" for i, name in enumerate(names)
        )
    )
    goal = [n for n in names if MODELS[n]["acc"] >= teacher_acc - 0.01]
    smallest = min(goal, key=lambda n: MODELS[n]["bytes"])
    print(
        f"Computed from this run: of the {len(goal)} models within 1 point of the teacher, the "
        f"smallest is '{smallest}' ({MODELS[smallest]['bytes'] / 1024:.1f} KiB, "
        f"{MODELS['teacher (fp32)']['latency_one'] / MODELS[smallest]['latency_one']:.2f}x the "
        "teacher's single-image speed)."
    )
    summary["models_measured"] = len(names)
    summary["front_size"] = len(on_front)
    summary["teacher_on_front"] = int(0 in on_front)

# %% [markdown]
# Which models are on the front, and which of them meet the goal of staying within 1 point of the
# teacher? Where do the INT8 models sit on the latency panel compared with the size panel, and why
# (notebook 3's latency sweep)? How would the picture change for a teacher 8 times wider?
#
# ### Written question (2 points)
#
# Suppose the product needs one image classified in **at most three quarters of the teacher's
# single-image latency measured in your run**, with the highest accuracy possible. **Which model of the table
# would you ship, and why?** Quote its row, say whether it is on the Pareto front, and name one
# risk of trusting these latencies (think of the spread between runs and of the machine they will
# run on).

# %% [markdown] nbgrader={"grade": true, "grade_id": "ship_under_budget_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Model answer.** A good answer takes the measured single-image latencies, keeps the models at
# or below three quarters of the teacher's, and picks the most accurate of them (it is on the
# front, or the answer explains why a dominated model is not a better choice). Which models pass
# depends on the run and the machine; the reasoning to expect: at this tiny width a single image
# costs mostly the fixed price of each operation, so the student (one block instead of two) has
# the best chance of passing, the pruned teacher keeps both blocks and most of that price, and
# the dynamic INT8 kernels add work per call (quantizing the activations) that a single image
# may not pay back (notebook 3's latency sweep). If only the students pass, the answer is the
# best student, and it must say how far that model is from the 1-point goal (Part 2's table):
# under such a budget the goal would not be met. Risks: latencies of a fraction of a millisecond
# move by 10-20% between runs and by more between machines (another CPU, other INT8 kernels,
# several threads), so the budget must be checked on the target machine with a margin; accuracy
# differences below the seed spread are noise.

# %% tags=["summary"]
summary["run_seconds"] = round(time.perf_counter() - STARTED, 1)
print(json.dumps(summary))
