"""Wrong answers for the capstone: every one must fail the test cell(s) it names."""

from tests.notebook_harness import Mistake

STUB = "    raise NotImplementedError()\n"

# --------------------------------------------------------------------------- exercise 1
FQ = "def fake_quantize_ste(weight, num_bits, per_channel=True):\n"
CHECK = (
    "    if isinstance(num_bits, bool) or not isinstance(num_bits, int) or not 2 <= num_bits <= 8:\n"
    "        raise ValueError('num_bits')\n"
    "    if weight.dim() != 2:\n"
    "        raise ValueError('2-D')\n"
)


def _fq(
    q_max="2 ** (num_bits - 1) - 1",
    peak="w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().max()",
    rounding="torch.round",
    w="weight.detach()",
    out="weight + (w_hat - weight).detach()",
    check=CHECK,
    safe="torch.where(scale > 0, scale, torch.ones_like(scale))",
) -> str:
    """A ``fake_quantize_ste`` answer: the solution with one part replaced."""
    return (
        FQ + check + f"    q_max = {q_max}\n    w = {w}\n    peak = {peak}\n"
        "    scale = peak / q_max\n"
        f"    safe = {safe}\n"
        f"    w_hat = torch.clamp({rounding}(w / safe), -q_max, q_max) * scale\n"
        f"    return {out}\n"
    )


FQ_TESTS = ("fake_quantize_ste_tests",)
FQ_MISTAKES = [
    Mistake("fq_stub", "fake_quantize_ste_answer", FQ + STUB, FQ_TESTS),
    Mistake(
        "fq_no_straight_through", "fake_quantize_ste_answer", _fq(w="weight", out="w_hat"), FQ_TESTS
    ),
    Mistake("fq_detached_output", "fake_quantize_ste_answer", _fq(out="w_hat"), FQ_TESTS),
    Mistake(
        "fq_gradient_through_scale",
        "fake_quantize_ste_answer",
        FQ + CHECK + "    q_max = 2 ** (num_bits - 1) - 1\n"
        "    peak = weight.abs().amax(dim=1, keepdim=True) if per_channel else weight.abs().max()\n"
        "    scale = peak.clamp_min(1e-12) / q_max\n"
        "    x = weight / scale\n"
        "    return scale * torch.clamp(x + (torch.round(x) - x).detach(), -q_max, q_max)\n",
        FQ_TESTS,
    ),
    Mistake(
        "fq_unsigned_range", "fake_quantize_ste_answer", _fq(q_max="2 ** num_bits - 1"), FQ_TESTS
    ),
    Mistake(
        "fq_power_of_two_range",
        "fake_quantize_ste_answer",
        _fq(q_max="2 ** (num_bits - 1)"),
        FQ_TESTS,
    ),
    Mistake(
        "fq_scales_per_column",
        "fake_quantize_ste_answer",
        _fq(peak="w.abs().amax(dim=0, keepdim=True) if per_channel else w.abs().max()"),
        FQ_TESTS,
    ),
    Mistake(
        "fq_ignores_per_channel",
        "fake_quantize_ste_answer",
        _fq(peak="w.abs().amax(dim=1, keepdim=True)"),
        FQ_TESTS,
    ),
    Mistake("fq_floor", "fake_quantize_ste_answer", _fq(rounding="torch.floor"), FQ_TESTS),
    Mistake("fq_nan_for_zero_rows", "fake_quantize_ste_answer", _fq(safe="scale"), FQ_TESTS),
    Mistake(
        "fq_returns_codes",
        "fake_quantize_ste_answer",
        _fq(out="weight + (w_hat / safe - weight).detach()"),
        FQ_TESTS,
    ),
    Mistake(
        "fq_quantizes_in_place",
        "fake_quantize_ste_answer",
        _fq().replace("    return weight", "    weight.data.copy_(w_hat)\n    return weight"),
        FQ_TESTS,
    ),
    Mistake(
        "fq_no_checks",
        "fake_quantize_ste_answer",
        _fq(check=""),
        ("fake_quantize_ste_errors_tests",),
    ),
    Mistake(
        "fq_excludes_2_and_8",
        "fake_quantize_ste_answer",
        _fq(check=CHECK.replace("2 <= num_bits <= 8", "2 < num_bits < 8")),
        ("fake_quantize_ste_errors_tests",),
    ),
    Mistake(
        "fq_accepts_float_bits",
        "fake_quantize_ste_answer",
        _fq(
            check="    if not 2 <= num_bits <= 8 or weight.dim() != 2:\n        raise ValueError('bad')\n"
        ),
        ("fake_quantize_ste_errors_tests",),
    ),
]

