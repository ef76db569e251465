# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Notebook 1: structured pruning of attention heads
#
# A transformer layer splits its attention into *heads*. Michel et al. (2019) found that many heads
# can be removed from a trained model with little loss of accuracy, and a removed head is a real
# saving: smaller matrices, fewer multiply-adds. This notebook takes you from a broken pruning
# function to a model that is measurably smaller, and lets you measure whether it is faster.
#
# **You will learn**
# 1. why *masking* weights (multiplying them by zero) is not compression, and how PyTorch's
#    `nn.MultiheadAttention` packs the query, key and value projections into one matrix;
# 2. how to score heads by the gradient of the loss with respect to a per-head gate
#    (Michel, Levy and Neubig, 2019, *Are Sixteen Heads Really Better than One?*);
# 3. how to remove heads physically, and how to measure what that buys: parameters, bytes,
#    latency and accuracy, before and after a short fine-tuning pass;
# 4. how unstructured (fine-grained) magnitude pruning compares: many more weights can go for the
#    same accuracy, but zeros left in a dense matrix are still stored and multiplied.
#
# **How to start.** Run `make lab` in the repository root: it creates `.venv`, installs the course
# helpers (`lab_utils`) and opens JupyterLab. Open this notebook there and choose the kernel
# "Python 3". Run the cells from top to bottom; a laptop CPU is all it needs. The
# last cell prints the measured results, among them `run_seconds`: how many seconds the whole
# notebook took on your machine.
#
# **Exercises.** Five functions to write, each in a cell marked `# YOUR CODE HERE`. Run the test
# cell directly below each one: it prints what it compared, and an `AssertionError` message tells
# you what to fix. The graders run more (hidden) tests of the same behaviour, so read each
# docstring carefully: they test only what the docstring states. One written question is graded
# by hand.
#
# | exercise | function | points |
# | --- | --- | --- |
# | 1 | `structured_pruning(model, keep_heads)` | 3 |
# | 2 | `head_importance(model, inputs, labels)` | 3 |
# | 3 | `prune_heads(attn, heads)` | 4 |
# | 4 | `prune_model(model, importance, num_heads_to_prune)` | 3 |
# | 5 | `magnitude_prune(model, sparsity)` | 4 |
# | written | why masking does not make a model faster | 2 |
# | | **total** | **19** |

# %%
import copy
import json
import os
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn
from tqdm.auto import tqdm

try:
    from lab_utils import (
        DigitsTransformer,
        MultiHeadSelfAttention,
        ToyTransformer,
        accuracy,
        count_parameters,
        digits_loaders,
        full_batch,
        load_teacher,
        measure_latency,
        serialized_size,
        set_seed,
        train,
        use_course_style,
    )
except ImportError as err:
    raise ImportError(
        "lab_utils is not importable: start JupyterLab with `make lab` from the repo root "
        "(it installs the course into .venv) and choose the 'Python 3' kernel."
    ) from err

# True while nbgrader grades the notebook: the demos (figures, timings, training) are skipped then.
GRADING = "NBGRADER_EXECUTION" in os.environ
if not GRADING:  # only the demos draw, and importing pyplot costs a third of torch's import
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
torch.set_num_threads(1)  # one thread: float sums in a fixed order, and fair timings
set_seed(0)
use_course_style()
summary: dict[str, float | int] = {}  # key measured results, printed by the last cell

STARTED = time.perf_counter()  # the summary reports the whole run's seconds

