# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Knowledge distillation: a small model that learns from a big one
#
# A large model is accurate but costly to run; a small one is cheap but, trained on its own, usually
# weaker.
# **Knowledge distillation** trains the small model (the *student*) to imitate the large one (the
# *teacher*), so that it inherits part of the teacher's accuracy at a fraction of its cost.
#
# In this notebook you will
# 1. write the course seed's warm-up: a student that copies a teacher's **hidden states** on random inputs
#    (`knowledge_distillation`);
# 2. write the **soft-target loss** of Hinton, Vinyals and Dean, *Distilling the Knowledge in a Neural
#    Network* (2015), with its temperature (`kd_loss`);
# 3. write the **distillation training loop** (`distill`) and use it on the digits task, where a student
#    with many times fewer parameters than the teacher learns from only a few labelled images plus the
#    teacher's soft targets, and compare it, over several seeds, with the same student trained on the labels
#    alone;
# 4. see what the temperature does, and measure what the student buys: parameters, bytes, latency,
#    accuracy.
#
# **How to start.** Open this notebook from JupyterLab started with `make lab` in the repository root
# (it creates `.venv` and installs `lab_utils`, the course's helper package) and pick the kernel
# "Python 3". Run the cells from the top; a laptop CPU is all it needs. The
# last cell prints the measured results, among them `run_seconds`: how many seconds the whole
# notebook took on your machine.
#
# **Exercises.** Three functions to write, each in a cell marked `# YOUR CODE HERE`. Run the test cells
# directly below each one: they print what they compared, and an `AssertionError` message tells you what to
# fix. The graders run more (hidden) tests of the same behaviour, so read each docstring carefully: they
# test only what the docstring states. One written question is graded by hand.
#
# | exercise | function | points |
# | --- | --- | --- |
# | 1 | `knowledge_distillation(teacher, student, steps, lr)` | 3 |
# | 2 | `kd_loss(student_logits, teacher_logits, labels, temperature, alpha)` | 4 |
# | 3 | `distill(teacher, student, loader, epochs, temperature, alpha, lr)` | 3 |
# | written | why the soft-target term is multiplied by $T^2$ | 2 |
# | | **total** | **12** |

# %%
import copy
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
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
    DistilledStudent,
    ToyTransformer,
    accuracy,
    count_parameters,
    digits_splits,
    digits_transfer_pool,
    full_batch,
    load_teacher,
    measure_latency,
    serialized_size,
    set_seed,
    use_course_style,
)

GRADING = "NBGRADER_EXECUTION" in os.environ  # nbgrader sets it: demos are skipped while grading
if not GRADING:  # only the demos draw, and importing pyplot costs a third of torch's import
    import matplotlib.pyplot as plt
torch.set_num_threads(1)  # these models are tiny: one thread is fastest and keeps timings stable
set_seed(0)
use_course_style()
summary = {}

STARTED = time.perf_counter()  # the summary reports the whole run's seconds

# %% tags=["parameters"]
SEED = 0  # first training seed; the comparison uses SEED, SEED + 1, ...
NUM_SEEDS = 3  # seeds per arm of the labels-vs-distillation comparison
SWEEP_SEEDS = 2  # the first SWEEP_SEEDS of those seeds are also trained at every temperature
LABELS_PER_CLASS = 10  # labelled training images per digit class
STUDENT_CONFIG = dict(width=24, num_heads=4, num_layers=1, ffn_width=48, patch=4)
BATCH_SIZE = 128
TRANSFER_EPOCHS = (
    8  # epochs over the transfer set; the labels-only run gets as many optimiser steps
)
LR = 1e-2
TEMPERATURE = 4.0
ALPHA = 0.9
TEMPERATURES = [1.0, 2.0, 4.0, 8.0]  # the temperature sweep

# %% [markdown]
# ## 1. The seed's warm-up: copy the teacher's hidden states
#
# The course seed distils a one-block `ToyTransformer` (attention then a feed-forward network,
# `[B, T, H] -> [B, T, H]`) into a `DistilledStudent`, a single linear layer followed by `tanh`. No data is
# needed: the inputs are random, $x \sim \mathcal{N}(0, I)$, and the student is trained to produce the
# teacher's output for the same input. The loss is the mean squared error over every batch element, token
# and feature:
#
# $$\mathcal{L}_{\text{MSE}} = \frac{1}{B\,T\,H} \sum_{b,t,h} \big(f_s(x)_{bth} - f_t(x)_{bth}\big)^2 .$$
#
# ### Exercise 1 (3 points): copy a frozen teacher
#
# Write `knowledge_distillation`, the original script's training loop. The teacher is **frozen**: it only provides
# targets. Put it in eval mode, compute its output without building a graph (`torch.no_grad()`), and give
# the optimiser the student's parameters only. A teacher that receives gradients or updates is a bug that
# silently changes the thing you are copying.