# --------------------------------------------------------------------------- exercise 2a
QL_HEAD = (
    "class QuantLinear(nn.Module):\n"
    "    def __init__(self, linear, num_bits, per_channel=True):\n"
    "        super().__init__()\n"
    "        fake_quantize_ste(linear.weight.detach()[:1], num_bits)\n"
    "        self.num_bits, self.per_channel = num_bits, per_channel\n"
    "        self.in_features, self.out_features = linear.in_features, linear.out_features\n"
)
QL_WEIGHT = "        self.weight = nn.Parameter(linear.weight.detach().clone())\n"
QL_BIAS = (
    "        bias = linear.bias\n"
    "        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())\n"
)
QL_FORWARD = (
    "    def forward(self, x):\n"
    "        w = fake_quantize_ste(self.weight, self.num_bits, self.per_channel)\n"
    "        return F.linear(x, w, self.bias)\n"
)


def _ql(weight=QL_WEIGHT, bias=QL_BIAS, forward=QL_FORWARD) -> str:
    return QL_HEAD + weight + bias + "\n" + forward


QL_TESTS = ("quant_linear_tests",)
QL_MISTAKES = [
    Mistake(
        "ql_stub",
        "quant_linear_answer",
        "class QuantLinear(nn.Module):\n    def __init__(self, linear, num_bits, per_channel=True):\n"
        + "    "
        + STUB,
        QL_TESTS,
    ),
    Mistake(
        "ql_quantizes_once",
        "quant_linear_answer",
        _ql(
            weight="        self.weight = nn.Parameter(fake_quantize_ste(linear.weight.detach(), "
            "num_bits, per_channel).clone())\n",
            forward="    def forward(self, x):\n        return F.linear(x, self.weight, self.bias)\n",
        ),
        QL_TESTS,
    ),
    Mistake(
        "ql_shares_weight",
        "quant_linear_answer",
        _ql(weight="        self.weight = linear.weight\n"),
        QL_TESTS,
    ),
    Mistake(
        "ql_shares_bias",
        "quant_linear_answer",
        _ql(bias="        self.bias = linear.bias\n"),
        QL_TESTS,
    ),
    Mistake(
        "ql_drops_bias",
        "quant_linear_answer",
        _ql(forward=QL_FORWARD.replace("F.linear(x, w, self.bias)", "F.linear(x, w)")),
        QL_TESTS,
    ),
    Mistake(
        "ql_weight_as_buffer",
        "quant_linear_answer",
        _ql(weight="        self.register_buffer('weight', linear.weight.detach().clone())\n"),
        QL_TESTS,
    ),
    Mistake(
        "ql_no_num_bits_check_at_construction",
        "quant_linear_answer",
        _ql().replace("        fake_quantize_ste(linear.weight.detach()[:1], num_bits)\n", ""),
        QL_TESTS,
    ),
    Mistake(
        "ql_adds_bias_even_when_none",
        "quant_linear_answer",
        _ql(forward=QL_FORWARD.replace("F.linear(x, w, self.bias)", "x @ w.T + self.bias")),
        QL_TESTS,
    ),
    Mistake(
        "ql_always_per_channel",
        "quant_linear_answer",
        _ql(forward=QL_FORWARD.replace("self.num_bits, self.per_channel)", "self.num_bits)")),
        QL_TESTS,
    ),
]

# --------------------------------------------------------------------------- exercise 2b
QM = "def quantize_model(model, num_bits, per_channel=True):\n"
QM_LOOP = (
    "    def swap(module):\n"
    "        for name, child in list(module.named_children()):\n"
    "            if isinstance(child, nn.Linear):\n"
    "                setattr(module, name, QuantLinear(child, num_bits, per_channel))\n"
    "            else:\n"
    "                swap(child)\n"
    "    swap(model)\n"
    "    return model\n"
)
QM_TESTS = ("quantize_model_tests",)
QM_MISTAKES = [
    Mistake("qm_stub", "quantize_model_answer", QM + STUB, QM_TESTS),
    Mistake("qm_in_place", "quantize_model_answer", QM + QM_LOOP, QM_TESTS),
    Mistake(
        "qm_shallow_copy",
        "quantize_model_answer",
        QM + "    model = copy.copy(model)\n" + QM_LOOP,
        QM_TESTS,
    ),
    Mistake(
        "qm_top_level_only",
        "quantize_model_answer",
        QM + "    model = copy.deepcopy(model)\n"
        "    for name, child in list(model.named_children()):\n"
        "        if isinstance(child, nn.Linear):\n"
        "            setattr(model, name, QuantLinear(child, num_bits, per_channel))\n"
        "    return model\n",
        QM_TESTS,
    ),
    Mistake(
        "qm_ignores_settings",
        "quantize_model_answer",
        QM
        + "    model = copy.deepcopy(model)\n"
        + QM_LOOP.replace("num_bits, per_channel))", "8))"),
        QM_TESTS,
    ),
]

