"""Wrong answers for the head-pruning assignment: each must fail the test cells it names."""

from tests.notebook_harness import Mistake

# ---------------------------------------------------------------- Exercise 1: structured_pruning
SP_SIGNATURE = "def structured_pruning(model, keep_heads=4):\n"
SP_CHECK = (
    "    if not 1 <= keep_heads <= model.num_heads:\n"
    "        raise ValueError('keep_heads out of range')\n"
)


def _structured_pruning(body: str, check: str = SP_CHECK) -> str:
    """An answer cell for ``structured_pruning`` with the given body (after the range check)."""
    return SP_SIGNATURE + check + body


SP_CORRECT_BODY = """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    with torch.no_grad():
        for b in range(3):
            model.attn.in_proj_weight[b * E + start : (b + 1) * E] = 0
            model.attn.in_proj_bias[b * E + start : (b + 1) * E] = 0
        model.attn.out_proj.weight[:, start:] = 0
"""

STRUCTURED_PRUNING = [
    Mistake(
        name="sp_blank_stub",
        answer_id="structured_pruning_answer",
        source=SP_SIGNATURE + "    raise NotImplementedError()\n",
        fails=("structured_pruning_tests", "structured_pruning_errors_tests"),
    ),
    Mistake(
        name="sp_original_mask_q_rows_only",  # the original script's answer: rows 0..keep*d of the stacked matrix
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    head_dim = model.hidden_size // model.num_heads
    mask = torch.zeros_like(model.attn.in_proj_weight)
    for i in range(keep_heads):
        mask[i * head_dim : (i + 1) * head_dim, :] = 1.0
    model.attn.in_proj_weight.data *= mask
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_zeroes_removed_heads_in_q_block_only",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    with torch.no_grad():
        model.attn.in_proj_weight[start:E] = 0
        model.attn.in_proj_bias[start:E] = 0
        model.attn.out_proj.weight[:, start:] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_assumes_interleaved_qkv_per_head",  # wrong block offsets
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    d = model.head_dim
    with torch.no_grad():
        for h in range(keep_heads, model.num_heads):
            model.attn.in_proj_weight[3 * h * d : 3 * (h + 1) * d] = 0
            model.attn.in_proj_bias[3 * h * d : 3 * (h + 1) * d] = 0
            model.attn.out_proj.weight[:, h * d : (h + 1) * d] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_block_offset_without_hidden_size",  # wrong block offsets: b*num_heads*... typo
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, d = model.hidden_size, model.head_dim
    start = keep_heads * d
    with torch.no_grad():
        for b in range(3):
            model.attn.in_proj_weight[b * start + start : b * start + E] = 0
            model.attn.in_proj_bias[b * start + start : b * start + E] = 0
        model.attn.out_proj.weight[:, start:] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_forgets_in_proj_bias",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    with torch.no_grad():
        for b in range(3):
            model.attn.in_proj_weight[b * E + start : (b + 1) * E] = 0
        model.attn.out_proj.weight[:, start:] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_forgets_out_proj",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    with torch.no_grad():
        for b in range(3):
            model.attn.in_proj_weight[b * E + start : (b + 1) * E] = 0
            model.attn.in_proj_bias[b * E + start : (b + 1) * E] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_zeroes_out_proj_rows_instead_of_columns",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    with torch.no_grad():
        for b in range(3):
            model.attn.in_proj_weight[b * E + start : (b + 1) * E] = 0
            model.attn.in_proj_bias[b * E + start : (b + 1) * E] = 0
        model.attn.out_proj.weight[start:] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_zeroes_in_proj_columns_instead_of_rows",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    with torch.no_grad():
        for b in range(3):
            model.attn.in_proj_weight[:, start:] = 0
            model.attn.in_proj_bias[b * E + start : (b + 1) * E] = 0
        model.attn.out_proj.weight[:, start:] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_zeroes_out_proj_bias",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            SP_CORRECT_BODY
            + "    with torch.no_grad():\n        model.attn.out_proj.bias.zero_()\n"
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        # in-place edits of a leaf that requires grad raise, so switch it off instead of no_grad()
        name="sp_turns_off_requires_grad_to_edit_in_place",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            """\
    E, start = model.hidden_size, keep_heads * model.head_dim
    attn = model.attn
    for p in (attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight):
        p.requires_grad_(False)
    for b in range(3):
        attn.in_proj_weight[b * E + start : (b + 1) * E] = 0
        attn.in_proj_bias[b * E + start : (b + 1) * E] = 0
    attn.out_proj.weight[:, start:] = 0
"""
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_returns_pruned_copy_instead_of_in_place",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            "    original = model\n"
            "    model = copy.deepcopy(original)\n" + SP_CORRECT_BODY + "    return model\n"
        ),
        fails=("structured_pruning_tests",),
    ),
    Mistake(
        name="sp_missing_value_error",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(SP_CORRECT_BODY, check=""),
        fails=("structured_pruning_errors_tests",),
    ),
    Mistake(
        name="sp_value_error_when_keeping_every_head",
        answer_id="structured_pruning_answer",
        source=_structured_pruning(
            SP_CORRECT_BODY,
            check="    if not 1 <= keep_heads < model.num_heads:\n        raise ValueError('bad')\n",
        ),
        fails=("structured_pruning_errors_tests",),
    ),
]