# %% tags=["parameters"]
SEED = 0  # seeds every random choice below
IMPORTANCE_BATCH = 8  # validation images per gradient when scoring heads
RANDOM_ORDERS = 5  # random pruning orders in the sensitivity figure
LATENCY_BATCH = 64  # images per forward pass when timing the digits models
LATENCY_REPEATS = 3  # timing rounds; the fastest round is reported
SPARSITIES = [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # magnitude-pruning curve of Part 6
FINETUNE_EPOCHS = 3
FINETUNE_LR = 1e-3


# %%
def expect_value_error(call: Callable[[], object], what: str) -> None:
    """Run ``call()``; fail with a readable message unless it raises ``ValueError``."""
    try:
        call()
    except ValueError as err:
        print(f"ValueError for {what}: {err}")
        return
    raise AssertionError(f"Expected a ValueError for {what}, but nothing was raised.")


def markdown_table(header: list[str], rows: list[list[object]]) -> Markdown:
    """A markdown table from a header and rows of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


# %% [markdown]
# ## Part 1. Masking heads in PyTorch's packed attention
#
# **Intuition.** Each head looks at the sequence through its own small query, key and value
# projections, and writes its result through its own slice of the output projection. To switch a
# head off you must switch off *its* slices, and only those.
#
# **The maths.** With $n$ heads of width $d$ in a layer of width $E$ (here $E = n d$), and
# PyTorch's convention $\mathrm{Linear}(x) = x W^\top + b$ (one *row* of $W$ per output feature),
# head $h$ uses rows $hd, \dots, (h+1)d-1$ of $W_Q$, $W_K$ and $W_V$ and of their biases:
#
# $$
# \mathrm{head}_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt d}\right) V_h,
# \qquad Q_h = X W_{Q,h}^\top + b_{Q,h} \ (\text{same for } K_h, V_h),
# $$
#
# $$
# \mathrm{MHA}(X) = \sum_{h=1}^{n} \mathrm{head}_h \, W_{O,h}^\top + b_O ,
# $$
#
# where $W_{O,h}$ is the block of *columns* $hd, \dots, (h+1)d-1$ of the output projection.
# `nn.MultiheadAttention` stores the three input projections stacked in one parameter,
# `in_proj_weight` $= [W_Q; W_K; W_V]$ of shape $[3E, E]$ (and `in_proj_bias` of shape $[3E]$).
# So the rows of head $h$ in block $b$ ($b = 0$ for Q, 1 for K, 2 for V) are
#
# $$
# bE + hd, \; \dots, \; bE + (h+1)d - 1 .
# $$
#
# If $Q_h = K_h = 0$ the head attends uniformly, and if also $V_h = 0$ it outputs zero: the
# layer then computes exactly what it computes with that head's gate set to 0.
#
# **The seed's version.** The script this course grew from prunes heads like this (run the cell):


# %%
def original_structured_pruning(model: ToyTransformer, keep_heads: int = 4) -> None:
    """The original script's mask, verbatim: keeps rows ``0 .. keep_heads*head_dim`` of in_proj_weight."""
    head_dim = model.hidden_size // model.num_heads
    mask = torch.zeros_like(model.attn.in_proj_weight)
    for i in range(keep_heads):
        start, end = i * head_dim, (i + 1) * head_dim
        mask[start:end, :] = 1.0
    model.attn.in_proj_weight.data *= mask


def nonzero_rows_per_block(attn: nn.MultiheadAttention) -> list[int]:
    """How many rows of the Q, K and V blocks of ``in_proj_weight [3E, E]`` are not all zero."""
    rows = attn.in_proj_weight.detach().ne(0).any(dim=1)  # [3E] bool
    return [int(block.sum()) for block in rows.chunk(3)]


if not GRADING:
    set_seed(SEED)
    original_toy = ToyTransformer(hidden_size=256, num_heads=8)
    original_structured_pruning(original_toy, keep_heads=4)
    kept = nonzero_rows_per_block(original_toy.attn)
    display(
        markdown_table(
            ["block of in_proj_weight", "rows", "rows left non-zero by the original script's mask"],
            [[name, original_toy.hidden_size, k] for name, k in zip("QKV", kept, strict=True)],
        )
    )
    # With every V row zero, each head outputs the same vector whatever the input.
    x1, x2 = torch.randn(2, 16, 256), torch.randn(2, 16, 256)
    with torch.no_grad():
        out1 = original_toy.attn(x1, x1, x1, need_weights=False)[0]
        out2 = original_toy.attn(x2, x2, x2, need_weights=False)[0]
    spread = max((out1 - out1[0, 0]).abs().max().item(), (out2 - out1[0, 0]).abs().max().item())
    print(
        "largest difference between the attention outputs of any two tokens of two different "
        f"random inputs: {spread:.2e}"
    )
    summary["original_mask_q_rows_kept"] = kept[0]
    summary["original_mask_kv_rows_kept"] = kept[1] + kept[2]
    summary["original_mask_output_spread"] = spread
    summary["original_mask_output_max_abs"] = max(out1.abs().max().item(), out2.abs().max().item())

# %% [markdown]
# The table shows what went wrong. The seed's mask keeps the first `keep_heads * head_dim` rows
# of the *whole* stacked matrix: that is half of the Q block and nothing of the K and V blocks.
# With $W_V = 0$ every head's values are the constant bias $b_V$, so the layer's output is the
# same vector for every token of every input (the printed difference is zero, or at rounding
# level; PyTorch initialises the biases to zero, so here that vector is even zero): the "pruned"
# model has lost its attention entirely, not half of it. The biases and the output projection were
# not touched at all.
#
# ### Exercise 1 (3 points): mask heads correctly
#
# Write `structured_pruning` so that only the first `keep_heads` heads of `model.attn` still
# contribute. Work in place under `torch.no_grad()` and zero, for every other head, its rows in
# each of the three blocks of `in_proj_weight` and `in_proj_bias`, and its input columns of
# `out_proj.weight`. Leave everything else (the kept heads, `out_proj.bias`, the FFN) unchanged.


# %% nbgrader={"grade": false, "grade_id": "structured_pruning_answer", "locked": false, "schema_version": 3, "solution": true}
def structured_pruning(model: ToyTransformer, keep_heads: int = 4) -> None:
    """Zero, in place, every head of ``model.attn`` except the first ``keep_heads``.

    Inputs:
        model: a ``ToyTransformer``; ``model.attn`` is an ``nn.MultiheadAttention`` with
            ``in_proj_weight [3*hidden_size, hidden_size]`` (Q, K, V blocks stacked, each
            ``hidden_size`` rows), ``in_proj_bias [3*hidden_size]`` and
            ``out_proj.weight [hidden_size, hidden_size]``; heads are ``model.head_dim`` wide.
        keep_heads: number of leading heads (0 .. keep_heads-1) that keep their weights.
    Returns:
        None. For every head ``h >= keep_heads``: its rows in the Q, K and V blocks of
        ``in_proj_weight`` and ``in_proj_bias`` and its columns of ``out_proj.weight`` are 0.
        Everything else keeps its values: the kept heads' rows and columns, ``out_proj.bias``
        and the FFN. The parameters are changed in place and stay trainable (``requires_grad``).
    Raises:
        ValueError: if ``keep_heads`` is not in ``1 .. model.num_heads``.
    """
    ### BEGIN SOLUTION
    if not 1 <= keep_heads <= model.num_heads:
        raise ValueError(f"keep_heads must be in 1..{model.num_heads}, got {keep_heads}.")
    hidden, start = model.hidden_size, keep_heads * model.head_dim
    attn = model.attn
    with torch.no_grad():
        for block in range(3):  # Q, K, V
            attn.in_proj_weight[block * hidden + start : (block + 1) * hidden] = 0
            attn.in_proj_bias[block * hidden + start : (block + 1) * hidden] = 0
        attn.out_proj.weight[:, start:] = 0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "structured_pruning_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
torch.manual_seed(0)
toy = ToyTransformer(hidden_size=32, num_heads=4)  # head_dim 8, in_proj_weight [96, 32]
with torch.no_grad():  # PyTorch initialises these biases to zero: make them non-zero for the test
    toy.attn.in_proj_bias.normal_()
    toy.attn.out_proj.bias.normal_()
toy_before = copy.deepcopy(toy)
assert structured_pruning(toy, keep_heads=2) is None, (
    "structured_pruning works in place: return None."
)
w_old, w_new = toy_before.attn.in_proj_weight, toy.attn.in_proj_weight
for block, name in enumerate("QKV"):
    kept_rows = slice(block * 32, block * 32 + 16)  # heads 0 and 1 of this block
    removed_rows = slice(block * 32 + 16, block * 32 + 32)  # heads 2 and 3
    assert torch.equal(w_new[kept_rows], w_old[kept_rows]), (
        f"{name} rows {kept_rows.start}..{kept_rows.stop - 1} (kept heads 0-1) changed: leave them."
    )
    assert torch.all(w_new[removed_rows] == 0), (
        f"{name} rows {removed_rows.start}..{removed_rows.stop - 1} (heads 2-3) must be zero."
    )
    print(f"{name} block: rows of heads 0-1 unchanged, rows of heads 2-3 zero")
# The masked layer must compute what the same layer computes with gates [1, 1, 0, 0].
gated = MultiHeadSelfAttention.from_multihead_attention(toy_before.attn)
x = torch.randn(2, 5, 32)
with torch.no_grad():
    expected = gated(x, head_mask=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    got = toy.attn(x, x, x, need_weights=False)[0]
err = (got - expected).abs().max().item()
print(f"max |masked layer - layer with heads 2-3 gated off| = {err:.1e} (should be < 1e-5)")
assert err < 1e-5, (
    "The masked layer does not behave like the layer with heads 2 and 3 switched off."
)
### BEGIN HIDDEN TESTS
torch.manual_seed(1)
wide = ToyTransformer(hidden_size=48, num_heads=6)  # head_dim 8: blocks of 48 rows
nn.init.normal_(wide.attn.in_proj_bias)  # biases start at zero: make them visible
nn.init.normal_(wide.attn.out_proj.bias)
wide_before = copy.deepcopy(wide)
structured_pruning(wide, keep_heads=2)
E, k = 48, 16  # rows per block, rows kept per block
w_before, w_after = wide_before.attn.in_proj_weight, wide.attn.in_proj_weight
b_before, b_after = wide_before.attn.in_proj_bias, wide.attn.in_proj_bias
assert torch.equal(w_after[E : E + k], w_before[E : E + k]) and torch.equal(
    w_after[2 * E : 2 * E + k], w_before[2 * E : 2 * E + k]
), (
    "The K or V rows of the kept heads were zeroed. in_proj_weight stacks three blocks of "
    "hidden_size rows, [W_Q; W_K; W_V]: keep the first keep_heads*head_dim rows of EACH block."
)
assert torch.all(w_after[E + k : 2 * E] == 0) and torch.all(w_after[2 * E + k :] == 0), (
    "The K and V rows of the removed heads must be zero too, not only the Q rows."
)
for b, block_name in enumerate("QKV"):
    assert torch.equal(w_after[b * E : b * E + k], w_before[b * E : b * E + k]) and torch.all(
        w_after[b * E + k : (b + 1) * E] == 0
    ), (
        f"Wrong rows in the {block_name} block: head h of block b is rows "
        "b*hidden_size + h*head_dim .. b*hidden_size + (h+1)*head_dim - 1."
    )
for b, block_name in enumerate("QKV"):
    assert torch.all(b_after[b * E + k : (b + 1) * E] == 0), (
        f"in_proj_bias of the removed heads is not zero in the {block_name} block: "
        "zero the biases of the removed heads too."
    )
    assert torch.equal(b_after[b * E : b * E + k], b_before[b * E : b * E + k]), (
        f"in_proj_bias of the kept heads changed in the {block_name} block."
    )
assert torch.all(wide.attn.out_proj.weight[:, k:] == 0), (
    "out_proj.weight columns of the removed heads are not zero: a head writes its output "
    "through its columns hd..(h+1)d-1 of out_proj.weight."
)
assert torch.equal(wide.attn.out_proj.weight[:, :k], wide_before.attn.out_proj.weight[:, :k]), (
    "out_proj.weight columns of the kept heads changed: zero columns (dim 1), not rows (dim 0)."
)
assert torch.equal(wide.attn.out_proj.bias, wide_before.attn.out_proj.bias), (
    "out_proj.bias belongs to no head: leave it unchanged."
)
ffn_pairs = zip(wide.ffn.state_dict().values(), wide_before.ffn.state_dict().values(), strict=True)
assert all(torch.equal(a, b) for a, b in ffn_pairs), "structured_pruning must not change the FFN."
assert wide.attn.in_proj_weight.requires_grad, "in_proj_weight must stay a trainable parameter."
torch.manual_seed(2)
default = ToyTransformer(hidden_size=64, num_heads=8)
structured_pruning(default)  # default keep_heads=4
assert torch.all(default.attn.in_proj_weight[32:64] == 0) and torch.all(
    default.attn.in_proj_weight[:32] != 0
), "With the default keep_heads=4, heads 4-7 are zeroed and heads 0-3 kept."
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "structured_pruning_errors_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
for bad in (0, 5):
    expect_value_error(
        lambda bad=bad: structured_pruning(ToyTransformer(32, 4), keep_heads=bad),
        f"keep_heads={bad} with 4 heads",
    )
### BEGIN HIDDEN TESTS
full = ToyTransformer(32, 4)
full_before = copy.deepcopy(full)
try:
    structured_pruning(full, keep_heads=4)  # keeping every head is allowed and changes nothing
    structured_pruning(copy.deepcopy(full), keep_heads=1)  # keeping one head is allowed
except ValueError as exc:
    hint = "keep_heads=num_heads and keep_heads=1 are valid: raise ValueError only outside 1..num_heads."
    raise AssertionError(hint) from exc
assert torch.equal(full.attn.in_proj_weight, full_before.attn.in_proj_weight), (
    "keep_heads == num_heads is valid and must leave the weights unchanged."
)
expect_value_error(lambda: structured_pruning(full, keep_heads=-1), "keep_heads=-1")
### END HIDDEN TESTS

# %% [markdown]
# Here are the rows of `in_proj_weight` that each version leaves non-zero, for the original script's layer
# (width 256, 8 heads, keep 4). Yellow rows still contribute.

# %%
if not GRADING:
    set_seed(SEED)
    fixed_toy = ToyTransformer(hidden_size=256, num_heads=8)
    original_toy = copy.deepcopy(fixed_toy)
    original_structured_pruning(original_toy, keep_heads=4)
    structured_pruning(fixed_toy, keep_heads=4)
    alive = torch.stack(
        [m.attn.in_proj_weight.detach().ne(0).any(dim=1) for m in (original_toy, fixed_toy)]
    ).float()  # [2, 3E]
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.imshow(alive, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks([0, 1], ["seed mask", "structured_pruning"])
    ax.set_xlabel("row of in_proj_weight (768 rows = Q, K, V blocks of 256)")
    for boundary in (256, 512):
        ax.axvline(boundary - 0.5, color="white", linewidth=2)
    blocks_axis = ax.secondary_xaxis("top")
    blocks_axis.set_xticks([128, 384, 640], ["Q block", "K block", "V block"])
    blocks_axis.tick_params(length=0)
    ax.set_title("Rows left non-zero (yellow) when keeping 4 of 8 heads")
    cmap = plt.get_cmap("viridis")
    ax.legend(
        handles=[
            Patch(color=cmap(1.0), label="non-zero row (head still contributes)"),
            Patch(color=cmap(0.0), label="all-zero row"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35),
        ncols=2,
    )
    ax.grid(False)
    plt.show()
    print("non-zero rows per block (Q, K, V):")
    print(f"  seed mask          {nonzero_rows_per_block(original_toy.attn)}")
    print(f"  structured_pruning {nonzero_rows_per_block(fixed_toy.attn)}")

# %% [markdown]
# Your mask is correct, but look at what it did *not* change: `in_proj_weight` still has 768
# rows, and every matrix multiplication still multiplies all of them, zeros included. You will
# measure this in Part 3 and explain it in the written question.
#
# ## Part 2. Which heads matter?
#
# From now on we work with a real task: the course's teacher, a small vision transformer
# (`DigitsTransformer`: 2 blocks of 8 heads, width 64) trained to classify 8x8 images of digits.
# Its attention modules (`lab_utils.MultiHeadSelfAttention`) keep Q, K and V in three separate
# `nn.Linear` layers, and its `forward(images, head_mask)` accepts one gate per head.

# %%
if not GRADING:
    teacher = load_teacher()
    x_test, y_test = full_batch("test")
    x_val, y_val = full_batch("val")
    teacher_acc = accuracy(teacher, (x_test, y_test))
    print(
        f"teacher: {teacher.num_layers} layers x {teacher.heads_per_layer()[0]} heads, "
        f"{count_parameters(teacher):,} parameters, test accuracy {teacher_acc:.1%}"
    )
    summary["teacher_acc"] = teacher_acc

# %% [markdown]
# **Intuition.** Put a gate $\xi_h$ in front of every head (the `head_mask`). At $\xi_h = 1$ the
# head works normally, at $\xi_h = 0$ it is removed. If the loss hardly changes when we nudge
# $\xi_h$, the head can probably go.
#
# **The maths.** Michel et al. (2019) score head $h$ by the sensitivity of the loss $L$ to its
# gate, evaluated with all gates at 1:
#
# $$
# I_h = \left| \frac{\partial L}{\partial \xi_h} \right|_{\xi = \mathbf 1} .
# $$
#
# A first-order Taylor expansion explains why: removing the head changes the loss by
# $L(\xi_h = 0) - L(\xi_h = 1) \approx -\partial L / \partial \xi_h$. The absolute value ranks
# heads by how much their removal would change the loss, in either direction: a head whose removal
# lowers the loss still has a large effect on what the model computes. One backward pass gives the
# scores of all heads at once. Michel et al. take the expectation of $I_h$ over examples; the
# paper also normalises the scores per layer, which we skip.
#
# ### Exercise 2 (3 points): head importance
#
# Write `head_importance`: build an all-ones gate tensor that requires a gradient, compute the
# mean cross-entropy of `model(inputs, head_mask=gates)` against `labels`, and return the absolute
# gradient of that loss with respect to the gates (hint: `torch.autograd.grad`). Do not change the
# model.


# %% nbgrader={"grade": false, "grade_id": "head_importance_answer", "locked": false, "schema_version": 3, "solution": true}
def head_importance(
    model: DigitsTransformer, inputs: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Michel et al.'s head importance ``|dL/d gate|`` at all gates = 1, unnormalised.

    Inputs:
        model: a ``DigitsTransformer`` whose layers all have the same number of heads.
        inputs: images ``[B, 8, 8]`` (float, same dtype as the model).
        labels: class indices ``[B]`` (int64).
    Returns:
        A tensor ``[num_layers, num_heads]`` (the model's float dtype, no gradient attached): the
        absolute gradient of the mean cross-entropy loss of ``model(inputs, head_mask=gates)``
        with respect to ``gates``, evaluated at ``gates = 1``. The model is left unchanged: same
        weights, and every parameter still trainable (``requires_grad``).
    """
    ### BEGIN SOLUTION
    heads = model.heads_per_layer()
    if len(set(heads)) != 1:
        raise ValueError(f"Every layer needs the same number of heads, got {heads}.")
    dtype = next(model.parameters()).dtype
    gates = torch.ones(model.num_layers, heads[0], dtype=dtype, requires_grad=True)
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    (grad,) = torch.autograd.grad(loss, gates)
    return grad.abs()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "head_importance_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check_model = load_teacher()
check_x, check_y = (t[:32] for t in full_batch("val"))
importance = head_importance(check_model, check_x, check_y)
print("importance of the teacher's heads on 32 validation images:\n", importance)
assert isinstance(importance, torch.Tensor) and tuple(importance.shape) == (2, 8), (
    f"Expected a tensor of shape [num_layers, num_heads] = [2, 8], got {getattr(importance, 'shape', importance)}."
)
assert torch.all(importance >= 0), "Importance is an absolute value: no score may be negative."
# Gradient check: compare with central finite differences of the loss, in float64.
model64 = copy.deepcopy(check_model).double()
x64 = check_x.double()
importance64 = head_importance(model64, x64, check_y).double()
eps = 1e-5
numeric = torch.zeros(2, 8, dtype=torch.float64)
with torch.no_grad():
    for layer in range(2):
        for head in range(8):
            plus = torch.ones(2, 8, dtype=torch.float64)
            plus[layer, head] += eps
            minus = torch.ones(2, 8, dtype=torch.float64)
            minus[layer, head] -= eps
            loss_plus = F.cross_entropy(model64(x64, head_mask=plus), check_y)
            loss_minus = F.cross_entropy(model64(x64, head_mask=minus), check_y)
            numeric[layer, head] = (loss_plus - loss_minus) / (2 * eps)
rel_err = ((importance64 - numeric.abs()).abs() / numeric.abs().clamp_min(1e-8)).max().item()
print(f"max relative error against finite differences: {rel_err:.1e} (should be < 1e-4)")
assert rel_err < 1e-4, (
    "head_importance does not match |d loss / d gate| estimated by finite differences: "
    "differentiate the MEAN cross-entropy with respect to the gates (all ones), not the weights."
)
### BEGIN HIDDEN TESTS
torch.manual_seed(3)
other = DigitsTransformer(width=24, num_heads=3, num_layers=3, ffn_width=32)
x_other, y_other = torch.rand(20, 8, 8), torch.randint(0, 10, (20,))
state = {k: v.clone() for k, v in other.state_dict().items()}
got = head_importance(other, x_other, y_other)
ref_gates = torch.ones(3, 3, requires_grad=True)
(ref_grad,) = torch.autograd.grad(
    F.cross_entropy(other(x_other, head_mask=ref_gates), y_other), ref_gates
)
assert tuple(got.shape) == (3, 3), (
    f"For 3 layers of 3 heads expect shape [3, 3], got {list(got.shape)}: one row per layer."
)
assert torch.all(got >= 0), "Take the absolute value of the gradient."
assert not torch.allclose(got, ref_grad.abs() * 20, rtol=1e-3), (
    "Your scores are batch_size times too large: use the mean cross-entropy, not the sum."
)
assert torch.allclose(got, ref_grad.abs(), rtol=1e-4, atol=1e-8), (
    "head_importance differs from |d mean CE / d gates| at gates = 1 on a 3-layer, 3-head model."
)
assert not got.requires_grad, "Return a plain tensor: detach it from the autograd graph."
assert all(torch.equal(state[k], v) for k, v in other.state_dict().items()), (
    "head_importance changed the model's weights."
)
assert all(p.requires_grad for p in other.parameters()), (
    "head_importance left the model's parameters frozen (requires_grad=False): it must not "
    "change the model, which is fine-tuned later."
)
### END HIDDEN TESTS

# %% [markdown]
# Michel et al. average $I_h$ over examples. With one big batch, your function takes the absolute
# value of the *averaged* gradient instead, and opposite signs from different images cancel. The
# next cell computes both on the validation split: the average of your function over mini-batches
# of `IMPORTANCE_BATCH` images (close to the paper), and your function on the whole split at once.

# %%
if not GRADING:
    batches = range(0, len(y_val), IMPORTANCE_BATCH)
    importance_mb = torch.stack(
        [
            head_importance(
                teacher, x_val[i : i + IMPORTANCE_BATCH], y_val[i : i + IMPORTANCE_BATCH]
            )
            for i in tqdm(batches, desc="importance", leave=False)
        ]
    ).mean(dim=0)
    importance_fb = head_importance(teacher, x_val, y_val)

    fig, axes = plt.subplots(1, 2, figsize=(10, 2.9))
    titles = (
        f"averaged over batches of {IMPORTANCE_BATCH}",
        f"one batch of {len(y_val)} (signs cancel)",
    )
    for ax, scores, title in zip(axes, (importance_mb, importance_fb), titles, strict=True):
        image = ax.imshow(scores, cmap="magma", aspect="auto")
        for (layer, head), value in np.ndenumerate(scores.numpy()):
            shade = "black" if value > scores.max().item() * 0.6 else "white"
            ax.text(head, layer, f"{value:.3f}", ha="center", va="center", fontsize=7, color=shade)
        ax.set_xticks(range(scores.shape[1]))
        ax.set_yticks(range(scores.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"Head importance, {title}", fontsize=10)
        ax.grid(False)
        fig.colorbar(image, ax=ax, label="|dL/d gate| (loss per unit gate)")
    fig.tight_layout()
    plt.show()
    summary["importance_minibatch_total"] = importance_mb.sum().item()
    summary["importance_one_batch_total"] = importance_fb.sum().item()

# %% [markdown]
# **Sensitivity.** Is the ranking any good? Below we switch heads off one by one (gate 0) and
# measure test accuracy, in four orders: least important first (mini-batch scores), most important
# first, least important first by the one-batch scores, and several random orders. A good score
# keeps the first curve high for longest.


# %%
def masked_accuracy_curve(order: torch.Tensor, layers: int, heads: int) -> list[float]:
    """Test accuracy with the first 0, 1, ..., layers*heads heads of ``order`` gated off."""
    curve = []
    for count in range(layers * heads + 1):
        gates = torch.ones(layers * heads)
        gates[order[:count]] = 0
        curve.append(accuracy(teacher, (x_test, y_test), head_mask=gates.view(layers, heads)))
    return curve


if not GRADING:
    L, H = importance_mb.shape
    orders = {
        "importance, least first": importance_mb.flatten().argsort(stable=True),
        "importance, most first": importance_mb.flatten().argsort(stable=True, descending=True),
        "one-batch importance, least first": importance_fb.flatten().argsort(stable=True),
    }
    curves = {
        name: masked_accuracy_curve(order, L, H)
        for name, order in tqdm(orders.items(), desc="sensitivity", leave=False)
    }
    random_curves = [
        masked_accuracy_curve(
            torch.randperm(L * H, generator=torch.Generator().manual_seed(s)), L, H
        )
        for s in tqdm(range(SEED, SEED + RANDOM_ORDERS), desc="random orders", leave=False)
    ]
    counts = np.arange(L * H + 1)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, curve in enumerate(random_curves):
        label = f"random order ({RANDOM_ORDERS} seeds)" if i == 0 else None
        ax.plot(counts, np.array(curve) * 100, color="grey", alpha=0.35, linewidth=1, label=label)
    ax.plot(
        counts,
        np.mean(random_curves, axis=0) * 100,
        color="grey",
        linewidth=2.5,
        label="random, mean",
    )
    styles = {
        "importance, least first": dict(color="C0", marker="o"),
        "importance, most first": dict(color="C3", marker="s"),
        "one-batch importance, least first": dict(color="C0", linestyle="--"),
    }
    for name, curve in curves.items():
        ax.plot(counts, np.array(curve) * 100, label=name, markersize=4, **styles[name])
    ax.set_xlabel(f"heads switched off (of {L * H})")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy as heads are removed, by pruning order")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower left")
    plt.show()
    half = L * H // 2
    print(f"test accuracy with {half} of {L * H} heads off:")
    for name, curve in curves.items():
        print(f"  {name:36s} {curve[half]:.1%}")
    print(f"  {'random order, mean':36s} {np.mean([c[half] for c in random_curves]):.1%}")
    summary["sens_half_off_importance_acc"] = curves["importance, least first"][half]
    summary["sens_up_to_half_off_importance_min_acc"] = min(
        curves["importance, least first"][: half + 1]
    )
    summary["sens_half_off_reverse_acc"] = curves["importance, most first"][half]
    summary["sens_half_off_one_batch_acc"] = curves["one-batch importance, least first"][half]
    summary["sens_half_off_random_mean_acc"] = float(np.mean([c[half] for c in random_curves]))
    summary["sens_half_off_random_min_acc"] = min(c[half] for c in random_curves)
    summary["sens_half_off_random_max_acc"] = max(c[half] for c in random_curves)
    # The mean of a curve over 0..L*H heads off is its area, as a fraction of the whole plot.
    summary["sens_area_importance"] = float(np.mean(curves["importance, least first"]))
    summary["sens_area_reverse"] = float(np.mean(curves["importance, most first"]))
    summary["sens_area_one_batch"] = float(np.mean(curves["one-batch importance, least first"]))
    summary["sens_area_random_mean"] = float(np.mean(random_curves))

# %% [markdown]
# Read the figure from left to right. Removing heads in the order of the averaged scores keeps the
# accuracy close to the teacher's until half of the heads are off; removing the most important
# heads first ruins it far sooner; random orders land in between, with a wide spread between seeds.
# The dashed curve (one-batch scores) lies below the solid one, with half of the heads off and on
# average over the figure: that is the price of letting per-image gradients cancel.
#
# ## Part 3. Removing heads for real
#
# A gate of zero (or zeroed weights) still costs a full matrix multiplication. To gain anything we
# must build *smaller* matrices. In `MultiHeadSelfAttention` the projections are separate
# `nn.Linear` layers, so removing heads $R$ means keeping, for the other heads $h$:
#
# * rows $hd, \dots, (h+1)d - 1$ of `q_proj`, `k_proj` and `v_proj` (weights **and** biases):
#   the new projections have $(n - |R|)\,d$ outputs;
# * columns $hd, \dots, (h+1)d - 1$ of `out_proj.weight`; `out_proj.bias` belongs to no head and
#   is kept whole.
#
# Hugging Face transformers does the same with a tiny helper, `prune_linear_layer`, that builds a
# new `nn.Linear` from `weight.index_select(dim, index)`.
#
# ### Exercise 3 (4 points): prune heads from one attention module
#
# Write `prune_heads`. Return a *new* `MultiHeadSelfAttention(embed_dim, kept heads, head_dim)`
# holding copies of the kept rows and columns, in the original order of the heads. Do not modify
# `attn`, and do not let the new module share tensors with it.


# %% nbgrader={"grade": false, "grade_id": "prune_heads_answer", "locked": false, "schema_version": 3, "solution": true}
def prune_heads(attn: MultiHeadSelfAttention, heads: list[int]) -> MultiHeadSelfAttention:
    """A new, smaller copy of ``attn`` with the heads ``heads`` physically removed.

    Inputs:
        attn: ``MultiHeadSelfAttention`` with ``num_heads = n``, ``head_dim = d``:
            ``q_proj``, ``k_proj``, ``v_proj`` are ``Linear(embed_dim, n*d)`` (weight ``[n*d, E]``,
            bias ``[n*d]``), ``out_proj`` is ``Linear(n*d, E)`` (weight ``[E, n*d]``, bias ``[E]``).
            ``n*d`` need not equal ``E``: ``attn`` may itself come from ``prune_heads``, and its
            heads are then numbered ``0 .. n-1`` in their current order.
        heads: indices in ``0 .. n-1`` of the heads to remove (any order, no repeats; may be
            empty). The list itself is not modified.
    Returns:
        A new ``MultiHeadSelfAttention(E, n - len(heads), d)``: rows of the kept heads of the Q, K,
        V weights and biases, their columns of ``out_proj.weight``, all of ``out_proj.bias``, kept
        heads in their original order (an empty ``heads`` gives a full-size copy). Its parameters
        are trainable copies that share no memory with ``attn``; ``attn`` is left unchanged. Its
        output equals ``attn(x, head_mask=m)`` where ``m`` is 0 for ``heads`` and 1 elsewhere.
    Raises:
        ValueError: if a head is outside ``0 .. n-1`` or repeated, or if every head would go.
    """
    ### BEGIN SOLUTION
    n, d = attn.num_heads, attn.head_dim
    heads = list(heads)
    if any(not 0 <= h < n for h in heads):
        raise ValueError(f"Heads must be in 0..{n - 1}, got {heads}.")
    if len(set(heads)) != len(heads):
        raise ValueError(f"Repeated head in {heads}.")
    if len(heads) == n:
        raise ValueError(f"Cannot remove all {n} heads of a layer.")
    keep = [h for h in range(n) if h not in heads]
    rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    pruned = MultiHeadSelfAttention(attn.embed_dim, len(keep), d)
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            old, new = getattr(attn, name), getattr(pruned, name)
            new.weight.copy_(old.weight.index_select(0, rows))
            new.bias.copy_(old.bias.index_select(0, rows))
        pruned.out_proj.weight.copy_(attn.out_proj.weight.index_select(1, rows))
        pruned.out_proj.bias.copy_(attn.out_proj.bias)
    return pruned
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "prune_heads_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
torch.manual_seed(0)
attn = MultiHeadSelfAttention(embed_dim=16, num_heads=4)  # head_dim 4
attn_state = {k: v.clone() for k, v in attn.state_dict().items()}
small = prune_heads(attn, [1, 3])
assert isinstance(small, MultiHeadSelfAttention) and small is not attn, (
    "Return a new MultiHeadSelfAttention."
)
print(f"num_heads {small.num_heads}, head_dim {small.head_dim}, embed_dim {small.embed_dim}")
assert (small.num_heads, small.head_dim, small.embed_dim) == (2, 4, 16), (
    "Removing 2 of 4 heads leaves num_heads=2 with head_dim and embed_dim unchanged."
)
shapes = {name: tuple(p.shape) for name, p in small.named_parameters()}
print("parameter shapes:", shapes)
assert shapes["q_proj.weight"] == (8, 16) and shapes["out_proj.weight"] == (16, 8), (
    "q/k/v_proj.weight should be [kept*head_dim, embed_dim] = [8, 16] and out_proj.weight [16, 8]."
)
x = torch.randn(2, 5, 16)
with torch.no_grad():
    expected = attn(x, head_mask=torch.tensor([1.0, 0.0, 1.0, 0.0]))
    err = (small(x) - expected).abs().max().item()
print(f"max |pruned(x) - attn(x, gates [1, 0, 1, 0])| = {err:.1e} (should be < 1e-5)")
assert err < 1e-5, "The pruned module must compute what attn computes with heads 1 and 3 gated off."
assert all(torch.equal(attn_state[k], v) for k, v in attn.state_dict().items()), (
    "prune_heads changed its input module: build a new one."
)
assert attn.num_heads == 4, "prune_heads changed attn.num_heads of its input."
### BEGIN HIDDEN TESTS
torch.manual_seed(4)
odd = MultiHeadSelfAttention(embed_dim=12, num_heads=3, head_dim=5)  # inner width 15 != 12
odd_state = {key: value.clone() for key, value in odd.state_dict().items()}
odd_small = prune_heads(odd, [1])
rows = torch.cat([torch.arange(0, 5), torch.arange(10, 15)])
assert odd_small.head_dim == 5 and odd_small.num_heads == 2 and odd_small.embed_dim == 12, (
    "Use attn.head_dim (here 5, not embed_dim // num_heads) and keep embed_dim."
)
for name in ("q_proj", "k_proj", "v_proj"):
    new, old = getattr(odd_small, name), getattr(odd, name)
    assert tuple(new.weight.shape) == (10, 12), (
        f"{name}.weight should be [kept*head_dim, embed_dim] = [10, 12], got "
        f"{list(new.weight.shape)}: remove ROWS (dim 0) of the Q/K/V weights, not columns."
    )
    assert torch.equal(new.weight, old.weight[rows]), (
        f"{name}.weight should hold rows h*head_dim..(h+1)*head_dim-1 of each kept head h."
    )
    assert torch.equal(new.bias, old.bias[rows]), (
        f"{name}.bias is not the kept heads' bias entries: copy the biases too."
    )
assert torch.equal(odd_small.out_proj.weight, odd.out_proj.weight[:, rows]), (
    "out_proj.weight should keep the COLUMNS of the kept heads (its input features)."
)
assert torch.equal(odd_small.out_proj.bias, odd.out_proj.bias), (
    "Copy out_proj.bias unchanged: it belongs to no head."
)
x_odd = torch.randn(3, 4, 12)
gap = (odd_small(x_odd) - odd(x_odd, head_mask=torch.tensor([1.0, 0.0, 1.0]))).abs().max().item()
assert gap < 1e-5, (
    "With head_dim != embed_dim / num_heads the output does not match the gated input."
)
assert all(torch.equal(odd_state[key], value) for key, value in odd.state_dict().items()), (
    "prune_heads changed its input module."
)
assert all(p.requires_grad for p in odd_small.parameters()), (
    "The pruned module's parameters must be trainable (requires_grad=True) for fine-tuning."
)
for p in odd_small.parameters():
    p.data.add_(1.0)
assert all(torch.equal(odd_state[key], value) for key, value in odd.state_dict().items()), (
    "The pruned module shares tensors with its input (changing one changes the other): copy them."
)
torch.manual_seed(5)
four = MultiHeadSelfAttention(16, 4)
x4 = torch.randn(2, 6, 16)
gap = (prune_heads(four, [3, 0])(x4) - four(x4, head_mask=torch.tensor([0.0, 1, 1, 0]))).abs().max()
assert gap < 1e-5, "Heads may be listed in any order: [3, 0] removes heads 0 and 3."
twice = prune_heads(prune_heads(four, [0]), [1])  # the second call sees heads 1, 2, 3 as 0, 1, 2
gap = (twice(x4) - four(x4, head_mask=torch.tensor([0.0, 1, 0, 1]))).abs().max()
assert gap < 1e-5, "Pruning an already pruned module must work (use its current num_heads)."
heads_arg = [3, 0]
prune_heads(four, heads_arg)
assert heads_arg == [3, 0], "prune_heads reordered or changed the caller's list of heads."
same = prune_heads(four, [])
assert same is not four and same.num_heads == 4, "An empty list returns a full-size copy."
assert (same(x4) - four(x4)).abs().max() < 1e-6, "An empty list must not change the output."
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "prune_heads_errors_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
attn = MultiHeadSelfAttention(embed_dim=16, num_heads=4)
expect_value_error(lambda: prune_heads(attn, [4]), "head 4 of a 4-head module")
expect_value_error(lambda: prune_heads(attn, [0, 1, 2, 3]), "removing every head")
### BEGIN HIDDEN TESTS
expect_value_error(lambda: prune_heads(attn, [-1]), "head -1 (negative indices are out of range)")
expect_value_error(lambda: prune_heads(attn, [2, 2]), "a repeated head")
expect_value_error(lambda: prune_heads(attn, [3, 2, 1, 0]), "removing every head, in any order")
try:
    assert prune_heads(attn, [0, 1, 2]).num_heads == 1, "Removing all but one head leaves 1."
except ValueError as exc:
    raise AssertionError("Removing all heads but one is allowed: do not raise for it.") from exc
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 (3 points): prune a whole model by global importance
#
# Now remove heads across the whole model. Rank all heads of all layers together (a *global*
# ranking: a layer full of unimportant heads should lose more of them) and repeatedly remove the
# least important remaining head whose layer still has more than one head; a layer with no head
# left would cut the model's token mixing at that depth. Start from a deep copy of the model
# (`copy.deepcopy`) and replace each block's `attn` by the result of your `prune_heads`, calling
# it once per layer with all the heads to remove from that layer (indices of the *original*
# layer).


# %% nbgrader={"grade": false, "grade_id": "prune_model_answer", "locked": false, "schema_version": 3, "solution": true}
def prune_model(
    model: DigitsTransformer, importance: torch.Tensor, num_heads_to_prune: int
) -> DigitsTransformer:
    """A pruned copy of ``model`` without its ``num_heads_to_prune`` least important heads.

    Inputs:
        model: a ``DigitsTransformer`` with ``num_layers`` layers of ``num_heads`` heads.
        importance: float scores ``[num_layers, num_heads]``; higher means more important.
        num_heads_to_prune: how many heads to remove in total (int, >= 0).
    Returns:
        A new ``DigitsTransformer`` (``model`` is left unchanged, and ``num_heads_to_prune = 0``
        gives a copy). Heads are removed one at a time: each time, the least important remaining
        head of the whole model (all layers ranked together) whose layer still has more than one
        head. The copy computes what ``model`` computes with the removed heads gated off.
    Raises:
        ValueError: if ``num_heads_to_prune`` is negative or larger than the number of heads that
            can go while every layer keeps one (``total heads - num_layers``), or if
            ``importance`` does not have shape ``[num_layers, num_heads]``.
    """
    ### BEGIN SOLUTION
    heads = model.heads_per_layer()
    if tuple(importance.shape) != (model.num_layers, max(heads)):
        raise ValueError(
            f"importance must have shape [{model.num_layers}, {max(heads)}], "
            f"got {list(importance.shape)}."
        )
    removable = sum(h - 1 for h in heads)
    if not 0 <= num_heads_to_prune <= removable:
        raise ValueError(
            f"Can remove 0..{removable} heads while keeping one per layer, "
            f"got {num_heads_to_prune}."
        )
    remaining = list(heads)
    to_remove: list[list[int]] = [[] for _ in heads]
    num_cols = importance.shape[1]
    for flat in importance.flatten().argsort(stable=True).tolist():  # least important first
        if sum(len(r) for r in to_remove) == num_heads_to_prune:
            break
        layer, head = divmod(flat, num_cols)
        if remaining[layer] > 1:
            to_remove[layer].append(head)
            remaining[layer] -= 1
    pruned = copy.deepcopy(model)
    for block, removed in zip(pruned.blocks, to_remove, strict=True):
        if removed:
            block.attn = prune_heads(block.attn, removed)
    return pruned
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "prune_model_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check_model = load_teacher()
check_state = {k: v.clone() for k, v in check_model.state_dict().items()}
check_x = full_batch("val")[0][:16]
# Layer 1's heads are the least important: scores 7 (head 0) down to 0 (head 7).
scores = torch.arange(16.0).flip(0).view(2, 8)
print("importance used by the test:\n", scores)
small = prune_model(check_model, scores, 3)
assert isinstance(small, DigitsTransformer) and small is not check_model, (
    "Return a new DigitsTransformer."
)
print("heads per layer after removing 3:", small.heads_per_layer())
assert small.heads_per_layer() == [8, 5], (
    "The 3 least important heads are heads 5, 6, 7 of layer 1: expected heads per layer [8, 5]."
)
gates = torch.ones(2, 8)
gates[1, 5:] = 0
with torch.no_grad():
    err = (small(check_x) - check_model(check_x, head_mask=gates)).abs().max().item()
print(f"max |pruned model - teacher with those heads gated off| = {err:.1e} (should be < 1e-5)")
assert err < 1e-5, (
    "The pruned model must compute what the input computes with those heads gated off."
)
assert check_model.heads_per_layer() == [8, 8] and all(
    torch.equal(check_state[k], v) for k, v in check_model.state_dict().items()
), "prune_model changed its input model: prune a copy.deepcopy of it."
### BEGIN HIDDEN TESTS
four = prune_model(check_model, scores, 4)
assert four.heads_per_layer() == [8, 4], (
    f"Got heads per layer {four.heads_per_layer()} for 4 heads: rank ALL heads globally, "
    "not a fixed number per layer (the 4 least important are all in layer 1)."
)
assert prune_model(check_model, scores.flip(0), 3).heads_per_layer() == [5, 8], (
    "Remove the LEAST important heads (smallest scores) first."
)
try:
    eight = prune_model(check_model, scores, 8)
except ValueError as exc:
    hint = (
        "prune_model failed for 8 heads: when a layer is down to one head, skip it and take the "
        "next least important head elsewhere, never empty a layer."
    )
    raise AssertionError(hint) from exc
assert eight.heads_per_layer() == [7, 1], (
    f"8 heads should leave [7, 1] (layer 1 keeps one head, then layer 0 loses its least "
    f"important), got {eight.heads_per_layer()}: never empty a layer, and skip it instead of "
    "stopping."
)
eight_gates = torch.ones(2, 8)
eight_gates[1, 1:] = 0
eight_gates[0, 7] = 0
gap = (eight(check_x) - check_model(check_x, head_mask=eight_gates)).abs().max().item()
assert gap < 1e-5, "With 8 heads removed, the wrong heads were removed."
torch.manual_seed(6)
net = DigitsTransformer(width=16, num_heads=4, num_layers=3, ffn_width=32)
net_scores = torch.tensor([[0.5, 0.1, 0.9, 0.3], [0.8, 0.2, 0.05, 0.7], [0.6, 0.95, 0.4, 0.15]])
x_net = torch.rand(5, 8, 8)
shift_hint = (
    "Give prune_heads the ORIGINAL indices of all heads to remove from a layer in one call "
    "(after a head is removed, the later heads shift down by one)."
)
for count, expected_gates in (
    (5, [[1, 0, 1, 0], [1, 0, 0, 1], [1, 1, 1, 0]]),
    (8, [[0, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 0]]),
):
    try:
        pruned_net = prune_model(net, net_scores, count)
    except ValueError as exc:
        raise AssertionError(f"3x4 heads, {count} removed: raised {exc!r}. {shift_hint}") from exc
    net_gates = torch.tensor(expected_gates, dtype=torch.float32)
    assert pruned_net.heads_per_layer() == net_gates.sum(dim=1).int().tolist(), (
        f"3 layers of 4 heads, {count} removed: wrong heads per layer {pruned_net.heads_per_layer()}."
    )
    gap = (pruned_net(x_net) - net(x_net, head_mask=net_gates)).abs().max().item()
    assert gap < 1e-5, f"3x4 heads, {count} removed: the wrong heads were removed. {shift_hint}"
zero = prune_model(net, net_scores, 0)
assert zero is not net and zero.heads_per_layer() == [4, 4, 4], "Pruning 0 heads returns a copy."
state_after = check_model.state_dict()
assert check_model.heads_per_layer() == [8, 8], "prune_model changed its input model's heads."
assert all(torch.equal(state_after[key], value) for key, value in check_state.items()), (
    "prune_model changed its input model's weights."
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "prune_model_errors_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check_model = load_teacher()
scores = torch.arange(16.0).view(2, 8)
expect_value_error(lambda: prune_model(check_model, scores, 15), "15 of 16 heads in 2 layers")
### BEGIN HIDDEN TESTS
expect_value_error(lambda: prune_model(check_model, scores, 16), "all 16 heads")
expect_value_error(lambda: prune_model(check_model, scores, -1), "a negative count")
try:
    fourteen = prune_model(check_model, scores, 14)
except ValueError as exc:
    hint = "Removing 14 of 16 heads (one left per layer) is allowed: do not raise for it."
    raise AssertionError(hint) from exc
assert fourteen.heads_per_layer() == [1, 1], "14 heads leave [1, 1]."
### END HIDDEN TESTS

# %% [markdown]
# ### Masked versus pruned: same outputs, different costs
#
# We prune the teacher by the averaged importance scores from Part 2, removing 25%, 50% and 75%
# of its heads. First a check: each pruned model must compute exactly what the teacher computes
# with the same heads gated off. The helper below finds which heads a pruned model lost by
# matching its query weights against the teacher's.


# %%
def removed_heads(original: DigitsTransformer, pruned: DigitsTransformer) -> list[list[int]]:
    """For each layer, the original indices of the heads whose query rows are gone from ``pruned``."""
    removed = []
    for old_block, new_block in zip(original.blocks, pruned.blocks, strict=True):
        old, new = old_block.attn, new_block.attn
        old_q = old.q_proj.weight.view(old.num_heads, old.head_dim, -1)  # [n, d, E]
        new_q = new.q_proj.weight.view(new.num_heads, new.head_dim, -1)
        removed.append(
            [h for h in range(old.num_heads) if not any(torch.equal(old_q[h], q) for q in new_q)]
        )
    return removed


if not GRADING:
    total_heads = sum(teacher.heads_per_layer())
    fractions = (0.25, 0.5, 0.75)
    pruned_models, masks = {}, {}
    for fraction in fractions:
        count = round(fraction * total_heads)
        pruned_models[fraction] = prune_model(teacher, importance_mb, count)
        gates = torch.ones(teacher.num_layers, total_heads // teacher.num_layers)
        for layer, heads in enumerate(removed_heads(teacher, pruned_models[fraction])):
            gates[layer, heads] = 0
        masks[fraction] = gates
    max_diff = 0.0
    with torch.no_grad():
        for fraction, model in pruned_models.items():
            diff = (model(x_test) - teacher(x_test, head_mask=masks[fraction])).abs().max().item()
            max_diff = max(max_diff, diff)
            print(
                f"{fraction:.0%} of heads removed: heads per layer {model.heads_per_layer()}, "
                f"max |pruned - masked| logit difference on the test set {diff:.1e}"
            )
    assert max_diff < 1e-4, "A pruned model does not match the masked teacher."
    summary["masked_vs_pruned_max_diff"] = max_diff

# %% [markdown]
# Now the costs. The table times one forward pass on a batch of `LATENCY_BATCH` test images
# (median over many runs after a warm-up, one thread, best of `LATENCY_REPEATS` rounds so that a
# busy machine distorts the comparison less). The masked teacher has the same outputs as the 50%
# pruned model (checked above).


# %%
def best_latencies(
    calls: dict[str, tuple[nn.Module, tuple[torch.Tensor, ...]]], repeats: int
) -> dict[str, float]:
    """Seconds per call of each ``model(*inputs)``: fastest of ``repeats`` interleaved medians."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in tqdm(range(repeats), desc="timing rounds", leave=False):
        for name, (model, inputs) in calls.items():
            times[name].append(measure_latency(model, *inputs, min_run_time=0.05))
    return {name: min(values) for name, values in times.items()}


if not GRADING:
    x_bench = x_test[:LATENCY_BATCH]
    rows_spec = {
        "teacher": (teacher, (x_bench,)),
        "teacher, 50% masked": (teacher, (x_bench, masks[0.5])),
    }
    rows_spec |= {f"{f:.0%} heads removed": (pruned_models[f], (x_bench,)) for f in fractions}
    latency = best_latencies(rows_spec, LATENCY_REPEATS)
    base_params, base_bytes = count_parameters(teacher), serialized_size(teacher)
    table = []
    results = {}
    for name, (model, inputs) in rows_spec.items():
        mask = inputs[1] if len(inputs) > 1 else None
        acc = accuracy(model, (x_test, y_test), **({"head_mask": mask} if mask is not None else {}))
        params, size = count_parameters(model), serialized_size(model)
        results[name] = dict(acc=acc, params=params, bytes=size, latency=latency[name])
        heads = mask.sum(dim=1).int().tolist() if mask is not None else model.heads_per_layer()
        table.append(
            [
                name,
                heads,
                f"{params:,} ({params / base_params:.2f}x)",
                f"{size / 1024:.1f} ({size / base_bytes:.2f}x)",
                f"{latency[name] * 1e3:.2f} ({latency['teacher'] / latency[name]:.2f}x)",
                f"{acc:.1%}",
            ]
        )
    display(
        markdown_table(
            [
                "model",
                "heads per layer",
                "parameters",
                "serialized KiB",
                f"latency ms, batch {LATENCY_BATCH} (speed-up)",
                "test accuracy",
            ],
            table,
        )
    )
    for f in fractions:
        pruned = results[f"{f:.0%} heads removed"]
        summary[f"pruned{f * 100:.0f}_acc"] = pruned["acc"]
        summary[f"params_ratio_{f * 100:.0f}"] = pruned["params"] / base_params
        summary[f"bytes_ratio_{f * 100:.0f}"] = pruned["bytes"] / base_bytes
    summary["digits_speedup_50"] = latency["teacher"] / results["50% heads removed"]["latency"]
    summary["digits_speedup_masked_50"] = latency["teacher"] / latency["teacher, 50% masked"]

# %% [markdown]
# The masked teacher keeps every parameter and byte of the teacher and does all of its arithmetic
# (the zeros are still stored and multiplied, and the gates add a few multiplications). Is the gap
# between their latencies larger than the change you see when you run the cell again? The pruned
# models shrink, but less than the fraction of heads removed, because the embedding, the FFNs and
# the classifier are untouched. Now compare their speed-ups with what the removed attention work
# suggests: removing three quarters of the heads makes the attention products four times cheaper.
# If they fall short, why? At width 64 with 17 tokens every matrix product is tiny: think about the
# layers that were not pruned, and about the fixed cost of launching each operation, which is the
# same whatever the number of heads.
#
# ## Part 4. When does removing heads pay off?
#
# Does the arithmetic take over at a realistic size? Take one attention layer of the original script's
# width, $E = 256$ with $n = 8$ heads of $d = 32$, on a batch of $B = 16$ sequences of $T = 128$ tokens.
# Its multiply-adds are
#
# $$
# \underbrace{3 \cdot BTE\,nd}_{Q,K,V} + \underbrace{2 \cdot BT^2\,nd}_{QK^\top,\ \text{weights}\cdot V}
# + \underbrace{BT\,nd\,E}_{\text{out}} ,
# $$
#
# every term proportional to the number of heads $n$. Removing half the heads should therefore
# halve the work, an expected ratio near 2x. The next cell times the full layer, the layer with
# half its heads gated off (masking) and the layer with those heads removed by `prune_heads`.


# %%
def attention_macs(batch: int, tokens: int, embed: int, heads: int, head_dim: int) -> int:
    """Multiply-adds of one ``MultiHeadSelfAttention`` forward pass (projections and attention)."""
    inner = heads * head_dim
    return (
        3 * batch * tokens * embed * inner
        + 2 * batch * tokens**2 * inner
        + batch * tokens * inner * embed
    )


if not GRADING:
    set_seed(SEED)
    big = MultiHeadSelfAttention(embed_dim=256, num_heads=8)
    x_big = torch.randn(16, 128, 256)
    big_half = prune_heads(big, [4, 5, 6, 7])
    half_gates = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0])
    with torch.no_grad():
        big_diff = (big_half(x_big) - big(x_big, head_mask=half_gates)).abs().max().item()
    print(f"max |pruned - masked| on [16, 128, 256]: {big_diff:.1e}")
    big_latency = best_latencies(
        {
            "8 heads": (big, (x_big,)),
            "8 heads, 4 masked": (big, (x_big, half_gates)),
            "4 heads (pruned)": (big_half, (x_big,)),
        },
        LATENCY_REPEATS,
    )
    mac_ratio = attention_macs(16, 128, 256, 8, 32) / attention_macs(16, 128, 256, 4, 32)
    display(
        markdown_table(
            ["attention layer, input [16, 128, 256]", "latency ms", "speed-up vs 8 heads"],
            [
                [name, f"{t * 1e3:.2f}", f"{big_latency['8 heads'] / t:.2f}x"]
                for name, t in big_latency.items()
            ],
        )
    )
    speedup = big_latency["8 heads"] / big_latency["4 heads (pruned)"]
    masked_speedup = big_latency["8 heads"] / big_latency["8 heads, 4 masked"]
    print(
        f"multiply-add ratio 8 heads / 4 heads: {mac_ratio:.2f}; measured speed-up of the pruned "
        f"layer {speedup:.2f}x ({speedup / mac_ratio:.0%} of that ratio), of the masked layer "
        f"{masked_speedup:.2f}x"
    )
    summary["attn_layer_speedup_half_heads"] = speedup
    summary["attn_layer_speedup_masked"] = masked_speedup
    summary["attn_layer_mac_ratio"] = mac_ratio

# %% [markdown]
# How close does the measured speed-up of the pruned layer come to the multiply-add ratio, and
# what does masking buy? Measured ratios can wander around the ideal: the softmax, the reshapes and
# memory traffic do not scale exactly with the head count, the smaller matrices may fit the CPU
# caches better, and other programs competing for the CPU add noise. If the table looks odd, run
# the cell again.
#
# ### Written question (2 points)
#
# Using the tables of Parts 3 and 4, explain **why masking heads cannot make a model smaller or
# cut its work**, while removing them can. Then compare the speed-up you measured for removing half
# the heads of the 256-wide layer with the speed-ups of the pruned digits models, and explain the
# difference with the multiply-add count of Part 4.

# %% [markdown] nbgrader={"grade": true, "grade_id": "masking_vs_pruning_answer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# Masking multiplies weights (or head outputs) by zero but keeps every tensor at its full shape.
# Dense matrix multiplication does the same work whatever the values, so the zeros are stored
# (same parameter count, same serialized bytes: a float 0 takes 4 bytes) and multiplied (the same
# multiply-adds, so no speed-up beyond the noise between runs is to be expected; the gate even adds
# a small multiplication). Removing heads builds smaller matrices:
# the Q/K/V projections lose rows and the output projection loses columns, so there are fewer
# parameters and fewer multiply-adds.
#
# In the 256-wide layer with 16x128 tokens almost all the work is large matrix products whose
# cost is proportional to the number of heads (projections and attention), so half the heads is
# about half the work, and the speed-up to compare with is 2x (how close the measured one comes
# depends on the machine and its load). The digits
# model is tiny (width 64, 17 tokens, batch 64): each product takes microseconds, so per-operation
# overhead (Python, dispatch, memory allocation, layer norms and reshapes that do not depend on the
# head count) takes a large share of the time, and the embedding, FFNs and classifier are not
# pruned at all, so less than the layer's speed-up is to be expected there. (A good answer quotes
# the measured numbers.)

# %% [markdown]
# ## Part 5. Fine-tuning recovers accuracy
#
# The remaining heads were trained to work alongside the removed ones. A few epochs of ordinary
# training on the training split (all weights, small learning rate) let them adapt. This is the
# usual recipe: prune, then fine-tune.

# %%
if not GRADING:
    loaders = digits_loaders(batch_size=64, seed=SEED)
    rows = []
    for fraction in (0.5, 0.75):
        set_seed(SEED)
        model = copy.deepcopy(pruned_models[fraction])
        before = accuracy(model, (x_test, y_test))
        losses = train(
            model,
            loaders["train"],
            epochs=FINETUNE_EPOCHS,
            lr=FINETUNE_LR,
            desc=f"fine-tune {fraction:.0%} pruned",
        )
        after = accuracy(model, (x_test, y_test))
        rows.append(
            [
                f"{fraction:.0%} heads removed",
                f"{teacher_acc:.1%}",
                f"{before:.1%}",
                f"{after:.1%}",
                f"{losses[-1]:.3f}",
            ]
        )
        summary[f"finetuned{fraction * 100:.0f}_acc"] = after
    display(
        markdown_table(
            [
                "model",
                "teacher",
                "after pruning",
                f"after {FINETUNE_EPOCHS} epochs of fine-tuning",
                "last epoch train loss",
            ],
            rows,
        )
    )

# %% [markdown]
# The table shows how much of the lost accuracy a few epochs of fine-tuning win back. Removing
# 75% of the heads loses more accuracy than removing 50%, and fine-tuning wins back more of it.
#
# **Going further.** Two natural extensions: prune *iteratively* (remove a few heads, re-score
# the rest, repeat), or learn the gates during training with a sparsity penalty instead of scoring
# them once, as Voita et al. (2019, *Analyzing Multi-Head Self-Attention: Specialized Heads Do the
# Heavy Lifting, the Rest Can Be Pruned*) do with an $L_0$ penalty.

# %% [markdown]
# ## Part 6. Unstructured pruning: many zeros, any speed?
#
# Removing heads is *structured* pruning: whole rows and columns go, so the matrices shrink.
# *Unstructured* (fine-grained) pruning removes individual weights instead, wherever they are. The
# simplest rule, magnitude pruning (Han et al., 2015, *Learning both Weights and Connections for
# Efficient Neural Networks*), zeroes the weights of smallest absolute value, on the idea that a
# small weight contributes little to its neuron's sum. Ranking all layers together (*global*
# pruning) lets a layer with many small weights lose more of them.
#
# **The maths.** Collect the weights of every `nn.Linear` of the model, $N$ of them, and sort them
# by $|w|$. For a target sparsity $s \in [0, 1)$, zero the $k = \mathrm{round}(s N)$ smallest:
#
# $$
# w \leftarrow w \cdot \mathbb 1\left[\,|w| \text{ is not among the } k \text{ smallest}\,\right],
# \qquad \text{achieved sparsity} = \frac{\#\{w = 0\}}{N} .
# $$
#
# The achieved sparsity can exceed $s$ when some weights were zero already.
#
# ### Exercise 5 (4 points): global magnitude pruning
#
# Write `magnitude_prune`. It works in place, on the weight matrices of the `nn.Linear` modules
# only: biases, layer norms, embeddings and every other parameter keep their values.


# %% nbgrader={"grade": false, "grade_id": "magnitude_prune_answer", "locked": false, "schema_version": 3, "solution": true}
def magnitude_prune(model: nn.Module, sparsity: float) -> float:
    """Zero, in place, the globally smallest-magnitude weights of every ``nn.Linear`` in ``model``.

    Inputs:
        model: any ``nn.Module``. Its ``nn.Linear`` modules (``model.modules()``, nested ones
            included) each have a ``weight [out_features, in_features]``; together they hold
            ``N`` weights, ranked all together by absolute value (global, not per layer).
        sparsity: the fraction of those ``N`` weights to zero, a float in ``[0, 1)``.
    Returns:
        The achieved sparsity, a Python ``float``: the fraction of the ``N`` Linear weights that
        are exactly 0 after pruning. Exactly ``round(sparsity * N)`` weights of smallest ``|w|``
        are set to 0 (among equal ``|w|``, any of them); all other values are unchanged, so
        weights that were 0 before count too. Only the ``weight`` tensors of ``nn.Linear``
        modules change, in place: the same ``Parameter`` objects, still trainable; biases and
        every other parameter keep their values.
    Raises:
        ValueError: if ``sparsity`` is not in ``[0, 1)``, or if ``model`` has no ``nn.Linear``.
    """
    ### BEGIN SOLUTION
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}.")
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    if not weights:
        raise ValueError("The model has no nn.Linear module to prune.")
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])  # [N]
    k = round(sparsity * len(magnitudes))
    mask = torch.ones_like(magnitudes)
    mask[magnitudes.argsort(stable=True)[:k]] = 0
    with torch.no_grad():
        for w, keep in zip(weights, mask.split([w.numel() for w in weights]), strict=True):
            w.mul_(keep.view_as(w))
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / len(magnitudes)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "magnitude_prune_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))  # 200 + 100 = 300 weights
net_before = copy.deepcopy(net)
achieved = magnitude_prune(net, 0.5)
print(f"returned {achieved!r} for sparsity 0.5")
assert isinstance(achieved, float), f"Return a Python float, not {type(achieved).__name__}."
old = torch.cat([net_before[0].weight.flatten(), net_before[2].weight.flatten()])  # [300]
new = torch.cat([net[0].weight.flatten(), net[2].weight.flatten()]).detach()
zeroed = new == 0
print(f"weights set to 0: {int(zeroed.sum())} of 300 (expected 150)")
assert int(zeroed.sum()) == 150, "Sparsity 0.5 of 300 Linear weights zeroes exactly 150 of them."
assert abs(achieved - 0.5) < 1e-9, (
    f"The achieved sparsity is 150 / 300 = 0.5, you returned {achieved}."
)
assert old.abs()[zeroed].max() <= old.abs()[~zeroed].min(), (
    "Zero the weights of smallest ABSOLUTE value, ranked over both layers together."
)
assert torch.equal(new[~zeroed], old[~zeroed]), "The weights you keep must keep their values."
assert torch.equal(net[0].bias, net_before[0].bias) and torch.equal(
    net[2].bias, net_before[2].bias
), "Biases are not pruned: leave them unchanged."
### BEGIN HIDDEN TESTS
torch.manual_seed(1)
two = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))  # 64 + 64 weights
with torch.no_grad():
    two[0].weight.mul_(10.0)  # layer 0's weights are large: global pruning takes layer 1's first