# %% nbgrader={"grade": false, "grade_id": "warmup_answer", "locked": false, "schema_version": 3, "solution": true}
def knowledge_distillation(
    teacher: ToyTransformer, student: DistilledStudent, steps: int = 50, lr: float = 1e-3
) -> float:
    """Fit ``student`` to the frozen ``teacher``'s outputs on random inputs; returns the last MSE.

    Inputs:
    - teacher: ToyTransformer ``[B, T, H] -> [B, T, H]`` with ``H = teacher.hidden_size``. Frozen: put it
      in eval mode, compute its output without gradients, never update it.
    - student: DistilledStudent with the same ``H``, trained in place.
    - steps: number of training steps. Each step draws fresh inputs ``torch.randn(2, 16, H)`` (float32),
      runs the teacher once and the student once on those same inputs, computes
      ``MSE(student(x), teacher(x))`` and makes one zero_grad/backward/step of a single
      ``torch.optim.AdamW(student.parameters(), lr=lr)`` (other settings default) created before the
      first step.
    - lr: the AdamW learning rate.

    Returns:
    - the last step's loss as a Python ``float``.

    Raises:
    - ValueError if ``steps < 1``.
    """
    ### BEGIN SOLUTION
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    teacher.eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    for _ in range(steps):
        inputs = torch.randn(2, 16, teacher.hidden_size)
        with torch.no_grad():
            target = teacher(inputs)
        loss = F.mse_loss(student(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "warmup_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# The student learns: its MSE to the teacher on 64 fresh inputs goes down, and you return a float.
set_seed(0)
_teacher = ToyTransformer(hidden_size=32, num_heads=4)
_student = DistilledStudent(32)
_weight_before = _student.linear.weight.detach().clone()
with torch.no_grad():
    _x = torch.randn(64, 16, 32)
    _mse_before = F.mse_loss(_student(_x), _teacher(_x)).item()
_last = knowledge_distillation(_teacher, _student, steps=40, lr=1e-2)
with torch.no_grad():
    _mse_after = F.mse_loss(_student(_x), _teacher(_x)).item()
print(
    f"returned {_last!r}; MSE on 64 fresh inputs: before {_mse_before:.4f}, after {_mse_after:.4f}"
)
assert isinstance(_last, float), (
    f"return the loss as a Python float (loss.item()), not {type(_last).__name__}"
)
assert not torch.equal(_student.linear.weight, _weight_before), (
    "the student's weights did not change: build AdamW over student.parameters() and call step()"
)
assert _mse_after < 0.8 * _mse_before, (
    f"the student's MSE to the teacher went from {_mse_before:.4f} to only {_mse_after:.4f}: "
    "check the loss (MSE between the student's and the teacher's outputs on the same inputs) and "
    "that you call optimizer.zero_grad() in every step"
)
try:
    knowledge_distillation(_teacher, _student, steps=0)
except ValueError:
    pass
else:
    raise AssertionError("steps=0 must raise ValueError")
### BEGIN HIDDEN TESTS
_H, _STEPS, _LR = 24, 6, 2e-2


class _ProbeToy(ToyTransformer):
    """ToyTransformer that records (input, output, training flag) of every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        self.calls.append((x.detach().clone(), out.detach().clone(), self.training))
        return out


class _ProbeStudent(DistilledStudent):
    """DistilledStudent that records the input of every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.detach().clone())
        return super().forward(x)


def _replay(state, records, lr, zero_grad=True):
    """Reference AdamW loop on recorded (inputs, teacher outputs); returns (student, last loss)."""
    ref = DistilledStudent(state["linear.weight"].shape[0])
    ref.load_state_dict(state)
    opt = torch.optim.AdamW(ref.parameters(), lr=lr)
    for x, target in records:
        loss = F.mse_loss(ref(x), target)
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
    return ref, loss.item()


def _same(a, b):
    return all(
        torch.allclose(p, q, atol=1e-5, rtol=1e-4)
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


set_seed(1)
_teacher = _ProbeToy(hidden_size=_H, num_heads=4)
_teacher.calls = []
_student = _ProbeStudent(_H)
_student.calls = []
_state0 = copy.deepcopy(_student.state_dict())
_last = knowledge_distillation(_teacher, _student, steps=_STEPS, lr=_LR)
assert isinstance(_last, float), f"return a Python float (loss.item()), got {type(_last).__name__}"
assert len(_teacher.calls) == _STEPS, (
    f"with steps={_STEPS} the teacher should run once per step, it ran {len(_teacher.calls)} times"
)
assert len(_student.calls) == _STEPS, (
    f"with steps={_STEPS} the student should run once per step, it ran {len(_student.calls)} times"
)
_shapes = {tuple(x.shape) for x, _, _ in _teacher.calls}
assert _shapes == {(2, 16, _H)}, (
    f"inputs must have shape [2, 16, hidden_size] = [2, 16, {_H}], got {sorted(_shapes)}"
)
assert all(
    torch.equal(xs, xt) for xs, (xt, _, _) in zip(_student.calls, _teacher.calls, strict=True)
), "feed the SAME inputs to the teacher and the student in each step"
assert not torch.equal(_teacher.calls[0][0], _teacher.calls[1][0]), (
    "draw fresh random inputs in every step, not once before the loop"
)
_all = torch.cat([x.flatten() for x, _, _ in _teacher.calls])
assert abs(_all.mean().item()) < 0.15 and abs(_all.std().item() - 1) < 0.15, (
    f"inputs must be standard normal (torch.randn): mean {_all.mean():.3f}, std {_all.std():.3f}"
)
_records = [(x, out) for x, out, _ in _teacher.calls]
_ref, _ref_last = _replay(_state0, _records, _LR)
_acc, _ = _replay(_state0, _records, _LR, zero_grad=False)
assert not _same(_student, _acc) or _same(_student, _ref), (
    "gradients accumulate across steps: call optimizer.zero_grad() in every step"
)
_default_lr, _ = _replay(_state0, _records, 1e-3)
assert not _same(_student, _default_lr) or _same(_student, _ref), (
    "you ignored the lr argument: build AdamW with lr=lr"
)
assert _same(_student, _ref), (
    "the trained student differs from a reference loop (AdamW(student.parameters(), lr=lr), "
    "F.mse_loss(student(x), teacher(x)), zero_grad/backward/step once per step)"
)
assert abs(_last - _ref_last) < 1e-5 * max(1.0, abs(_ref_last)), (
    f"return the LAST step's loss: expected {_ref_last:.6f}, got {_last:.6f}"
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "warmup_teacher_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# The teacher is frozen: eval mode, weights unchanged, no gradients.
set_seed(0)
_teacher = ToyTransformer(
    hidden_size=32, num_heads=4
).train()  # handed over in train mode on purpose
_student = DistilledStudent(32)
_before = copy.deepcopy(_teacher.state_dict())
knowledge_distillation(_teacher, _student, steps=3, lr=1e-2)
_changed = [k for k, v in _teacher.state_dict().items() if not torch.equal(v, _before[k])]
_with_grad = [n for n, p in _teacher.named_parameters() if p.grad is not None]
print(
    f"teacher.training={_teacher.training}, changed tensors: {_changed}, with .grad: {_with_grad}"
)
assert not _teacher.training, "the teacher is still in train mode: call teacher.eval()"
assert not _changed, f"the teacher's weights changed ({_changed}): optimise the student's only"
assert not _with_grad, (
    f"teacher parameters received gradients ({_with_grad}): compute the teacher's output "
    "inside `with torch.no_grad():`"
)
### BEGIN HIDDEN TESTS
_optimizers = []
_original_init = torch.optim.Optimizer.__init__


class _ModeProbe(ToyTransformer):
    """ToyTransformer that records its training flag at every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return super().forward(x)


def _spy_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    _optimizers.append(self)


set_seed(2)
_teacher = _ModeProbe(hidden_size=16, num_heads=2).train()
_teacher.modes = []
_student = DistilledStudent(16)
torch.optim.Optimizer.__init__ = _spy_init
try:
    knowledge_distillation(_teacher, _student, steps=3, lr=1e-2)
finally:
    torch.optim.Optimizer.__init__ = _original_init
assert _teacher.modes and not any(_teacher.modes), (
    "the teacher ran in train mode: call teacher.eval() before using it"
)
assert all(p.grad is None for p in _teacher.parameters()), (
    "teacher parameters received gradients: compute the teacher's output inside torch.no_grad()"
)
_teacher_ids = {id(p) for p in _teacher.parameters()}
_optimised = [p for opt in _optimizers for g in opt.param_groups for p in g["params"]]
assert not any(id(p) in _teacher_ids for p in _optimised), (
    "the optimiser holds teacher parameters: give it student.parameters() only"
)
assert len(_optimizers) == 1 and isinstance(_optimizers[0], torch.optim.AdamW), (
    f"use one torch.optim.AdamW, got {[type(o).__name__ for o in _optimizers]}"
)
assert {id(p) for p in _optimised} == {id(p) for p in _student.parameters()}, (
    "the optimiser must hold exactly the student's parameters"
)
### END HIDDEN TESTS

# %% [markdown]
# Now the original script's own run: the default `ToyTransformer()` (H = 256) and its student, 50 steps at
# `lr=1e-3`. Your function returns only the last loss; to draw the whole curve, *forward hooks* record
# what the teacher and the student output at each step, and the loss of each step is recomputed from
# them. The dashed line is the loss of a trivial student that always outputs 0 (the mean square of the
# teacher's outputs): a student is worth something only below it. The y-axis is logarithmic.

# %%
if not GRADING:
    set_seed(SEED)
    toy_teacher = ToyTransformer()
    toy_student = DistilledStudent(toy_teacher.hidden_size)
    outputs = {"teacher": [], "student": []}
    hooks = [
        module.register_forward_hook(lambda m, i, out, key=key: outputs[key].append(out.detach()))
        for key, module in (("teacher", toy_teacher), ("student", toy_student))
    ]
    distill_loss = knowledge_distillation(
        toy_teacher, toy_student
    )  # the original script's defaults
    for hook in hooks:
        hook.remove()
    curve = [
        F.mse_loss(s, t).item() for s, t in zip(outputs["student"], outputs["teacher"], strict=True)
    ]
    zero_baseline = float(np.mean([t.pow(2).mean().item() for t in outputs["teacher"]]))
    assert abs(curve[-1] - distill_loss) < 1e-6, "the hooks disagree with the returned loss"
    summary["distill_loss"] = distill_loss
    summary["warmup_first_loss"] = curve[0]
    print({"distill_loss": distill_loss})

    fig, ax = plt.subplots()
    ax.plot(range(1, len(curve) + 1), curve, marker=".", label="student vs teacher (MSE)")
    ax.axhline(zero_baseline, ls="--", color="gray", label="student that outputs 0")
    ax.set(
        title="Seed warm-up: the student copies the teacher's hidden states",
        xlabel="AdamW step",
        ylabel="MSE loss (squared output units)",
        yscale="log",
    )
    ax.legend()
    plt.show()
    summary["warmup_zero_output_loss"] = zero_baseline

# %% [markdown]
# Where does the curve end compared with the dashed line? A falling loss is not yet a useful student: a
# randomly initialised teacher's outputs are small (the dashed line lies far below the curve's start), so
# how much of the progress could be the student merely learning to shrink its own outputs? Beyond that,
# random inputs say nothing about the inputs the model will see in use, and a single `tanh(Wx + b)` cannot
# express attention however long it trains. Real distillation trains on the task's inputs and, for a
# classifier, copies the teacher's **output distribution** rather than its hidden states. That is the rest
# of this notebook.
#
# ## 2. Soft targets and temperature (Hinton et al., 2015)
#
# A trained classifier's output says more than its top class. For an image of a 7, a good teacher gives
# most of the probability to "7", a little to "1" and almost nothing to "6": the small probabilities tell
# which wrong classes look alike. Hinton et al. call this *dark knowledge*. A one-hot label carries none of it.
#
# With logits $z$, the usual softmax makes the top class dominate and hides the small probabilities. A
# **temperature** $T > 1$ softens it:
#
# $$p_i^{(T)} = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)} .$$
#
# $T = 1$ is the ordinary softmax; as $T$ grows the distribution flattens and the runner-up classes
# become visible. The figure below shows the pretrained teacher's softened distribution for one test image
# (chosen in the run: a confident, correct prediction with the largest runner-up).

# %%
if not GRADING:
    teacher = load_teacher()
    test_images, test_labels = full_batch("test")
    with torch.no_grad():
        test_logits = teacher(test_images)
    probs = test_logits.softmax(dim=-1)
    top2 = probs.topk(2, dim=-1)
    confident = (top2.indices[:, 0] == test_labels) & (top2.values[:, 0] > 0.9)
    index = int(torch.where(confident, top2.values[:, 1], torch.tensor(-1.0)).argmax())
    print(
        f"test image {index}: label {test_labels[index].item()}, teacher's runner-up class "
        f"{top2.indices[index, 1].item()}"
    )

    fig, (ax_img, ax_bar) = plt.subplots(
        1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1, 3]}
    )
    ax_img.imshow(test_images[index], cmap="gray_r")
    ax_img.set(
        title=f"test image {index} (label {test_labels[index].item()})", xticks=[], yticks=[]
    )
    width = 0.8 / len(TEMPERATURES)
    for k, temp in enumerate(TEMPERATURES):
        soft = (test_logits[index] / temp).softmax(dim=-1)
        ax_bar.bar(
            np.arange(10) + (k - (len(TEMPERATURES) - 1) / 2) * width,
            soft,
            width,
            label=f"T = {temp:g}",
        )
    ax_bar.set(
        title="Teacher's softened distribution softmax(z / T)",
        xlabel="digit class",
        ylabel="probability",
        xticks=range(10),
    )
    ax_bar.legend()
    plt.show()

# %% [markdown]
# ### Exercise 2 (4 points): the distillation loss
#
# The student is trained on a mix of two terms. The **soft-target term** compares the student's softened
# distribution $q^{(T)}$ with the teacher's $p^{(T)}$ by the Kullback-Leibler divergence, averaged over the
# batch of $B$ examples; the **hard-label term** is the ordinary cross-entropy with the true label $y$, at
# $T = 1$:
#
# $$\mathcal{L}_{\text{KD}} = \alpha\, T^2\, \frac{1}{B}\sum_{b=1}^{B} \mathrm{KL}\big(p^{(T)}_b \,\|\, q^{(T)}_b\big)
# + (1 - \alpha)\, \mathrm{CE}(z^{s}, y),
# \qquad \mathrm{KL}(p \,\|\, q) = \sum_i p_i \log \frac{p_i}{q_i} .$$
#
# Things to get right:
# - **Direction.** The teacher's distribution $p$ is the target, the student's $q$ is the model: KL$(p\|q)$.
#   Read the documentation of `torch.nn.functional.kl_div` carefully: which of its two arguments is the
#   target, and which must be given as *log*-probabilities?
# - **Averaging.** KL is a sum over classes, averaged over the batch. Of `kl_div`'s reductions, only one
#   gives exactly that; another divides by the number of classes too.
# - **The factor $T^2$.** Keep it (the written question below asks why).
# - **The teacher is a constant.** No gradient may flow into `teacher_logits`: detach them.
#
# Hinton et al. found a high weight on the soft term ($\alpha$ close to 1) works best; the defaults here are
# $T = 4$, $\alpha = 0.9$.


# %% nbgrader={"grade": false, "grade_id": "kd_loss_answer", "locked": false, "schema_version": 3, "solution": true}
def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Hinton et al. distillation loss: ``alpha * T^2 * KL(p_teacher || q_student) + (1 - alpha) * CE``.

    Inputs:
    - student_logits: float tensor ``[B, C]``, the student's raw logits (gradients flow through these).
    - teacher_logits: float tensor ``[B, C]``, the teacher's raw logits; treated as a constant (detached).
    - labels: int64 tensor ``[B]`` of class indices in ``[0, C)``.
    - temperature: ``T > 0``; both distributions are ``softmax(logits / T)``.
    - alpha: weight of the soft-target term, ``1 - alpha`` weighs the hard-label cross-entropy (at T = 1).

    Returns:
    - a scalar (0-dim) float tensor; the KL term is summed over classes and averaged over the batch.
      Neither logit tensor is modified.

    Raises:
    - ValueError if the two logit tensors differ in shape, or if ``temperature <= 0``.
    """
    ### BEGIN SOLUTION
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {list(student_logits.shape)} and teacher_logits "
            f"{list(teacher_logits.shape)} must have the same shape."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    p = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    soft = F.kl_div(log_q, p, reduction="batchmean") * temperature**2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kd_loss_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
# The value of the loss on small examples you can check by hand.
_s = torch.tensor([[2.0, 1.0, 0.0], [0.5, -1.0, 3.0]])
_t = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 2.0]])
_y = torch.tensor([0, 2])
_loss = kd_loss(_s, _t, _y, temperature=2.0, alpha=0.5)
_expected = 0.4200748  # KL term 0.1471274 (x T^2 = 4, x alpha), CE 0.2516401
print(
    f"kd_loss on the 2x3 example (T=2, alpha=0.5): got {float(_loss):.7f}, expected {_expected:.7f}"
)
assert isinstance(_loss, torch.Tensor) and _loss.dim() == 0, "return a scalar (0-dim) tensor"
assert abs(_loss.item() - _expected) < 1e-5, (
    "wrong value: expected alpha * T**2 * KL + (1 - alpha) * CE = 0.5 * 4 * 0.1471274 + 0.5 * 0.2516401; "
    "compute your two terms separately and re-read the tips above"
)
_only_ce = kd_loss(_s, _t, _y, temperature=2.0, alpha=0.0)
print(f"alpha=0: got {_only_ce.item():.6f}, cross-entropy {F.cross_entropy(_s, _y).item():.6f}")
assert torch.allclose(_only_ce, F.cross_entropy(_s, _y)), (
    "with alpha=0 the loss must be the plain cross-entropy of the student's logits (no temperature)"
)
_same_logits = kd_loss(_s, _s.clone(), _y, temperature=3.0, alpha=1.0)
print(f"alpha=1, student == teacher: got {_same_logits.item():.2e}, expected 0")
assert abs(_same_logits.item()) < 1e-6, "KL between identical distributions must be 0"
for _bad in (dict(teacher_logits=_t[:, :2]), dict(temperature=0.0)):
    try:
        kd_loss(**{"student_logits": _s, "teacher_logits": _t, "labels": _y, **_bad})
    except ValueError:
        pass
    else:
        raise AssertionError(f"kd_loss must raise ValueError for {list(_bad)}")