# --------------------------------------------------------------------------- exercise 3
MP = (
    "def multipath_kd_loss(student, teacher, labels, projection=None, temperature=4.0, alpha=0.9,\n"
    "                      hidden_weight=1.0, attention_weight=1.0):\n"
)


def _mp(
    h="    h_s, h_t = student.hidden_states[-1], teacher.hidden_states[-1].detach()\n",
    a="    a_s = student.attentions[-1].mean(dim=1)\n"
    "    a_t = teacher.attentions[-1].detach().mean(dim=1)\n",
    checks=True,
    project="    if projection is not None:\n        h_s = projection(h_s)\n",
    soft="kd_loss(student.logits, teacher.logits, labels, temperature, alpha)",
    hidden="F.mse_loss(h_s, h_t)",
    attention="F.kl_div(a_s.clamp_min(1e-12).log(), a_t, reduction='sum') / (a_s.shape[0] * a_s.shape[1])",
    total="soft + hidden_weight * hidden + attention_weight * attention",
) -> str:
    check_tokens = (
        "    if h_s.shape[:-1] != h_t.shape[:-1] or a_s.shape != a_t.shape:\n"
        "        raise ValueError('tokens')\n"
    )
    check_width = "    if h_s.shape != h_t.shape:\n        raise ValueError('width')\n"
    return (
        MP
        + h
        + a
        + (check_tokens if checks else "")
        + project
        + (check_width if checks else "")
        + f"    soft = {soft}\n    hidden = {hidden}\n    attention = {attention}\n"
        + f"    return {total}\n"
    )


MP_TESTS = ("multipath_kd_loss_tests",)
MP_PROJ = ("multipath_kd_loss_projection_tests",)
MP_MISTAKES = [
    Mistake("mp_stub", "multipath_kd_loss_answer", MP + STUB, MP_TESTS + MP_PROJ),
    Mistake(
        "mp_attention_kl_reversed",
        "multipath_kd_loss_answer",
        _mp(
            attention="F.kl_div(a_t.clamp_min(1e-12).log(), a_s, reduction='sum') / (a_s.shape[0] * a_s.shape[1])"
        ),
        MP_TESTS,
    ),
    Mistake(
        "mp_kl_per_head",
        "multipath_kd_loss_answer",
        _mp(
            a="    a_s, a_t = student.attentions[-1], teacher.attentions[-1].detach()\n",
            checks=False,
            attention="F.kl_div(a_s.clamp_min(1e-12).log(), a_t, reduction='sum') / a_s.shape[:-1].numel()",
        ),
        MP_TESTS,
    ),
    Mistake(
        "mp_kl_mean_over_keys",
        "multipath_kd_loss_answer",
        _mp(attention="F.kl_div(a_s.clamp_min(1e-12).log(), a_t, reduction='mean')"),
        MP_TESTS,
    ),
    Mistake(
        "mp_kl_batchmean",
        "multipath_kd_loss_answer",
        _mp(attention="F.kl_div(a_s.clamp_min(1e-12).log(), a_t, reduction='batchmean')"),
        MP_TESTS,
    ),
    Mistake(
        "mp_mse_sum",
        "multipath_kd_loss_answer",
        _mp(hidden="F.mse_loss(h_s, h_t, reduction='sum')"),
        MP_TESTS,
    ),
    Mistake(
        "mp_first_hidden_state",
        "multipath_kd_loss_answer",
        _mp(h="    h_s, h_t = student.hidden_states[0], teacher.hidden_states[0].detach()\n"),
        MP_TESTS,
    ),
    Mistake(
        "mp_first_block_attention",
        "multipath_kd_loss_answer",
        _mp(
            a="    a_s = student.attentions[0].mean(dim=1)\n"
            "    a_t = teacher.attentions[0].detach().mean(dim=1)\n"
        ),
        MP_TESTS,
    ),
    Mistake(
        "mp_soft_term_without_t_squared",
        "multipath_kd_loss_answer",
        _mp(
            soft="alpha * F.kl_div(F.log_softmax(student.logits / temperature, -1), "
            "F.softmax(teacher.logits.detach() / temperature, -1), reduction='batchmean') "
            "+ (1 - alpha) * F.cross_entropy(student.logits, labels)"
        ),
        MP_TESTS,
    ),
    Mistake(
        "mp_weights_swapped",
        "multipath_kd_loss_answer",
        _mp(total="soft + attention_weight * hidden + hidden_weight * attention"),
        MP_TESTS,
    ),
    Mistake(
        "mp_temperature_not_passed",
        "multipath_kd_loss_answer",
        _mp(soft="kd_loss(student.logits, teacher.logits, labels)"),
        MP_TESTS,
    ),
    Mistake(
        "mp_teacher_not_detached",
        "multipath_kd_loss_answer",
        _mp(
            h="    h_s, h_t = student.hidden_states[-1], teacher.hidden_states[-1]\n",
            a="    a_s = student.attentions[-1].mean(dim=1)\n    a_t = teacher.attentions[-1].mean(dim=1)\n",
        ),
        MP_PROJ,
    ),
    Mistake("mp_projection_ignored", "multipath_kd_loss_answer", _mp(project=""), MP_PROJ),
    Mistake("mp_no_shape_checks", "multipath_kd_loss_answer", _mp(checks=False), MP_PROJ),
]