two_before = copy.deepcopy(two)
params_before = [id(p) for p in two.parameters()]
magnitude_prune(two, 0.25)  # 32 of 128 weights
zeros_per_layer = [int((two[i].weight == 0).sum()) for i in range(2)]
all_old = torch.cat([two_before[0].weight.flatten(), two_before[1].weight.flatten()])
expected_zero = torch.zeros(128, dtype=torch.bool)
expected_zero[all_old.abs().argsort()[:32]] = True
expected_per_layer = [int(expected_zero[:64].sum()), int(expected_zero[64:].sum())]
assert zeros_per_layer == expected_per_layer, (
    f"Zeros per layer {zeros_per_layer}, expected {expected_per_layer}: rank the weights of ALL "
    "Linear layers together (global pruning), not each layer to the same sparsity."
)
assert [id(p) for p in two.parameters()] == params_before, (
    "Prune in place: keep the same Parameter objects (write into them under torch.no_grad())."
)
assert all(p.requires_grad for p in two.parameters()), "The weights must stay trainable."
torch.manual_seed(2)
signed = nn.Linear(10, 10)
with torch.no_grad():
    signed.weight.copy_(torch.randn(10, 10) * 3)
signed_before = signed.weight.detach().clone()
magnitude_prune(signed, 0.3)
kept = signed.weight != 0
assert signed_before.abs()[~kept].max() <= signed_before.abs()[kept].min(), (
    "Rank by |w|: a large negative weight is important and must be kept."
)
torch.manual_seed(3)
small = DigitsTransformer(width=16, num_heads=2, num_layers=1, ffn_width=32)
others = {
    name: p.detach().clone()
    for name, p in small.named_parameters()
    if not any(
        name == f"{m}.weight" for m, mod in small.named_modules() if isinstance(mod, nn.Linear)
    )
}
linear_count = sum(m.weight.numel() for m in small.modules() if isinstance(m, nn.Linear))
got = magnitude_prune(small, 0.6)
state = dict(small.named_parameters())
assert all(torch.equal(state[name], value) for name, value in others.items()), (
    "Only the weight matrices of nn.Linear modules are pruned: layer norms, biases, the class "
    "token and the position embedding keep their values."
)
zeros = sum(int((m.weight == 0).sum()) for m in small.modules() if isinstance(m, nn.Linear))
assert zeros == round(0.6 * linear_count), (
    f"Expected {round(0.6 * linear_count)} zeroed Linear weights (nested modules included), got {zeros}."
)
again = magnitude_prune(small, 0.3)  # 60% are zero already: the smallest 30% are among them
assert abs(again - zeros / linear_count) < 1e-9, (
    f"Return the ACHIEVED sparsity (zeros after pruning / Linear weights), {zeros / linear_count:.4f} "
    f"here because the model was already 60% sparse, not the requested 0.3 (got {again})."
)
tied = nn.Linear(4, 4, bias=False)
with torch.no_grad():
    tied.weight.copy_(torch.tensor([1.0, -1.0, 2.0, -2.0]).repeat(4, 1))  # 8 weights of |w| = 1