### BEGIN HIDDEN TESTS
_MISTAKE_TOL = 1e-5


def _reference(
    s,
    t,
    y,
    temp,
    a,
    kl_dir="tq",
    reduce="batchmean",
    t2=True,
    log_in=True,
    ce_temp=False,
    teacher_temp=True,
    swap=False,
):
    log_q = F.log_softmax(s / temp, dim=-1)
    log_p = F.log_softmax(t / (temp if teacher_temp else 1.0), dim=-1)
    if not log_in:
        log_q = F.softmax(s / temp, dim=-1)  # softmax where log_softmax belongs
    if kl_dir == "tq":
        per = log_p.exp() * (log_p - log_q)
    else:
        per = log_q.exp() * (log_q - log_p)
    kl = {"batchmean": per.sum() / s.shape[0], "mean": per.mean(), "sum": per.sum()}[reduce]
    soft = kl * (temp**2 if t2 is True else (temp if t2 == "T" else 1.0))
    hard = F.cross_entropy(s / temp if ce_temp else s, y)
    return ((1 - a) * soft + a * hard if swap else a * soft + (1 - a) * hard).item()


torch.manual_seed(3)
for _temp, _a in ((4.0, 0.9), (2.5, 0.3)):
    _s = torch.randn(8, 10) * 3
    _t = torch.randn(8, 10) * 3
    _y = torch.randint(0, 10, (8,))
    _got = kd_loss(_s, _t, _y, temperature=_temp, alpha=_a).item()
    _ref = _reference(_s, _t, _y, _temp, _a)
    _wrong = {
        name: _reference(_s, _t, _y, _temp, _a, **kw)
        for name, kw in {
            "reversed": dict(kl_dir="qt"),
            "mean": dict(reduce="mean"),
            "sum": dict(reduce="sum"),
            "no_t2": dict(t2=False),
            "t_not_t2": dict(t2="T"),
            "softmax_input": dict(log_in=False),
            "alpha_swapped": dict(swap=True),
            "ce_softened": dict(ce_temp=True),
            "teacher_not_softened": dict(teacher_temp=False),
        }.items()
    }

    def _is(name, got=_got, wrong=_wrong):
        return abs(got - wrong[name]) < _MISTAKE_TOL

    _case = f"(T={_temp}, alpha={_a}: got {_got:.6f}, expected {_ref:.6f})"
    assert _got == _got, (  # NaN is the only float not equal to itself
        f"the loss is NaN: kl_div's target must be probabilities (softmax), or pass "
        f"log-probabilities with log_target=True {_case}"
    )
    assert not _is("reversed"), (
        f"the KL is reversed: the TEACHER's distribution is the target {_case}"
    )
    assert not _is("mean"), f"reduction='mean' also divides by the classes: use 'batchmean' {_case}"
    assert not _is("sum"), (
        f"reduction='sum' does not average over the batch: use 'batchmean' {_case}"
    )
    assert not _is("no_t2"), f"the soft term must be multiplied by T**2 {_case}"
    assert not _is("t_not_t2"), f"multiply the soft term by T**2, not T {_case}"
    assert not _is("softmax_input"), (
        f"kl_div's first argument must be log-probabilities (log_softmax), not softmax {_case}"
    )
    assert not _is("alpha_swapped"), (
        f"alpha weighs the soft (KL) term and 1 - alpha the cross-entropy {_case}"
    )
    assert not _is("ce_softened"), (
        f"the cross-entropy uses the plain logits, not logits / T {_case}"
    )
    assert not _is("teacher_not_softened"), f"soften the teacher's logits by T too {_case}"
    assert abs(_got - _ref) < 1e-5, f"wrong value {_case}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "kd_loss_gradient_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# Gradients reach the student's logits and never the teacher's.
