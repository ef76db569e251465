"""Wrong answers for the knowledge-distillation assignment: each must fail the test cells it names."""

from tests.notebook_harness import Mistake

# ---------------------------------------------------------------------------------------------------------
# Exercise 1: knowledge_distillation (the original script's warm-up)
# ---------------------------------------------------------------------------------------------------------
WARMUP = """
def knowledge_distillation(teacher, student, steps=50, lr=1e-3):
    if steps < 1:
        raise ValueError("steps must be at least 1")
    {setup}
    for _ in range(steps):
        {inputs}
        {teacher_out}
        loss = F.mse_loss(student({student_in}), target)
        {zero}
        loss.backward()
        optimizer.step()
    return {ret}
"""
WARMUP_OK = dict(
    setup="teacher.eval()\n    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)",
    inputs="inputs = torch.randn(2, 16, teacher.hidden_size)",
    teacher_out="with torch.no_grad():\n            target = teacher(inputs)",
    student_in="inputs",
    zero="optimizer.zero_grad()",
    ret="loss.item()",
)


def warmup(**changes: str) -> str:
    """The correct warm-up with some of its pieces replaced."""
    return WARMUP.format(**{**WARMUP_OK, **changes})


def warmup_mistake(name: str, fails: tuple[str, ...], **changes: str) -> Mistake:
    """A wrong ``knowledge_distillation``."""
    return Mistake(name=name, answer_id="warmup_answer", source=warmup(**changes), fails=fails)


WARMUP_TESTS = ("warmup_tests",)
WARMUP_TEACHER = ("warmup_teacher_tests",)

# ---------------------------------------------------------------------------------------------------------
# Exercise 2: kd_loss
# ---------------------------------------------------------------------------------------------------------
KD = """
def kd_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.9):
    if student_logits.shape != teacher_logits.shape:
        raise ValueError("shapes differ")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    T = temperature
    teacher_logits = {detach}
    soft = {soft}
    hard = {hard}
    return {combine}
"""
KD_OK = dict(
    detach="teacher_logits.detach()",
    soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="batchmean") * T**2',
    hard="F.cross_entropy(student_logits, labels)",
    combine="alpha * soft + (1 - alpha) * hard",
)


def kd(**changes: str) -> str:
    """The correct kd_loss with some of its pieces replaced."""
    return KD.format(**{**KD_OK, **changes})


def kd_mistake(name: str, fails: tuple[str, ...], **changes: str) -> Mistake:
    """A wrong ``kd_loss``."""
    return Mistake(name=name, answer_id="kd_loss_answer", source=kd(**changes), fails=fails)


KD_TESTS = ("kd_loss_tests",)
KD_GRAD = ("kd_loss_gradient_tests",)

# ---------------------------------------------------------------------------------------------------------
# Exercise 3: distill
# ---------------------------------------------------------------------------------------------------------
DISTILL = """
def distill(teacher, student, loader, epochs, temperature=4.0, alpha=0.9, lr=1e-3):
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    {setup}
    student.train()
    history = []
    for _ in range(epochs):
        {epoch_setup}
        total, count = 0.0, 0
        for images, labels in loader:
            {teacher_out}
            loss = {loss}
            {zero}
            loss.backward()
            optimizer.step()
            {accumulate}
        history.append({epoch_value})
    student.eval()
    return history
"""
DISTILL_OK = dict(
    setup="teacher.eval()\n    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)",
    epoch_setup="pass",
    teacher_out="with torch.no_grad():\n                teacher_logits = teacher(images)",
    loss="kd_loss(student(images), teacher_logits, labels, temperature, alpha)",
    zero="optimizer.zero_grad()",
    accumulate="total += loss.item() * len(labels)\n            count += len(labels)",
    epoch_value="total / count",
)


def distill_src(**changes: str) -> str:
    """The correct distill with some of its pieces replaced."""
    return DISTILL.format(**{**DISTILL_OK, **changes})


def distill_mistake(
    name: str, fails: tuple[str, ...], extra: dict[str, str] | None = None, **changes: str
) -> Mistake:
    """A wrong ``distill`` (``extra`` replaces other answer cells, e.g. a kd_loss without detach)."""
    return Mistake(
        name=name,
        answer_id="distill_answer",
        source=distill_src(**changes),
        fails=fails,
        extra=extra or {},
    )


DISTILL_TESTS = ("distill_tests",)
DISTILL_TEACHER = ("distill_teacher_tests",)
STUB_FN = "def {sig}:\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"