# ------------------------------------------------------------------ Exercise 2: head_importance
HI_SIGNATURE = "def head_importance(model, inputs, labels):\n"


def _head_importance(body: str) -> str:
    """An answer cell for ``head_importance`` with the given body."""
    return HI_SIGNATURE + body


HI_GATES = """\
    dtype = next(model.parameters()).dtype
    gates = torch.ones(model.num_layers, model.heads_per_layer()[0], dtype=dtype, requires_grad=True)
"""

HEAD_IMPORTANCE = [
    Mistake(
        name="hi_blank_stub",
        answer_id="head_importance_answer",
        source=HI_SIGNATURE + "    raise NotImplementedError()\n",
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_signed_gradient",
        answer_id="head_importance_answer",
        source=_head_importance(
            HI_GATES
            + """\
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    return torch.autograd.grad(loss, gates)[0]
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_summed_loss",
        answer_id="head_importance_answer",
        source=_head_importance(
            HI_GATES
            + """\
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels, reduction="sum")
    return torch.autograd.grad(loss, gates)[0].abs()
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_gradient_of_weights_not_gates",
        answer_id="head_importance_answer",
        source=_head_importance(
            """\
    model.zero_grad()
    F.cross_entropy(model(inputs), labels).backward()
    scores = []
    for block in model.blocks:
        a = block.attn
        g = a.v_proj.weight.grad.view(a.num_heads, a.head_dim, -1)
        scores.append(g.abs().sum(dim=(1, 2)))
    model.zero_grad()
    return torch.stack(scores)
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_gates_at_zero",
        answer_id="head_importance_answer",
        source=_head_importance(
            """\
    gates = torch.zeros(model.num_layers, model.heads_per_layer()[0], requires_grad=True)
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    return torch.autograd.grad(loss, gates)[0].abs()
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_ablation_loss_change_instead_of_gradient",
        answer_id="head_importance_answer",
        source=_head_importance(
            """\
    L, H = model.num_layers, model.heads_per_layer()[0]
    scores = torch.zeros(L, H)
    with torch.no_grad():
        base = F.cross_entropy(model(inputs), labels)
        for layer in range(L):
            for head in range(H):
                gates = torch.ones(L, H)
                gates[layer, head] = 0
                scores[layer, head] = (F.cross_entropy(model(inputs, head_mask=gates), labels) - base).abs()
    return scores
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_normalised_per_layer",
        answer_id="head_importance_answer",
        source=_head_importance(
            HI_GATES
            + """\
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    scores = torch.autograd.grad(loss, gates)[0].abs()
    return scores / scores.norm(dim=1, keepdim=True)
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_transposed_shape",
        answer_id="head_importance_answer",
        source=_head_importance(
            HI_GATES
            + """\
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    return torch.autograd.grad(loss, gates)[0].abs().T
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_freezes_the_model",
        answer_id="head_importance_answer",
        source=_head_importance(
            "    model.requires_grad_(False)\n"
            + HI_GATES
            + """\
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    return torch.autograd.grad(loss, gates)[0].abs()
"""
        ),
        fails=("head_importance_tests",),
    ),
    Mistake(
        name="hi_returns_tensor_attached_to_graph",
        answer_id="head_importance_answer",
        source=_head_importance(
            HI_GATES
            + """\
    loss = F.cross_entropy(model(inputs, head_mask=gates), labels)
    return torch.autograd.grad(loss, gates, create_graph=True)[0].abs()
"""
        ),
        fails=("head_importance_tests",),
    ),
]

# ---------------------------------------------------------------------- Exercise 3: prune_heads
PH_SIGNATURE = "def prune_heads(attn, heads):\n"
PH_CHECKS = """\
    n, d = attn.num_heads, attn.head_dim
    if any(not 0 <= h < n for h in heads) or len(set(heads)) != len(heads) or len(heads) == n:
        raise ValueError("bad heads")
"""
PH_ROWS = """\
    keep = [h for h in range(n) if h not in heads]
    rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    new = MultiHeadSelfAttention(attn.embed_dim, len(keep), d)
"""


def _prune_heads(body: str, checks: str = PH_CHECKS, rows: str = PH_ROWS) -> str:
    """An answer cell for ``prune_heads``: checks, kept rows, then ``body`` (which returns)."""
    return PH_SIGNATURE + checks + rows + body


PH_COPY = """\
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[rows])
            getattr(new, name).bias.copy_(getattr(attn, name).bias[rows])
        new.out_proj.weight.copy_(attn.out_proj.weight[:, rows])
        new.out_proj.bias.copy_(attn.out_proj.bias)
    return new
"""

PRUNE_HEADS = [
    Mistake(
        name="ph_blank_stub",
        answer_id="prune_heads_answer",
        source=PH_SIGNATURE + "    raise NotImplementedError()\n",
        fails=("prune_heads_tests", "prune_heads_errors_tests"),
    ),
    Mistake(
        name="ph_slices_qkv_columns_instead_of_rows",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    new.q_proj = nn.Linear(len(rows), len(rows))
    new.k_proj = nn.Linear(len(rows), len(rows))
    new.v_proj = nn.Linear(len(rows), len(rows))
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[:, rows][: len(rows)])
            getattr(new, name).bias.copy_(getattr(attn, name).bias[rows])
        new.out_proj.weight.copy_(attn.out_proj.weight[:, rows])
        new.out_proj.bias.copy_(attn.out_proj.bias)
    return new
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_forgets_qkv_biases",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[rows])
        new.out_proj.weight.copy_(attn.out_proj.weight[:, rows])
        new.out_proj.bias.copy_(attn.out_proj.bias)
    return new
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_forgets_out_proj",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[rows])
            getattr(new, name).bias.copy_(getattr(attn, name).bias[rows])
    return new
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_forgets_out_proj_bias",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[rows])
            getattr(new, name).bias.copy_(getattr(attn, name).bias[rows])
        new.out_proj.weight.copy_(attn.out_proj.weight[:, rows])
    return new
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_slices_out_proj_rows_instead_of_columns",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    new.out_proj = nn.Linear(attn.embed_dim, len(rows))
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[rows])
            getattr(new, name).bias.copy_(getattr(attn, name).bias[rows])
        new.out_proj.weight.copy_(attn.out_proj.weight[rows])
        new.out_proj.bias.copy_(attn.out_proj.bias[rows])
    return new
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_keeps_the_listed_heads_instead_of_removing_them",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            PH_COPY,
            rows="""\
    keep = sorted(heads)
    rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    new = MultiHeadSelfAttention(attn.embed_dim, len(keep), d)
""",
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_wrong_rows_h_instead_of_h_times_head_dim",  # wrong block offsets
        answer_id="prune_heads_answer",
        source=_prune_heads(
            PH_COPY,
            rows="""\
    keep = [h for h in range(n) if h not in heads]
    rows = torch.cat([torch.arange(h, h + d) for h in keep])
    new = MultiHeadSelfAttention(attn.embed_dim, len(keep), d)
""",
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_head_dim_from_embed_dim",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            PH_COPY,
            rows="""\
    d = attn.embed_dim // n
    keep = [h for h in range(n) if h not in heads]
    rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    new = MultiHeadSelfAttention(attn.embed_dim, len(keep), d)
""",
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_mutates_input_module",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    for name in ("q_proj", "k_proj", "v_proj"):
        old = getattr(attn, name)
        lin = nn.Linear(attn.embed_dim, len(rows))
        with torch.no_grad():
            lin.weight.copy_(old.weight[rows])
            lin.bias.copy_(old.bias[rows])
        setattr(attn, name, lin)
    out = nn.Linear(len(rows), attn.embed_dim)
    with torch.no_grad():
        out.weight.copy_(attn.out_proj.weight[:, rows])
        out.bias.copy_(attn.out_proj.bias)
    attn.out_proj = out
    attn.num_heads = len(keep)
    return attn
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_shares_out_proj_bias_with_input",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            """\
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(new, name).weight.copy_(getattr(attn, name).weight[rows])
            getattr(new, name).bias.copy_(getattr(attn, name).bias[rows])
        new.out_proj.weight.copy_(attn.out_proj.weight[:, rows])
    new.out_proj.bias = attn.out_proj.bias
    return new
"""
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_sorts_callers_list_in_place",
        answer_id="prune_heads_answer",
        source=PH_SIGNATURE + "    heads.sort()\n" + PH_CHECKS + PH_ROWS + PH_COPY,
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_rejects_an_empty_list_of_heads",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            PH_COPY, checks=PH_CHECKS + "    if not heads:\n        raise ValueError('no heads')\n"
        ),
        fails=("prune_heads_tests",),
    ),
    Mistake(
        name="ph_missing_value_errors",
        answer_id="prune_heads_answer",
        source=_prune_heads(PH_COPY, checks="    n, d = attn.num_heads, attn.head_dim\n"),
        fails=("prune_heads_errors_tests",),
    ),
    Mistake(
        name="ph_accepts_negative_head",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            PH_COPY,
            checks="""\
    n, d = attn.num_heads, attn.head_dim
    if any(h >= n for h in heads) or len(set(heads)) != len(heads) or len(heads) == n:
        raise ValueError("bad heads")
    heads = [h % n for h in heads]
""",
        ),
        fails=("prune_heads_errors_tests",),
    ),
    Mistake(
        name="ph_accepts_repeated_head",
        answer_id="prune_heads_answer",
        source=_prune_heads(
            PH_COPY,
            checks="""\
    n, d = attn.num_heads, attn.head_dim
    if any(not 0 <= h < n for h in heads) or len(set(heads)) == n:
        raise ValueError("bad heads")
""",
        ),
        fails=("prune_heads_errors_tests",),
    ),
]

# --------------------------------------------------------------------- Exercise 4: prune_model
PM_SIGNATURE = "def prune_model(model, importance, num_heads_to_prune):\n"
PM_CHECK = """\
    heads = model.heads_per_layer()
    if not 0 <= num_heads_to_prune <= sum(h - 1 for h in heads):
        raise ValueError("cannot remove that many heads")
"""
PM_APPLY = """\
    pruned = copy.deepcopy(model)
    for block, removed in zip(pruned.blocks, to_remove):
        if removed:
            block.attn = prune_heads(block.attn, removed)
    return pruned
"""


def _prune_model(select: str, check: str = PM_CHECK, apply: str = PM_APPLY) -> str:
    """An answer cell for ``prune_model``: checks, ``select`` fills ``to_remove``, then apply."""
    return PM_SIGNATURE + check + select + apply


PM_GLOBAL_SELECT = """\
    heads = model.heads_per_layer()
    remaining = list(heads)
    to_remove = [[] for _ in heads]
    H = importance.shape[1]
    for flat in importance.flatten().argsort().tolist():
        if sum(len(r) for r in to_remove) == num_heads_to_prune:
            break
        layer, head = divmod(flat, H)
        if remaining[layer] > 1:
            to_remove[layer].append(head)
            remaining[layer] -= 1
"""

PRUNE_MODEL = [
    Mistake(
        name="pm_blank_stub",
        answer_id="prune_model_answer",
        source=PM_SIGNATURE + "    raise NotImplementedError()\n",
        fails=("prune_model_tests", "prune_model_errors_tests"),
    ),
    Mistake(
        name="pm_per_layer_ranking",
        answer_id="prune_model_answer",
        source=_prune_model(
            """\
    L = model.num_layers
    to_remove = []
    for layer in range(L):
        count = num_heads_to_prune // L + (1 if layer < num_heads_to_prune % L else 0)
        count = min(count, model.heads_per_layer()[layer] - 1)
        to_remove.append(importance[layer].argsort()[:count].tolist())
"""
        ),
        fails=("prune_model_tests",),
    ),
    Mistake(
        name="pm_can_empty_a_layer",
        answer_id="prune_model_answer",
        source=_prune_model(
            """\
    H = importance.shape[1]
    to_remove = [[] for _ in range(model.num_layers)]
    for flat in importance.flatten().argsort()[:num_heads_to_prune].tolist():
        layer, head = divmod(flat, H)
        to_remove[layer].append(head)
"""
        ),
        fails=("prune_model_tests",),
    ),
    Mistake(
        name="pm_removes_most_important_first",
        answer_id="prune_model_answer",
        source=_prune_model(PM_GLOBAL_SELECT.replace("argsort()", "argsort(descending=True)")),
        fails=("prune_model_tests",),
    ),
    Mistake(
        name="pm_stops_at_a_one_head_layer_instead_of_skipping_it",
        answer_id="prune_model_answer",
        source=_prune_model(
            PM_GLOBAL_SELECT.replace(
                "        if remaining[layer] > 1:\n",
                "        if remaining[layer] == 1:\n            break\n        if True:\n",
            )
        ),
        fails=("prune_model_tests",),
    ),
    Mistake(
        name="pm_mutates_input_model",
        answer_id="prune_model_answer",
        source=_prune_model(
            PM_GLOBAL_SELECT,
            apply="""\
    for block, removed in zip(model.blocks, to_remove):
        if removed:
            block.attn = prune_heads(block.attn, removed)
    return model
""",
        ),
        fails=("prune_model_tests",),
    ),
    Mistake(
        name="pm_removes_heads_one_by_one_with_shifted_indices",
        answer_id="prune_model_answer",
        source=_prune_model(
            """\
    heads = model.heads_per_layer()
    remaining = list(heads)
    order = []
    H = importance.shape[1]
    for flat in importance.flatten().argsort().tolist():
        if len(order) == num_heads_to_prune:
            break
        layer, head = divmod(flat, H)
        if remaining[layer] > 1:
            order.append((layer, head))
            remaining[layer] -= 1
""",
            apply="""\
    pruned = copy.deepcopy(model)
    for layer, head in order:
        pruned.blocks[layer].attn = prune_heads(pruned.blocks[layer].attn, [head])
    return pruned
""",
        ),
        fails=("prune_model_tests",),
    ),
    Mistake(
        name="pm_missing_value_error",
        answer_id="prune_model_answer",
        source=_prune_model(PM_GLOBAL_SELECT, check=""),
        fails=("prune_model_errors_tests",),
    ),
    Mistake(
        name="pm_value_error_one_too_early",
        answer_id="prune_model_answer",
        source=_prune_model(
            PM_GLOBAL_SELECT,
            check="""\
    heads = model.heads_per_layer()
    if not 0 <= num_heads_to_prune < sum(h - 1 for h in heads):
        raise ValueError("cannot remove that many heads")
""",
        ),
        fails=("prune_model_errors_tests",),
    ),
]

# ---------------------------------------------------------------- Exercise 5: magnitude_prune
MP_SIGNATURE = "def magnitude_prune(model, sparsity):\n"
MP_CHECK = """\
    if not 0.0 <= sparsity < 1.0:
        raise ValueError("sparsity must be in [0, 1)")
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    if not weights:
        raise ValueError("no nn.Linear")
"""
MP_ACHIEVED = """\
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
"""
MP_GLOBAL = """\
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    mask = torch.ones_like(magnitudes)
    mask[magnitudes.argsort()[: round(sparsity * len(magnitudes))]] = 0
    with torch.no_grad():
        for w, keep in zip(weights, mask.split([w.numel() for w in weights])):
            w.mul_(keep.view_as(w))
"""


def _magnitude_prune(body: str, check: str = MP_CHECK, tail: str = MP_ACHIEVED) -> str:
    """An answer cell for ``magnitude_prune``: checks, then ``body``, then the return line."""
    return MP_SIGNATURE + check + body + tail


MAGNITUDE_PRUNE = [
    Mistake(
        name="mp_blank_stub",
        answer_id="magnitude_prune_answer",
        source=MP_SIGNATURE + "    raise NotImplementedError()\n",
        fails=("magnitude_prune_tests", "magnitude_prune_errors_tests"),
    ),
    Mistake(
        name="mp_per_layer_sparsity",  # each layer pruned to the same sparsity: not global
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            """\
    with torch.no_grad():
        for w in weights:
            k = round(sparsity * w.numel())
            w.view(-1)[w.detach().abs().flatten().argsort()[:k]] = 0
"""
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_signed_value_not_magnitude",  # zeroes the most negative weights
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL.replace("w.detach().abs().flatten()", "w.detach().flatten()")
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_keeps_smallest_prunes_largest",
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(MP_GLOBAL.replace("argsort()", "argsort(descending=True)")),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_also_prunes_biases",
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL,
            check=MP_CHECK.replace(
                "weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]",
                "weights = [p for m in model.modules() if isinstance(m, nn.Linear) "
                "for p in m.parameters()]",
            ),
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_every_parameter_named_weight",  # layer norms too
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL,
            check=MP_CHECK.replace(
                "weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]",
                "weights = [p for n, p in model.named_parameters() if n.endswith('weight')]",
            ),
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_top_level_children_only",  # misses the Linear layers nested in blocks
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL,
            check=MP_CHECK.replace("model.modules()", "model.children()"),
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_returns_requested_sparsity",
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(MP_GLOBAL, tail="    return float(sparsity)\n"),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_returns_a_tensor",
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL,
            tail="    return torch.cat([(w == 0).flatten() for w in weights]).float().mean()\n",
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_threshold_zeroes_every_tie",  # |w| <= k-th smallest: more than k zeros on ties
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            """\
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    k = round(sparsity * len(magnitudes))
    if k > 0:
        threshold = magnitudes.kthvalue(k).values
        with torch.no_grad():
            for w in weights:
                w[w.abs() <= threshold] = 0
"""
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_replaces_the_parameters",  # new Parameter objects: an optimiser holding the old ones is lost
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            """\
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    mask = torch.ones_like(magnitudes)
    mask[magnitudes.argsort()[: round(sparsity * len(magnitudes))]] = 0
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m, keep in zip(linears, mask.split([w.numel() for w in weights])):
        m.weight = nn.Parameter(m.weight.detach() * keep.view_as(m.weight))
    weights = [m.weight for m in linears]
"""
        ),
        fails=("magnitude_prune_tests",),
    ),
    Mistake(
        name="mp_missing_value_error",
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL,
            check="    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]\n",
        ),
        fails=("magnitude_prune_errors_tests",),
    ),
    Mistake(
        name="mp_accepts_sparsity_one",
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL, check=MP_CHECK.replace("sparsity < 1.0", "sparsity <= 1.0")
        ),
        fails=("magnitude_prune_errors_tests",),
    ),
    Mistake(
        name="mp_refuses_sparsity_zero_and_below_one_bound",  # 0 < sparsity < 1: sparsity 0 is valid
        answer_id="magnitude_prune_answer",
        source=_magnitude_prune(
            MP_GLOBAL, check=MP_CHECK.replace("0.0 <= sparsity", "0.0 < sparsity")
        ),
        fails=("magnitude_prune_tests",),
    ),
]

MISTAKES = STRUCTURED_PRUNING + HEAD_IMPORTANCE + PRUNE_HEADS + PRUNE_MODEL + MAGNITUDE_PRUNE