assert magnitude_prune(tied, 0.25) == 0.25 and int((tied.weight == 0).sum()) == 4, (
    "With ties in |w|, zero exactly round(sparsity * N) weights (here 4 of the 8 with |w| = 1), "
    "not every weight at the threshold."
)
untouched = nn.Linear(6, 6)
untouched_before = copy.deepcopy(untouched.state_dict())
assert magnitude_prune(untouched, 0.0) == 0.0, "Sparsity 0 zeroes nothing: achieved 0.0."
assert all(torch.equal(v, untouched_before[k]) for k, v in untouched.state_dict().items()), (
    "Sparsity 0 must leave the weights unchanged."
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "magnitude_prune_errors_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
for bad in (1.0, -0.1):
    expect_value_error(lambda bad=bad: magnitude_prune(nn.Linear(4, 4), bad), f"sparsity={bad}")
### BEGIN HIDDEN TESTS
expect_value_error(lambda: magnitude_prune(nn.Linear(4, 4), 1.5), "sparsity=1.5")
expect_value_error(lambda: magnitude_prune(nn.LayerNorm(4), 0.5), "a model without nn.Linear")
try:
    nearly = magnitude_prune(nn.Linear(10, 10), 0.99)
except ValueError as exc:
    raise AssertionError("Sparsity 0.99 is inside [0, 1): do not raise for it.") from exc
assert abs(nearly - 0.99) < 1e-9, "Sparsity 0.99 of 100 weights zeroes 99 of them."
### END HIDDEN TESTS

# %% [markdown]
# ### Accuracy: zeroed weights against removed heads
#
# Both kinds of pruning, on one axis: test accuracy of the teacher against the fraction of its
# `nn.Linear` weights that are gone. For heads, that is the removal order of the averaged
# importance scores from Part 2 (each head owns $4 d E$ weights: its rows of Q, K and V and its
# columns of the output projection); for magnitude pruning, the achieved sparsity at each of
# `SPARSITIES`. Neither model is fine-tuned.


# %%
def linear_weight_count(model: nn.Module) -> int:
    """Number of weights in the ``weight`` matrices of the ``nn.Linear`` modules of ``model``."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


if not GRADING:
    magnitude_curve = []
    for target in SPARSITIES:
        sparse_teacher = copy.deepcopy(teacher)
        achieved = magnitude_prune(sparse_teacher, target)
        magnitude_curve.append((achieved, accuracy(sparse_teacher, (x_test, y_test))))
    head_weights = 4 * teacher.blocks[0].attn.head_dim * teacher.blocks[0].attn.embed_dim
    head_fraction = counts * head_weights / linear_weight_count(teacher)
    head_curve = np.array(curves["importance, least first"])
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.plot(
        head_fraction * 100,
        head_curve * 100,
        color="C0",
        marker="o",
        markersize=4,
        label="heads removed (least important first)",
    )
    sparsity_axis, magnitude_acc = (np.array(v) for v in zip(*magnitude_curve, strict=True))
    ax.plot(
        sparsity_axis * 100,
        magnitude_acc * 100,
        color="C2",
        marker="s",
        markersize=4,
        label="weights zeroed by magnitude (global)",
    )
    ax.set_xlabel("Linear weights removed or zeroed (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Structured against unstructured pruning, no fine-tuning")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower left")
    plt.show()
    for achieved, acc in magnitude_curve:
        print(f"magnitude pruning, {achieved:.0%} of Linear weights zero: test accuracy {acc:.1%}")
    print(
        f"half the heads removed ({head_fraction[half]:.0%} of Linear weights): "
        f"test accuracy {head_curve[half]:.1%}"
    )
    sparse50 = copy.deepcopy(teacher)
    magnitude_prune(sparse50, 0.5)
    summary["magnitude50_params_ratio"] = count_parameters(sparse50) / count_parameters(teacher)
    summary["magnitude50_bytes_ratio"] = serialized_size(sparse50) / serialized_size(teacher)
    summary["magnitude50_acc"] = magnitude_curve[SPARSITIES.index(0.5)][1]
    summary["heads_half_weight_fraction"] = float(head_fraction[half])
    summary["heads_half_acc"] = float(head_curve[half])

# %% [markdown]
# At the same fraction of weights gone, which curve stays higher, and up to which sparsity does
# magnitude pruning keep the teacher's accuracy? Removing a head removes large and small weights
# alike, while magnitude pruning picks the small ones wherever they are: is that enough to explain
# the difference?
#
# ### Speed: zeros in a dense matrix
#
# The magnitude-pruned teacher keeps every parameter and every byte (measured: its parameter
# count and serialized size are those of the teacher), because a zero in a dense tensor is stored
# like any other float. Does it also run as fast? The next cell takes the 256-wide attention layer
# of Part 4 (on 8 of its 16 sequences, to keep the cell short) and times it dense, with half of its
# weights zeroed by `magnitude_prune`, and with half of its heads removed by `prune_heads` (which
# also removes half of its weights).

# %%
if not GRADING:
    big_sparse = copy.deepcopy(big)
    big_sparsity = magnitude_prune(big_sparse, 0.5)
    sparse_latency = best_latencies(
        {
            "8 heads, dense": (big, (x_big[:8],)),
            f"8 heads, {big_sparsity:.0%} of weights zero": (big_sparse, (x_big[:8],)),
            "4 heads (pruned)": (big_half, (x_big[:8],)),
        },
        LATENCY_REPEATS,
    )
    display(
        markdown_table(
            [
                "attention layer, input [8, 128, 256]",
                "Linear weights",
                "of them zero",
                "latency ms",
                "speed-up vs dense",
            ],
            [
                [
                    name,
                    f"{linear_weight_count(model):,}",
                    f"{sum(int((m.weight == 0).sum()) for m in model.modules() if isinstance(m, nn.Linear)):,}",
                    f"{t * 1e3:.2f}",
                    f"{sparse_latency['8 heads, dense'] / t:.2f}x",
                ]
                for (name, t), model in zip(
                    sparse_latency.items(), (big, big_sparse, big_half), strict=True
                )
            ],
        )
    )
    summary["big_sparse_zero_fraction"] = big_sparsity
    summary["big_half_weight_ratio"] = linear_weight_count(big_half) / linear_weight_count(big)
    summary["attn_layer_speedup_magnitude50"] = (
        sparse_latency["8 heads, dense"]
        / sparse_latency[f"8 heads, {big_sparsity:.0%} of weights zero"]
    )
    summary["attn_layer_speedup_pruned_vs_dense"] = (
        sparse_latency["8 heads, dense"] / sparse_latency["4 heads (pruned)"]
    )

# %% [markdown]
# Compare the two speed-ups, each against the change you see when you run the cell again. A dense
# matrix product multiplies every stored number, zero or not; what would it take to turn zeros
# into speed? Think about storing only the non-zero weights with their positions (a sparse
# format), about the work of reading those positions, and about hardware that skips zeros only in
# fixed patterns, such as 2 of every 4 weights (NVIDIA's 2:4 sparsity). Removing heads, by
# contrast, leaves smaller dense matrices: what did they buy in your table?

# %% tags=["summary"]
summary["run_seconds"] = round(time.perf_counter() - STARTED, 1)
print(json.dumps(summary))