MISTAKES = [
    # ---- exercise 1 ----------------------------------------------------------------------------------
    Mistake(
        name="warmup_blank_stub",
        answer_id="warmup_answer",
        source=STUB_FN.format(sig="knowledge_distillation(teacher, student, steps=50, lr=1e-3)"),
        fails=WARMUP_TESTS + WARMUP_TEACHER,
    ),
    warmup_mistake("warmup_returns_tensor", WARMUP_TESTS, ret="loss"),
    warmup_mistake("warmup_returns_detached_tensor", WARMUP_TESTS, ret="loss.detach()"),
    warmup_mistake("warmup_no_zero_grad", WARMUP_TESTS, zero="pass"),
    warmup_mistake(
        "warmup_inputs_tokens_and_batch_swapped",
        WARMUP_TESTS,
        inputs="inputs = torch.randn(16, 2, teacher.hidden_size)",
    ),
    warmup_mistake(
        "warmup_inputs_one_sequence",
        WARMUP_TESTS,
        inputs="inputs = torch.randn(1, 16, teacher.hidden_size)",
    ),
    warmup_mistake(
        "warmup_inputs_hidden_size_hardcoded",
        WARMUP_TESTS + WARMUP_TEACHER,
        inputs="inputs = torch.randn(2, 16, 256)",
    ),
    warmup_mistake(
        "warmup_uniform_inputs",
        WARMUP_TESTS,
        inputs="inputs = torch.rand(2, 16, teacher.hidden_size)",
    ),
    warmup_mistake(
        "warmup_same_inputs_every_step",
        WARMUP_TESTS,
        setup=WARMUP_OK["setup"] + "\n    fixed = torch.randn(2, 16, teacher.hidden_size)",
        inputs="inputs = fixed",
    ),
    warmup_mistake(
        "warmup_teacher_and_student_get_different_inputs",
        WARMUP_TESTS,
        student_in="torch.randn(2, 16, teacher.hidden_size)",
    ),
    warmup_mistake(
        "warmup_ignores_lr",
        WARMUP_TESTS,
        setup="teacher.eval()\n    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)",
    ),
    warmup_mistake(
        "warmup_sgd_instead_of_adamw",
        WARMUP_TESTS + WARMUP_TEACHER,
        setup="teacher.eval()\n    optimizer = torch.optim.SGD(student.parameters(), lr=lr)",
    ),
    warmup_mistake(
        "warmup_returns_first_loss",
        WARMUP_TESTS,
        setup=WARMUP_OK["setup"] + "\n    first = None",
        zero="optimizer.zero_grad()\n        first = loss.item() if first is None else first",
        ret="first",
    ),
    warmup_mistake(
        "warmup_returns_mean_loss",
        WARMUP_TESTS,
        setup=WARMUP_OK["setup"] + "\n    losses = []",
        zero="optimizer.zero_grad()\n        losses.append(loss.item())",
        ret="sum(losses) / len(losses)",
    ),
    warmup_mistake(
        "warmup_teacher_left_in_train_mode",
        WARMUP_TEACHER,
        setup="optimizer = torch.optim.AdamW(student.parameters(), lr=lr)",
    ),
    warmup_mistake(
        "warmup_gradients_reach_teacher",
        WARMUP_TEACHER,
        teacher_out="target = teacher(inputs)",
    ),
    warmup_mistake(
        "warmup_optimiser_over_teacher_too",
        WARMUP_TEACHER,
        setup=(
            "teacher.eval()\n    optimizer = torch.optim.AdamW("
            "list(student.parameters()) + list(teacher.parameters()), lr=lr)"
        ),
    ),
    warmup_mistake(
        "warmup_teacher_updated",
        WARMUP_TEACHER,
        setup=(
            "teacher.eval()\n    optimizer = torch.optim.AdamW("
            "list(student.parameters()) + list(teacher.parameters()), lr=lr)"
        ),
        teacher_out="target = teacher(inputs)",
    ),
    # ---- exercise 2 ----------------------------------------------------------------------------------
    Mistake(
        name="kd_loss_blank_stub",
        answer_id="kd_loss_answer",
        source=STUB_FN.format(
            sig="kd_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.9)"
        ),
        fails=KD_TESTS + KD_GRAD,
    ),
    kd_mistake(
        "kd_loss_kl_reversed",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(teacher_logits / T, dim=-1), F.softmax(student_logits / T, dim=-1), reduction="batchmean") * T**2',
    ),
    kd_mistake(
        "kd_loss_reduction_mean",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="mean") * T**2',
    ),
    kd_mistake(
        "kd_loss_reduction_sum",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="sum") * T**2',
    ),
    kd_mistake(
        "kd_loss_default_reduction",
        KD_TESTS,
        soft="F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1)) * T**2",
    ),
    kd_mistake(
        "kd_loss_missing_t_squared",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="batchmean")',
    ),
    kd_mistake(
        "kd_loss_t_instead_of_t_squared",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="batchmean") * T',
    ),
    kd_mistake(
        "kd_loss_softmax_where_log_softmax_belongs",
        KD_TESTS,
        soft='F.kl_div(F.softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="batchmean") * T**2',
    ),
    kd_mistake(
        "kd_loss_log_target_without_flag",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.log_softmax(teacher_logits / T, dim=-1), reduction="batchmean") * T**2',
    ),
    kd_mistake(
        "kd_loss_alpha_on_wrong_term", KD_TESTS, combine="(1 - alpha) * soft + alpha * hard"
    ),
    kd_mistake(
        "kd_loss_cross_entropy_on_softened_logits",
        KD_TESTS,
        hard="F.cross_entropy(student_logits / T, labels)",
    ),
    kd_mistake(
        "kd_loss_teacher_not_softened",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits, dim=-1), reduction="batchmean") * T**2',
    ),
    kd_mistake(
        "kd_loss_t_squared_on_both_terms",
        KD_TESTS,
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1), reduction="batchmean")',
        combine="T**2 * (alpha * soft + (1 - alpha) * hard)",
    ),
    kd_mistake(
        "kd_loss_returns_float",
        KD_TESTS + KD_GRAD,
        combine="(alpha * soft + (1 - alpha) * hard).item()",
    ),
    kd_mistake("kd_loss_gradient_reaches_teacher", KD_GRAD, detach="teacher_logits"),
    Mistake(
        name="kd_loss_no_shape_check",
        answer_id="kd_loss_answer",
        source=kd().replace(
            'if student_logits.shape != teacher_logits.shape:\n        raise ValueError("shapes differ")',
            "pass",
        ),
        fails=KD_TESTS,
    ),
    kd_mistake(
        "kd_loss_softens_teacher_logits_in_place",  # detach() shares storage with the caller's tensor
        KD_GRAD + KD_TESTS,
        detach="teacher_logits.detach()\n    teacher_logits /= T",
        soft='F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits, dim=-1), reduction="batchmean") * T**2',
    ),
    # ---- exercise 3 ----------------------------------------------------------------------------------
    Mistake(
        name="distill_blank_stub",
        answer_id="distill_answer",
        source=STUB_FN.format(
            sig="distill(teacher, student, loader, epochs, temperature=4.0, alpha=0.9, lr=1e-3)"
        ),
        fails=DISTILL_TESTS + DISTILL_TEACHER,
    ),
    distill_mistake(
        "distill_teacher_left_in_train_mode",
        DISTILL_TEACHER,
        setup="optimizer = torch.optim.AdamW(student.parameters(), lr=lr)",
    ),
    distill_mistake(
        "distill_optimiser_over_teacher_too",
        DISTILL_TEACHER + DISTILL_TESTS,
        setup=(
            "teacher.eval()\n    optimizer = torch.optim.AdamW("
            "list(student.parameters()) + list(teacher.parameters()), lr=lr)"
        ),
    ),
    distill_mistake(
        "distill_gradients_reach_teacher",
        DISTILL_TEACHER + KD_GRAD,
        extra={"kd_loss_answer": kd(detach="teacher_logits")},
        teacher_out="teacher_logits = teacher(images)",
    ),
    distill_mistake(
        "distill_teacher_updated",
        DISTILL_TEACHER + DISTILL_TESTS,
        setup=(
            "teacher.eval()\n    optimizer = torch.optim.AdamW("
            "list(student.parameters()) + list(teacher.parameters()), lr=lr)"
        ),
        teacher_out="teacher_logits = teacher(images)",
        loss=(
            "alpha * temperature**2 * F.kl_div(F.log_softmax(student(images) / temperature, -1), "
            'F.softmax(teacher_logits / temperature, -1), reduction="batchmean") '
            "+ (1 - alpha) * F.cross_entropy(student(images), labels)"
        ),
    ),
    distill_mistake(
        "distill_returns_tensors",
        DISTILL_TESTS,
        accumulate="total += loss.detach() * len(labels)\n            count += len(labels)",
    ),
    distill_mistake("distill_no_zero_grad", DISTILL_TESTS, zero="pass"),
    distill_mistake(
        "distill_ignores_temperature_and_alpha",
        DISTILL_TESTS,
        loss="kd_loss(student(images), teacher_logits, labels)",
    ),
    distill_mistake(
        "distill_ignores_lr",
        DISTILL_TESTS,
        setup="teacher.eval()\n    optimizer = torch.optim.AdamW(student.parameters())",
    ),
    distill_mistake(
        "distill_new_optimiser_every_epoch",
        DISTILL_TESTS,
        setup="teacher.eval()",
        epoch_setup="optimizer = torch.optim.AdamW(student.parameters(), lr=lr)",
    ),
    distill_mistake(
        "distill_sgd_instead_of_adamw",
        DISTILL_TESTS,
        setup="teacher.eval()\n    optimizer = torch.optim.SGD(student.parameters(), lr=lr)",
    ),
    distill_mistake(
        "distill_last_batch_loss_per_epoch",
        DISTILL_TESTS,
        accumulate="total, count = loss.item(), 1",
    ),
    distill_mistake(
        "distill_sum_of_batch_losses",
        DISTILL_TESTS,
        accumulate="total += loss.item()\n            count = 1",
    ),
    distill_mistake(
        "distill_student_and_teacher_swapped_in_kd_loss",
        DISTILL_TESTS + DISTILL_TEACHER,
        loss="kd_loss(teacher_logits, student(images), labels, temperature, alpha)",
    ),
    Mistake(
        name="distill_no_epochs_check",
        answer_id="distill_answer",
        source=distill_src().replace(
            'if epochs < 1:\n        raise ValueError("epochs must be at least 1")', "pass"
        ),
        fails=DISTILL_TESTS,
    ),
]