torch.manual_seed(0)
_s = torch.randn(4, 10, requires_grad=True)
_t = torch.randn(4, 10, requires_grad=True)  # as if the teacher's graph had been kept
_y = torch.tensor([1, 5, 2, 9])
kd_loss(_s, _t, _y).backward()
_teacher_grad = 0.0 if _t.grad is None else _t.grad.abs().max().item()
print(f"largest gradient on teacher_logits: {_teacher_grad:.2e} (must be 0)")
assert _teacher_grad == 0.0, (
    "a gradient reached teacher_logits: use teacher_logits.detach() inside kd_loss"
)
assert _s.grad is not None and _s.grad.abs().max() > 0, "no gradient reached student_logits"
### BEGIN HIDDEN TESTS
torch.manual_seed(4)
for _temp, _a in ((4.0, 0.9), (1.5, 0.4)):
    _s = (torch.randn(6, 10) * 2).requires_grad_()
    _t = (torch.randn(6, 10) * 2).requires_grad_()
    _y = torch.randint(0, 10, (6,))
    _s_copy, _t_copy = _s.detach().clone(), _t.detach().clone()
    kd_loss(_s, _t, _y, temperature=_temp, alpha=_a).backward()
    assert torch.equal(_s.detach(), _s_copy) and torch.equal(_t.detach(), _t_copy), (
        "kd_loss must not modify its inputs in place (teacher_logits.detach() shares their memory)"
    )
    assert _t.grad is None or not _t.grad.any(), (
        f"a gradient reached teacher_logits (T={_temp}, alpha={_a}): detach them"
    )
    assert _s.grad is not None and _s.grad.abs().max() > 0, "no gradient reached student_logits"
### END HIDDEN TESTS

# %% [markdown]
# ### Written question (2 points)
#
# Why is the soft-target term multiplied by $T^2$? Say what would happen to the balance between the two
# terms, and to a temperature sweep, without it. Answer in the cell below in a few sentences; a short
# derivation helps. This answer is graded by hand.

# %% [markdown] nbgrader={"grade": true, "grade_id": "why_t_squared", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Model answer.** The gradient of $\mathrm{KL}(p^{(T)} \| q^{(T)})$ with respect to a student logit is
# $\frac{1}{T}(q_i^{(T)} - p_i^{(T)})$: one factor $1/T$ from the chain rule through $z/T$, and the
# difference of two softened distributions, which itself shrinks like $1/T$ for large $T$ (expanding the
# softmax, $q_i - p_i \approx (z_i - v_i)/(C\,T)$ for zero-mean logits). So the soft term's gradients scale
# like $1/T^2$ (Hinton et al., 2015, section 2.1). Multiplying by $T^2$ cancels this, so the soft term's
# gradients keep roughly the same size whatever the temperature, and $\alpha$ keeps its meaning as the
# relative weight of soft and hard targets. Without it, raising $T$ would silently shrink the soft term
# (by 16x at $T = 4$), the loss would be dominated by the hard-label cross-entropy, and a temperature sweep
# would mix up two effects: the softening of the targets and the change of their weight (which also acts
# like a change of learning rate for that term).