# --------------------------------------------------------------------------- exercise 4
PF = "def pareto_front(points):\n"
PF_CHECK = (
    "    rows = [tuple(float(v) for v in p) for p in points]\n"
    "    for row in rows:\n"
    "        if len(row) != 3 or any(v != v or abs(v) == float('inf') for v in row):\n"
    "            raise ValueError('bad point')\n"
)


def _pf(
    dominates="all(x <= y for x, y in zip(a[:2], b[:2])) and a[2] >= b[2] and a != b",
    check=PF_CHECK,
    result="[i for i, b in enumerate(rows) if not any(dom(a, b) for a in rows)]",
) -> str:
    return (
        PF
        + (check or "    rows = [tuple(float(v) for v in p) for p in points]\n")
        + f"    def dom(a, b):\n        return {dominates}\n"
        + f"    return {result}\n"
    )


PF_TESTS = ("pareto_front_tests",)
PF_ERR = ("pareto_front_errors_tests",)
PF_MISTAKES = [
    Mistake("pf_stub", "pareto_front_answer", PF + STUB, PF_TESTS + PF_ERR),
    Mistake(
        "pf_strictly_better_in_all",
        "pareto_front_answer",
        _pf(dominates="a[0] < b[0] and a[1] < b[1] and a[2] > b[2]"),
        PF_TESTS,
    ),
    Mistake(
        "pf_no_worse_is_enough",
        "pareto_front_answer",
        _pf(dominates="a[0] <= b[0] and a[1] <= b[1] and a[2] >= b[2] and a is not b"),
        PF_TESTS,
    ),
    Mistake(
        "pf_keeps_first_duplicate_only",
        "pareto_front_answer",
        _pf(
            result="[i for i, b in enumerate(rows) if not any(dom(a, b) for a in rows) and b not in rows[:i]]"
        ),
        PF_TESTS,
    ),
    Mistake(
        "pf_accuracy_minimised",
        "pareto_front_answer",
        _pf(dominates="a[0] <= b[0] and a[1] <= b[1] and a[2] <= b[2] and a != b"),
        PF_TESTS,
    ),
    Mistake(
        "pf_size_maximised",
        "pareto_front_answer",
        _pf(dominates="a[0] >= b[0] and a[1] <= b[1] and a[2] >= b[2] and a != b"),
        PF_TESTS,
    ),
    Mistake(
        "pf_ignores_latency",
        "pareto_front_answer",
        _pf(dominates="a[0] <= b[0] and a[2] >= b[2] and (a[0], a[2]) != (b[0], b[2])"),
        PF_TESTS,
    ),
    Mistake(
        "pf_sorted_by_size",
        "pareto_front_answer",
        _pf(
            result="sorted((i for i, b in enumerate(rows) if not any(dom(a, b) for a in rows)), key=lambda i: rows[i][0])"
        ),
        PF_TESTS,
    ),
    Mistake("pf_no_checks", "pareto_front_answer", _pf(check=""), PF_ERR),
    Mistake(
        "pf_no_nan_check",
        "pareto_front_answer",
        _pf(check=PF_CHECK.replace("any(v != v or abs(v) == float('inf') for v in row)", "False")),
        PF_ERR,
    ),
]

MISTAKES = FQ_MISTAKES + QL_MISTAKES + QM_MISTAKES + MP_MISTAKES + PF_MISTAKES