# %% [markdown]
# ## 3. The distillation loop
#
# ### Exercise 3 (3 points): write `distill`
#
# `distill` is an ordinary training loop with two differences: every batch also goes through the frozen
# teacher, and the loss is your `kd_loss`. The loader yields `(images, labels)` batches; the teacher must
# stay exactly as it was handed over (eval mode, same weights, no gradients), and only the student's
# parameters go into the optimiser.


# %% nbgrader={"grade": false, "grade_id": "distill_answer", "locked": false, "schema_version": 3, "solution": true}
def distill(
    teacher: nn.Module,
    student: nn.Module,
    loader: DataLoader,
    epochs: int,
    temperature: float = 4.0,
    alpha: float = 0.9,
    lr: float = 1e-3,
) -> list[float]:
    """Train ``student`` in place with ``kd_loss`` against the frozen ``teacher``; returns epoch losses.

    Inputs:
    - teacher: module ``images [B, ...] -> logits [B, C]``. Frozen: eval mode, outputs computed without
      gradients, weights unchanged, not in the optimiser.
    - student: module with the same input and output shapes, trained in place (in train mode).
    - loader: iterable of ``(images, labels)`` batches, ``labels`` int64 ``[B]``.
    - epochs: number of passes over ``loader``.
    - temperature, alpha: passed to ``kd_loss``.
    - lr: learning rate of the single ``torch.optim.AdamW(student.parameters(), lr=lr)`` (other settings
      default), created once before the first epoch; one zero_grad/backward/step per batch.

    Returns:
    - ``epochs`` Python floats: each epoch's mean loss (per-batch losses weighted by batch size).

    Raises:
    - ValueError if ``epochs < 1``.
    """
    ### BEGIN SOLUTION
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    teacher.eval()
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for images, labels in loader:
            with torch.no_grad():
                teacher_logits = teacher(images)
            loss = kd_loss(student(images), teacher_logits, labels, temperature, alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
        history.append(total / count)
    student.eval()
    return history
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "distill_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# A short distillation run on 96 training images with the pretrained teacher.
set_seed(0)
_images, _labels = full_batch("train")
_loader = DataLoader(
    TensorDataset(_images[:96], _labels[:96]), batch_size=32
)  # same batches each epoch
_teacher = load_teacher()
_student = DigitsTransformer(width=8, num_heads=2, num_layers=1, ffn_width=16)
_before = copy.deepcopy(_student.state_dict())
_history = distill(_teacher, _student, _loader, epochs=3, temperature=2.0, alpha=0.5, lr=1e-2)
print(f"epoch losses: {_history}")
assert isinstance(_history, list) and len(_history) == 3, "return a list with one loss per epoch"
assert all(isinstance(v, float) for v in _history), (
    f"return Python floats (loss.item()), got {[type(v).__name__ for v in _history]}"
)
assert any(not torch.equal(v, _before[k]) for k, v in _student.state_dict().items()), (
    "the student's weights did not change: optimise student.parameters() and call step()"
)
assert _history[-1] < _history[0], (
    "the epoch loss did not go down: check the training step (zero_grad, backward, step), and that "
    "kd_loss passes its own tests first"
)
try:
    distill(_teacher, _student, _loader, epochs=0)
except ValueError:
    pass
else:
    raise AssertionError("epochs=0 must raise ValueError")
### BEGIN HIDDEN TESTS
_optimizers = []
_original_init = torch.optim.Optimizer.__init__


def _distill_reference(teacher, state, loader, epochs, temp, a, lr, zero_grad=True, last=False):
    """Reference loop using YOUR kd_loss; returns (student, epoch losses)."""
    ref = DigitsTransformer(width=8, num_heads=2, num_layers=1, ffn_width=16)
    ref.load_state_dict(state)
    ref.train()
    opt = torch.optim.AdamW(ref.parameters(), lr=lr)
    hist = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for x, y in loader:
            with torch.no_grad():
                t_out = teacher(x)
            loss = kd_loss(ref(x), t_out, y, temp, a)
            if zero_grad:
                opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = (
                (loss.item(), 1) if last else (total + loss.item() * len(y), count + len(y))
            )
        hist.append(total / count)
    return ref, hist


def _same(a, b):
    return all(
        torch.allclose(p, q, atol=1e-5, rtol=1e-4)
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def _spy_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    _optimizers.append(self)


set_seed(5)
_teacher = DigitsTransformer(width=16, num_heads=2, num_layers=1, ffn_width=32).eval()
_student = DigitsTransformer(width=8, num_heads=2, num_layers=1, ffn_width=16)
_state0 = copy.deepcopy(_student.state_dict())
_args = dict(epochs=2, temp=3.0, a=0.6, lr=2e-2)
torch.optim.Optimizer.__init__ = _spy_init
try:
    _history = distill(_teacher, _student, _loader, epochs=2, temperature=3.0, alpha=0.6, lr=2e-2)
finally:
    torch.optim.Optimizer.__init__ = _original_init
assert all(isinstance(v, float) for v in _history), "return Python floats (loss.item())"
assert len(_optimizers) == 1, (
    f"create ONE optimiser before the first epoch (you created {len(_optimizers)}): "
    "a new AdamW every epoch or batch forgets its moment estimates"
)
assert isinstance(_optimizers[0], torch.optim.AdamW), (
    f"use torch.optim.AdamW, not {type(_optimizers[0]).__name__}"
)
assert {id(p) for g in _optimizers[0].param_groups for p in g["params"]} == {
    id(p) for p in _student.parameters()
}, "the optimiser must hold exactly the student's parameters"
assert _optimizers[0].defaults["lr"] == 2e-2, "you ignored the lr argument: AdamW(..., lr=lr)"
_ref, _ref_hist = _distill_reference(_teacher, _state0, _loader, **_args)
_acc, _ = _distill_reference(_teacher, _state0, _loader, **_args, zero_grad=False)
assert not _same(_student, _acc) or _same(_student, _ref), (
    "gradients accumulate across batches: call optimizer.zero_grad() for every batch"
)
_defaults, _ = _distill_reference(_teacher, _state0, _loader, 2, 4.0, 0.9, 2e-2)
assert not _same(_student, _defaults) or _same(_student, _ref), (
    "pass temperature and alpha on to kd_loss (you used its defaults)"
)
assert _same(_student, _ref), (
    "the trained student differs from a reference loop (one AdamW over the student, for each batch: "
    "teacher logits without gradients, kd_loss(student(x), teacher(x), y, temperature, alpha), "
    "zero_grad/backward/step)"
)
_, _last_hist = _distill_reference(_teacher, _state0, _loader, **_args, last=True)
assert not np.allclose(_history, _last_hist, rtol=1e-4) or np.allclose(_history, _ref_hist), (
    "return each epoch's MEAN loss, not its last batch's loss"
)
assert np.allclose(_history, _ref_hist, rtol=1e-4, atol=1e-6), (
    f"epoch losses {_history} differ from the reference {_ref_hist}: return each epoch's mean loss"
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "distill_teacher_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# The teacher stays frozen: eval mode, same weights, no gradients.
set_seed(0)
_images, _labels = full_batch("train")
_loader = DataLoader(TensorDataset(_images[:64], _labels[:64]), batch_size=32)
_teacher = DigitsTransformer(
    width=16, num_heads=2, num_layers=1, ffn_width=32
).train()  # on purpose
_student = DigitsTransformer(width=8, num_heads=2, num_layers=1, ffn_width=16)
_before = copy.deepcopy(_teacher.state_dict())
distill(_teacher, _student, _loader, epochs=2, lr=1e-2)
_changed = [k for k, v in _teacher.state_dict().items() if not torch.equal(v, _before[k])]
_with_grad = [n for n, p in _teacher.named_parameters() if p.grad is not None]
print(
    f"teacher.training={_teacher.training}, changed tensors: {_changed}, with .grad: {_with_grad}"
)
assert not _teacher.training, "the teacher is still in train mode: call teacher.eval()"
assert not _changed, f"the teacher's weights changed ({_changed}): optimise the student's only"
assert not _with_grad, (
    f"teacher parameters received gradients ({_with_grad}): compute the teacher's logits "
    "inside `with torch.no_grad():`"
)
### BEGIN HIDDEN TESTS
_optimizers = []
_original_init = torch.optim.Optimizer.__init__


class _ModeProbeDigits(DigitsTransformer):
    """DigitsTransformer that records its training flag at every call."""

    def forward(self, images, head_mask=None):
        self.modes.append(self.training)
        return super().forward(images, head_mask=head_mask)


def _spy_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    _optimizers.append(self)


set_seed(6)
_teacher = _ModeProbeDigits(width=16, num_heads=2, num_layers=1, ffn_width=32).train()
_teacher.modes = []
_student = DigitsTransformer(width=8, num_heads=2, num_layers=1, ffn_width=16)
torch.optim.Optimizer.__init__ = _spy_init
try:
    distill(_teacher, _student, _loader, epochs=1, lr=1e-2)
finally:
    torch.optim.Optimizer.__init__ = _original_init
assert _teacher.modes and not any(_teacher.modes), (
    "the teacher ran in train mode: call teacher.eval() before the loop"
)
_teacher_ids = {id(p) for p in _teacher.parameters()}
assert not any(
    id(p) in _teacher_ids for opt in _optimizers for g in opt.param_groups for p in g["params"]
), "the optimiser holds teacher parameters: give it student.parameters() only"
### END HIDDEN TESTS

# %% [markdown]
# ## 4. When does distillation beat labels alone?
#
# If labels are plentiful, a small model trained on them may do nearly as well and distillation has less to
# add. It matters when **labels are scarce but inputs are not**: a few labelled images, many unlabelled
# ones, and a teacher that can label or, better, *describe* them. Hinton et al. show an extreme case in
# speech recognition: trained on 3% of the data with hard targets, a model overfits badly; trained on the
# same 3% with the teacher's soft targets, it keeps most of the full-data accuracy.
#
# The experiment:
# - **Student**: a `DigitsTransformer` with one block, a narrow width and 4x4-pixel patches (4 tokens
#   instead of the teacher's 16, so less compute per image), set in `STUDENT_CONFIG`; the cell below checks
#   it has at least 4x fewer parameters than the teacher.
# - **Labelled set**: `LABELS_PER_CLASS` images per digit from the training split, chosen once with a
#   fixed generator. These are the only human labels any student sees.
# - **Transfer pool**: unlabelled images **the teacher never trained on**. On its own training images a
#   teacher is almost certain (it has fitted them), so its soft targets there are nearly one-hot and carry
#   little more than hard labels: a comparison on them would be unfair to soft targets. The digits set has
#   no image left over (every one is in the train, validation or test split), so
#   `lab_utils.digits_transfer_pool` makes new ones: each training image moved half a pixel in a random
#   direction. The teacher has never seen these inputs, and it is less sure of them (the run measures by
#   how much).
# - **Transfer set**: the labelled images with their **true labels** plus the pool with the
#   **teacher's top-1 prediction** as label (`distill` needs a label for every image, for its
#   $(1-\alpha)$ cross-entropy term). So no human label outside the labelled set is used: everything the
#   student learns about the pool comes from the teacher. (The teacher itself was trained on all the
#   training labels: distillation creates no information, it moves what a big model learned from plenty
#   of labels into a small model that only has a few.)
#
# Three arms, each with the same student architecture, the same `distill` loop, optimiser, learning rate
# and **number of optimiser steps** (the labelled set is small, so its arm runs more epochs):
# 1. **labels only**: `distill(..., alpha=0)` on the labelled set: pure cross-entropy on the true labels.
# 2. **teacher's hard labels**: `alpha=0` on the transfer set: cross-entropy on the teacher's top-1 labels.
#    On the pool they are often wrong (the run measures how often, against the label of each pool
#    image's source image).
# 3. **distilled**: `alpha=ALPHA`, `T=TEMPERATURE` on the transfer set: mostly soft targets.
#
# One shortcut avoids recomputing the teacher: it is frozen and the images never change, so its logits for
# an image are always the same. `OfflineTeacher` computes them once for the transfer set and looks them
# up by image, so `distill` gets exactly the teacher's logits without paying for its forward pass in every
# step (precomputing the teacher's outputs is common practice, sometimes called *offline* distillation).
#
# Arm 2 separates the two reasons distillation could help: *more labelled examples* (arm 1 vs 2) and
# *richer targets* (arm 2 vs 3). Every arm is repeated over `NUM_SEEDS` seeds (initialisation and batch
# order) so you can compare each gap with the seed-to-seed spread. Learning rates and epochs were chosen
# to fit the notebook's time budget, not tuned per arm; validation accuracy is tracked at every epoch.


# %%
class OfflineTeacher(nn.Module):
    """Frozen ``teacher``'s logits ``[B, 10]`` for images ``[B, 8, 8]`` of ``images``, computed once."""

    def __init__(self, teacher: nn.Module, images: torch.Tensor):
        super().__init__()
        with torch.no_grad():
            logits = teacher.eval()(images)
        self.table = {
            image.numpy().tobytes(): row for image, row in zip(images, logits, strict=True)
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Look up every image's logits: ``[B, 8, 8] -> [B, 10]``."""
        return torch.stack([self.table[image.numpy().tobytes()] for image in images])


class ValTracker:
    """A loader wrapper that records ``model``'s accuracy on ``data`` at the start of every epoch."""

    def __init__(
        self, loader: DataLoader, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]
    ):
        self.loader, self.model, self.data, self.history = loader, model, data, []

    def __len__(self) -> int:
        """Batches per epoch (that of the wrapped loader)."""
        return len(self.loader)

    def __iter__(self):
        """Record the accuracy (``lab_utils.accuracy`` restores the train mode), then yield batches."""
        self.history.append(accuracy(self.model, self.data))
        yield from self.loader


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices ``[10 * per_class]`` of ``per_class`` random examples of each class."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    return torch.cat([order[labels[order] == c][:per_class] for c in range(10)])


def run_arm(
    data: TensorDataset, epochs: int, seed: int, val: tuple, test: tuple, **kd_args: float
) -> dict:
    """Train a fresh student with ``distill`` on ``data``; returns losses, val curve, accuracies."""
    set_seed(seed)
    student = DigitsTransformer(**STUDENT_CONFIG)
    loader = DataLoader(
        data, batch_size=BATCH_SIZE, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    tracked = ValTracker(loader, student, val)
    losses = distill(offline_teacher, student, tracked, epochs=epochs, lr=LR, **kd_args)
    tracked.history.append(accuracy(student, val))
    return {
        "student": student,
        "losses": losses,
        "val_curve": tracked.history,
        "steps_per_epoch": len(loader),
        "val_acc": accuracy(student, val),
        "test_acc": accuracy(student, test),
    }


if not GRADING:
    splits = digits_splits()
    train_images, train_labels = splits["train"].tensors
    val_data, test_data = splits["val"].tensors, splits["test"].tensors
    pool_images, pool_source_labels = digits_transfer_pool(seed=SEED)
    labelled = labelled_subset(train_labels, LABELS_PER_CLASS, seed=SEED)
    labelled_set = TensorDataset(train_images[labelled], train_labels[labelled])
    with torch.no_grad():
        train_logits, pool_logits = teacher(train_images), teacher(pool_images)
    pool_pred = pool_logits.argmax(dim=-1)
    transfer_set = TensorDataset(
        torch.cat([train_images[labelled], pool_images]),
        torch.cat([train_labels[labelled], pool_pred]),
    )
    offline_teacher = OfflineTeacher(teacher, transfer_set.tensors[0])
    # a batch of 50 and the full batch may take different float kernels: close, not equal
    assert torch.allclose(offline_teacher(pool_images[:50]), pool_logits[:50], atol=1e-5)

    def top_prob(logits: torch.Tensor, temp: float) -> float:
        """Mean probability of the top class in ``softmax(logits / temp)``."""
        return (logits / temp).softmax(dim=-1).amax(dim=-1).mean().item()

    agree = (pool_pred == pool_source_labels).float().mean().item()

    teacher_params = count_parameters(teacher)
    student_params = count_parameters(DigitsTransformer(**STUDENT_CONFIG))
    ratio = teacher_params / student_params
    assert ratio >= 4, (
        f"the student must be at least 4x smaller than the teacher (got {ratio:.1f}x)"
    )
    steps_transfer = TRANSFER_EPOCHS * len(DataLoader(transfer_set, batch_size=BATCH_SIZE))
    labelled_epochs = round(steps_transfer / len(DataLoader(labelled_set, batch_size=BATCH_SIZE)))
    print(f"teacher: {teacher_params} parameters; student: {student_params} ({ratio:.1f}x fewer)")
    print(
        f"labelled set: {len(labelled_set)} images; transfer set: {len(transfer_set)} images, of which "
        f"{len(pool_images)} (the pool) carry the teacher's label "
        f"(it agrees with the source image's label on {100 * agree:.1f}% of them)"
    )
    print(
        "mean probability the teacher gives its top class: on its own training images "
        f"{top_prob(train_logits, 1.0):.1%} at T = 1; on the pool {top_prob(pool_logits, 1.0):.1%} "
        f"at T = 1 and {top_prob(pool_logits, TEMPERATURE):.1%} at T = {TEMPERATURE:g}"
    )
    print(
        f"each run: {steps_transfer} optimiser steps ({TRANSFER_EPOCHS} epochs of the transfer set, "
        f"{labelled_epochs} of the labelled set)"
    )
    summary.update(
        teacher_params=teacher_params,
        student_params=student_params,
        param_ratio=ratio,
        labelled_images=len(labelled_set),
        teacher_label_agreement=agree,
        teacher_top_prob_train_T1=top_prob(train_logits, 1.0),
        teacher_top_prob_T1=top_prob(pool_logits, 1.0),
        teacher_top_prob_default_T=top_prob(pool_logits, TEMPERATURE),
    )

    arms = {
        "labels only": (labelled_set, labelled_epochs, dict(alpha=0.0)),
        "teacher's hard labels": (transfer_set, TRANSFER_EPOCHS, dict(alpha=0.0)),
        "distilled": (transfer_set, TRANSFER_EPOCHS, dict(temperature=TEMPERATURE, alpha=ALPHA)),
    }
    seeds = list(range(SEED, SEED + NUM_SEEDS))
    runs = {name: [] for name in arms}
    jobs = [(name, seed) for seed in seeds for name in arms]
    for name, seed in tqdm(jobs, desc="students (arm x seed)"):
        data, epochs, kd_args = arms[name]
        runs[name].append(run_arm(data, epochs, seed, val_data, test_data, **kd_args))

# %% [markdown]
# Test accuracy of every run, then the mean and the standard deviation over seeds (sample standard
# deviation, `ddof=1`). A gap between two arms means something only if it is clearly larger than the spread
# within each arm.

# %%
if not GRADING:
    names = list(arms)
    rows = [
        f"| {seed} | " + " | ".join(f"{runs[n][i]['test_acc']:.3f}" for n in names) + " |"
        for i, seed in enumerate(seeds)
    ]
    stats = {
        n: (
            statistics.mean(r["test_acc"] for r in runs[n]),
            statistics.stdev(r["test_acc"] for r in runs[n]) if len(runs[n]) > 1 else 0.0,
        )
        for n in names
    }
    table = "\n".join(
        [
            "| seed | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
            *rows,
            "| **mean ± std** | "
            + " | ".join(f"**{m:.3f} ± {s:.3f}**" for m, s in stats.values())
            + " |",
        ]
    )
    display(
        Markdown(f"**Test accuracy of the student** ({len(test_data[1])} test images)\n\n{table}")
    )
    keys = {
        "labels only": "labels_only",
        "teacher's hard labels": "hard_labels",
        "distilled": "distilled",
    }
    for n in names:
        summary[f"{keys[n]}_acc_mean"], summary[f"{keys[n]}_acc_std"] = stats[n]
    summary["distill_gain_over_labels"] = stats["distilled"][0] - stats["labels only"][0]
    # Both transfer arms of one seed share the initialisation and batch order: compare them in pairs.
    paired = [
        d["test_acc"] - h["test_acc"]
        for d, h in zip(runs["distilled"], runs["teacher's hard labels"], strict=True)
    ]
    gap, gap_std = statistics.mean(paired), statistics.stdev(paired) if len(paired) > 1 else 0.0
    clear = len(paired) > 1 and gap > 2 * gap_std / len(paired) ** 0.5
    print(
        "distilled minus teacher's hard labels, seed by seed: "
        + ", ".join(f"{d:+.3f}" for d in paired)
        + f"; mean {gap:+.3f}, std {gap_std:.3f}. In this run the soft targets' advantage is "
        + ("" if clear else "NOT ")
        + "clearly above the seed-to-seed noise (mean more than twice its standard error)."
    )
    summary.update(soft_minus_hard_mean=gap, soft_minus_hard_std=gap_std)

# %% [markdown]
# The learning curves: on the left the training loss each arm minimises (they are different losses, so
# compare shapes, not heights); on the right the validation accuracy after each epoch, against optimiser
# steps so the arms line up (line: mean over seeds; band: minimum to maximum).

# %%
if not GRADING:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for n, color in zip(names, ("tab:gray", "tab:blue", "tab:orange"), strict=True):
        spe = runs[n][0]["steps_per_epoch"]
        losses = np.array([r["losses"] for r in runs[n]])
        epochs_axis = np.arange(1, losses.shape[1] + 1) * spe
        ax_loss.plot(epochs_axis, losses.mean(axis=0), color=color, label=n)
        curves = np.array([r["val_curve"] for r in runs[n]])
        steps_axis = np.arange(curves.shape[1]) * spe
        ax_acc.plot(steps_axis, curves.mean(axis=0), color=color, label=n)
        ax_acc.fill_between(
            steps_axis, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.2
        )
    ax_acc.axhline(accuracy(teacher, val_data), ls="--", color="black", label="teacher")
    ax_loss.set(
        title="Training loss (each arm's own objective)",
        xlabel="optimiser step",
        ylabel="mean epoch loss",
        yscale="log",
    )
    ax_acc.set(
        title="Validation accuracy during training",
        xlabel="optimiser step",
        ylabel="validation accuracy (fraction)",
        ylim=(0, 1),
    )
    ax_loss.legend()
    ax_acc.legend(loc="lower right")
    plt.show()

# %% [markdown]
# Read the table and the curves together. Does the labels-only student's training loss keep falling while
# its validation accuracy levels off? That is overfitting: with so few labelled images, it can memorise
# them. The two transfer-set arms see the whole pool. The gap between the first column and the other two
# is what the teacher's labelling of unlabelled images buys; the gap between the last two columns is what
# the *soft* targets add on top of hard labels. Judge each gap against the spread of its columns before
# believing it. On this pool the teacher is less sure than on its own training images, and its top-1 label
# is often wrong (the run measured both): do its soft targets beat its hard labels by more than the noise?
# The line under the table answers for this run, seed by seed; run the notebook with another `SEED` and see
# whether the answer holds. Would you expect a larger or a smaller gap with the teacher's own training
# images as the pool, where its soft targets are nearly one-hot (the run printed how nearly)? Why?
#
# ### What the temperature does to the student
#
# The sweep below distils the first `SWEEP_SEEDS` seeds at each temperature of `TEMPERATURES` (same
# $\alpha$, same number of steps) and measures **validation** accuracy: hyper-parameters are chosen on the
# validation split, never on the test split. Points are the mean over seeds, error bars one standard deviation; the runs at
# the default temperature are reused from the comparison above. The two bands show the arms without soft
# targets (mean ± std, validation).
#
# What to expect: at $T = 1$ the soft targets of a confident teacher are close to one-hot (the run printed how
# much probability this teacher gives its top class at $T = 1$ and at `TEMPERATURE`), so they carry
# little more than the hard labels; higher temperatures expose the runner-up classes; at very high $T$ every
# distribution tends to uniform and the differences between classes shrink (the $T^2$ factor keeps the
# gradients' size, not their information). Whether the curve shows a clear optimum here is for the error
# bars to say.

# %%
if not GRADING:
    sweep = {}
    sweep_seeds = seeds[:SWEEP_SEEDS]
    jobs = [(temp, seed) for temp in TEMPERATURES for seed in sweep_seeds if temp != TEMPERATURE]
    for temp, seed in tqdm(jobs, desc="temperature sweep (T x seed)"):
        result = run_arm(
            transfer_set, TRANSFER_EPOCHS, seed, val_data, test_data, temperature=temp, alpha=ALPHA
        )
        sweep.setdefault(temp, []).append(result["val_acc"])
    if TEMPERATURE in TEMPERATURES:  # these seeds were trained in the comparison above
        sweep[TEMPERATURE] = [r["val_acc"] for r in runs["distilled"][:SWEEP_SEEDS]]

    def mean_std(values: list[float]) -> tuple[float, float]:
        """Mean and sample standard deviation (0 for a single value)."""
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    temps = sorted(sweep)
    means, stds = zip(*(mean_std(sweep[t]) for t in temps), strict=True)
    for t, m, sd in zip(temps, means, stds, strict=True):
        summary[f"val_acc_T{t:g}_mean"], summary[f"val_acc_T{t:g}_std"] = m, sd
    print(
        f"validation accuracy by temperature (mean ± std over {len(sweep_seeds)} seeds): "
        + ", ".join(
            f"T={t:g}: {m:.3f} ± {sd:.3f}" for t, m, sd in zip(temps, means, stds, strict=True)
        )
    )

    fig, ax = plt.subplots()
    ax.errorbar(
        temps, means, yerr=stds, marker="o", capsize=4, color="tab:orange", label="distilled"
    )
    for name, color in (("teacher's hard labels", "tab:blue"), ("labels only", "tab:gray")):
        m, sd = mean_std([r["val_acc"] for r in runs[name]])
        ax.axhspan(m - sd, m + sd, color=color, alpha=0.15)
        ax.axhline(m, ls="--", color=color, label=f"{name} (alpha = 0)")
    ax.set(
        title=f"Student accuracy across temperatures (alpha = {ALPHA:g})",
        xlabel="temperature T",
        ylabel="validation accuracy (fraction)",
        xscale="log",
    )
    ax.minorticks_off()
    ax.set_xticks(temps, [f"{t:g}" for t in temps])
    ax.legend(loc="center right")
    plt.show()

# %% [markdown]
# ## 5. What the student buys
#
# Parameters, size on disk (`torch.save` of the state dict), latency (median of repeated runs after a
# warm-up, one thread, for a single image and for the whole test set) and test accuracy. The two students
# share one architecture, so their size and latency are the same; latency is measured on the distilled one.

# %%
if not GRADING:
    student = runs["distilled"][0]["student"]
    one_image = test_data[0][:1]
    latency = {
        name: tuple(measure_latency(model, x, min_run_time=0.1) for x in (one_image, test_data[0]))
        for name, model in (("teacher", teacher), ("student", student))
    }
    teacher_acc = accuracy(teacher, test_data)
    rows = [
        ("teacher", teacher, latency["teacher"], f"{teacher_acc:.3f}"),
        (
            "student, labels only",
            runs["labels only"][0]["student"],
            latency["student"],
            "{:.3f} ± {:.3f}".format(*stats["labels only"]),
        ),
        (
            "student, distilled",
            student,
            latency["student"],
            "{:.3f} ± {:.3f}".format(*stats["distilled"]),
        ),
    ]
    lines = [
        "| model | parameters | serialized size (KB) | latency, 1 image (ms) "
        f"| latency, {len(test_data[1])} images (ms) | test accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, model, (lat1, lat_all), acc in rows:
        lines.append(
            f"| {name} | {count_parameters(model):,} | {serialized_size(model) / 1024:.1f} "
            f"| {lat1 * 1e3:.3f} | {lat_all * 1e3:.2f} | {acc} |"
        )
    display(Markdown("\n".join(lines) + f"\n\nStudents: mean ± std over {NUM_SEEDS} seeds."))
    print(
        f"the student has {ratio:.1f}x fewer parameters; it ran "
        f"{latency['teacher'][0] / latency['student'][0]:.1f}x faster on one image and "
        f"{latency['teacher'][1] / latency['student'][1]:.1f}x faster on {len(test_data[1])} images"
    )
    summary.update(
        teacher_test_acc=teacher_acc,
        teacher_bytes=serialized_size(teacher),
        student_bytes=serialized_size(student),
        teacher_latency_1_ms=latency["teacher"][0] * 1e3,
        student_latency_1_ms=latency["student"][0] * 1e3,
        speedup_1_image=latency["teacher"][0] / latency["student"][0],
        speedup_test_set=latency["teacher"][1] / latency["student"][1],
    )

# %% [markdown]
# Compare the speed-ups with the ratio of parameters. Which one comes closer to it, one image or the whole
# test set? For a single image, does a model this small spend its time on arithmetic, or on the fixed cost
# of launching each operation, which follows the number of operations (layers, tokens) rather than the
# number of parameters? Then read the accuracy column: how much of the labels-only student's gap to the
# teacher did distillation close?
#
# **Going further.** Try `LABELS_PER_CLASS = 100` (labels are no longer scarce: does distillation still
# help?), a wider student, or drop one digit class from the transfer set, as Hinton et al. did with the 3s
# of MNIST, and see whether the student still recognises it from the soft targets alone.

# %% tags=["summary"]
summary["run_seconds"] = round(time.perf_counter() - STARTED, 1)
print(json.dumps(summary))
