"""Wrong answers for the INT8 quantization assignment: every one must fail the named test cell.

Two mistakes the issue lists cannot change any output under its own rules, so no test can (or
should) reject them: clamping to [-127, 127] instead of [-128, 127] (a max-based symmetric scale
never produces a code below -127) and not clamping the affine zero point (once the range contains
0, round(-lo / scale) is always in [0, 2**b - 1]). Not widening the range, where the zero-point
clamp would matter, is rejected below in both variants.
"""

from tests.notebook_harness import Mistake

STUB = "    raise NotImplementedError()\n"

# --------------------------------------------------------------------------- exercise 1
SIM = "def simulate_int8_quantization(tensor):\n"


def _sim(body: str) -> str:
    """Source of a ``simulate_int8_quantization`` answer cell with ``body``."""
    return SIM + body


SIM_TESTS = ("simulate_int8_tests",)
SIMULATE = [
    ("simulate_stub", STUB),
    (
        "simulate_divides_by_128",
        "    scale = tensor.abs().max() / 128\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_floor",
        "    scale = tensor.abs().max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.floor(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_trunc",
        "    scale = tensor.abs().max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.trunc(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_round_half_up",
        "    scale = tensor.abs().max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.floor(tensor / scale + 0.5), -128, 127) * scale\n",
    ),
    (
        "simulate_max_without_abs",
        "    scale = tensor.max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_returns_codes",
        "    scale = tensor.abs().max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127)\n",
    ),
    (
        "simulate_nan_on_zeros",
        "    scale = tensor.abs().max() / 127\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_per_row_scale",
        "    scale = tensor.abs().amax(dim=-1, keepdim=True) / 127\n"
        "    scale = torch.where(scale > 0, scale, torch.ones_like(scale))\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_forces_float32",
        "    tensor = tensor.float()\n"
        "    scale = tensor.abs().max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127) * scale\n",
    ),
    (
        "simulate_modifies_input",
        "    scale = tensor.abs().max() / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    tensor /= scale\n"
        "    return torch.clamp(torch.round(tensor), -128, 127) * scale\n",
    ),
    (
        "simulate_mean_scale",
        "    scale = tensor.abs().mean() * 3 / 127\n"
        "    if scale == 0:\n"
        "        return torch.zeros_like(tensor)\n"
        "    return torch.clamp(torch.round(tensor / scale), -128, 127) * scale\n",
    ),
]

# --------------------------------------------------------------------------- exercise 2a
QPC = "def quantize_per_channel(weight, axis=0):\n"
QPC_HEAD = (
    "    axis = axis % weight.dim()\n"
    "    other = [d for d in range(weight.dim()) if d != axis]\n"
    "    shape = [1] * weight.dim()\n"
    "    shape[axis] = -1\n"
)
QPC_SAFE = "    scale = torch.where(scale > 0, scale, torch.ones_like(scale))\n"
QPC_TESTS = ("quantize_per_channel_tests",)
QUANTIZE_PER_CHANNEL = [
    ("per_channel_stub", STUB),
    (
        "per_channel_global_scale",
        QPC_HEAD
        + "    scale = weight.abs().max().expand(weight.shape[axis]) / 127\n"
        + QPC_SAFE
        + ""
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_reduces_over_axis",
        QPC_HEAD + "    scale = weight.abs().amax(dim=axis) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_divides_by_128",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 128\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_floor",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.floor(weight / scale.view(shape)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_trunc_by_cast",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(weight / scale.view(shape), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_round_half_up",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.floor(weight / scale.view(shape) + 0.5), -128, 127)\n"
        "    return q.to(torch.int8), scale\n",
    ),
    (
        "per_channel_uint8_codes",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.uint8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_float_codes",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_zero_channel_unguarded",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n"
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_keepdim_scale_shape",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other, keepdim=True) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.round(weight / scale), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_ignores_negative_axis",
        "    other = [d for d in range(weight.dim()) if d != axis]\n"
        "    shape = [1] * weight.dim()\n"
        "    shape[axis] = -1\n"
        "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    q = torch.clamp(torch.round(weight / scale.view(shape)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_only_2d_rows",
        "    scale = weight.abs().amax(dim=1 - axis) / 127\n" + QPC_SAFE + ""
        "    view = (-1, 1) if axis == 0 else (1, -1)\n"
        "    q = torch.clamp(torch.round(weight / scale.view(view)), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
    (
        "per_channel_modifies_weight",
        QPC_HEAD + "    scale = weight.abs().amax(dim=other) / 127\n" + QPC_SAFE + ""
        "    weight /= scale.view(shape)\n"
        "    q = torch.clamp(torch.round(weight), -128, 127).to(torch.int8)\n"
        "    return q, scale\n",
    ),
]

# --------------------------------------------------------------------------- exercise 2b
DQPC = "def dequantize_per_channel(q, scale, axis=0):\n"
DQPC_TESTS = ("dequantize_per_channel_tests",)
DEQUANTIZE_PER_CHANNEL = [
    ("dequant_per_channel_stub", STUB),
    ("dequant_per_channel_no_reshape", "    return q.float() * scale\n"),
    ("dequant_per_channel_always_rows", "    return q.float() * scale.view(-1, 1)\n"),
    (
        "dequant_per_channel_divides",
        "    shape = [1] * q.dim()\n    shape[axis] = -1\n    return q.float() / scale.view(shape)\n",
    ),
    (
        "dequant_per_channel_returns_int8",
        "    shape = [1] * q.dim()\n    shape[axis] = -1\n"
        "    return (q.float() * scale.view(shape)).to(torch.int8)\n",
    ),
    (
        "dequant_per_channel_float64",
        "    shape = [1] * q.dim()\n    shape[axis] = -1\n"
        "    return q.double() * scale.double().view(shape)\n",
    ),
]

# --------------------------------------------------------------------------- exercise 3a
QA = "def quantize_affine(x, num_bits=8):\n"
QA_CHECK = (
    "    if not 2 <= num_bits <= 8:\n"
    "        raise ValueError('num_bits')\n"
    "    qmax = 2**num_bits - 1\n"
)
QA_RANGE = (
    "    lo = torch.clamp(x.min(), max=0.0)\n"
    "    hi = torch.clamp(x.max(), min=0.0)\n"
    "    scale = ((hi - lo) / qmax).item() if hi > lo else 1.0\n"
)
QA_ZP = "    zero_point = int(torch.clamp(torch.round(-lo / scale), 0, qmax).item())\n"
QA_Q = "    q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.uint8)\n"
QA_RET = "    return q, scale, zero_point\n"
QA_TESTS = ("quantize_affine_tests",)
QUANTIZE_AFFINE = [
    ("affine_stub", STUB),
    (
        "affine_range_not_widened",
        QA_CHECK + "    lo, hi = x.min(), x.max()\n"
        "    scale = ((hi - lo) / qmax).item() if hi > lo else 1.0\n" + QA_ZP + QA_Q + QA_RET,
    ),
    (
        "affine_range_not_widened_zero_point_unclamped",
        QA_CHECK + "    lo, hi = x.min(), x.max()\n"
        "    scale = ((hi - lo) / qmax).item() if hi > lo else 1.0\n"
        "    zero_point = int(torch.round(-lo / scale).item())\n" + QA_Q + QA_RET,
    ),
    (
        "affine_zero_point_tensor",
        QA_CHECK + QA_RANGE + "    zero_point = torch.clamp(torch.round(-lo / scale), 0, qmax)\n"
        "    q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.uint8)\n"
        + QA_RET,
    ),
    (
        "affine_zero_point_float",
        QA_CHECK
        + QA_RANGE
        + "    zero_point = float(torch.clamp(torch.round(-lo / scale), 0, qmax))\n"
        + QA_Q
        + QA_RET,
    ),
    (
        "affine_scale_tensor",
        QA_CHECK + "    lo = torch.clamp(x.min(), max=0.0)\n"
        "    hi = torch.clamp(x.max(), min=0.0)\n"
        "    scale = (hi - lo) / qmax if hi > lo else torch.tensor(1.0)\n" + QA_ZP + QA_Q + QA_RET,
    ),
    (
        "affine_divides_by_2_pow_bits",
        QA_CHECK + "    lo = torch.clamp(x.min(), max=0.0)\n"
        "    hi = torch.clamp(x.max(), min=0.0)\n"
        "    scale = ((hi - lo) / 2**num_bits).item() if hi > lo else 1.0\n"
        + QA_ZP
        + QA_Q
        + QA_RET,
    ),
    (
        "affine_floor_codes",
        QA_CHECK + QA_RANGE + QA_ZP + ""
        "    q = torch.clamp(torch.floor(x / scale) + zero_point, 0, qmax).to(torch.uint8)\n"
        + QA_RET,
    ),
    (
        "affine_trunc_codes",
        QA_CHECK + QA_RANGE + QA_ZP + ""
        "    q = torch.clamp(torch.trunc(x / scale) + zero_point, 0, qmax).to(torch.uint8)\n"
        + QA_RET,
    ),
    (
        "affine_round_half_up",
        QA_CHECK + QA_RANGE + ""
        "    zero_point = int(torch.clamp(torch.floor(-lo / scale + 0.5), 0, qmax).item())\n"
        "    q = torch.clamp(torch.floor(x / scale + 0.5) + zero_point, 0, qmax).to(torch.uint8)\n"
        + QA_RET,
    ),
    (
        "affine_floor_zero_point",
        QA_CHECK + QA_RANGE + ""
        "    zero_point = int(torch.clamp(torch.floor(-lo / scale), 0, qmax).item())\n"
        + QA_Q
        + QA_RET,
    ),
    (
        "affine_int8_codes",
        QA_CHECK + QA_RANGE + QA_ZP + ""
        "    q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.int8)\n"
        + QA_RET,
    ),
    (
        "affine_codes_not_clamped",
        QA_CHECK + QA_RANGE + QA_ZP + ""
        "    q = (torch.round(x / scale) + zero_point).to(torch.uint8)\n" + QA_RET,
    ),
    (
        "affine_zero_point_sign",
        QA_CHECK + QA_RANGE + ""
        "    zero_point = int(torch.clamp(torch.round(lo / scale), 0, qmax).item())\n"
        + QA_Q
        + QA_RET,
    ),
    (
        "affine_nan_on_zeros",
        QA_CHECK + "    lo = torch.clamp(x.min(), max=0.0)\n"
        "    hi = torch.clamp(x.max(), min=0.0)\n"
        "    scale = ((hi - lo) / qmax).item()\n" + QA_ZP + QA_Q + QA_RET,
    ),
    (
        "affine_no_num_bits_check",
        "    qmax = 2**num_bits - 1\n" + QA_RANGE + QA_ZP + QA_Q + QA_RET,
    ),
    (
        "affine_ignores_num_bits",
        QA_CHECK + "    qmax = 255\n" + QA_RANGE + QA_ZP + QA_Q + QA_RET,
    ),
]

# --------------------------------------------------------------------------- exercise 3b
DQA = "def dequantize_affine(q, scale, zero_point):\n"
DQA_TESTS = ("dequantize_affine_tests",)
DEQUANTIZE_AFFINE = [
    ("dequant_affine_stub", STUB),
    ("dequant_affine_uint8_wraps", "    return (q - zero_point) * scale\n"),
    ("dequant_affine_forgets_zero_point", "    return q.float() * scale\n"),
    ("dequant_affine_adds_zero_point", "    return (q.float() + zero_point) * scale\n"),
    ("dequant_affine_float64", "    return (q.double() - zero_point) * scale\n"),
    ("dequant_affine_divides", "    return (q.float() - zero_point) / scale\n"),
]

# --------------------------------------------------------------------------- exercise 4
PS = "def percentile_scale(x, percentile=99.99):\n"
PS_CHECK = "    if not 0 < percentile <= 100:\n        raise ValueError('percentile')\n"
PS_TESTS = ("percentile_scale_tests",)
PERCENTILE = [
    ("percentile_stub", STUB),
    (
        "percentile_of_x_not_abs",
        PS_CHECK + "    return (torch.quantile(x.flatten(), percentile / 100) / 127).item()\n",
    ),
    (
        "percentile_100_minus_p",
        PS_CHECK
        + "    return (torch.quantile(x.abs().flatten(), (100 - percentile) / 100) / 127).item()\n",
    ),
    (
        "percentile_not_divided_by_100",
        PS_CHECK + "    return (torch.quantile(x.abs().flatten(), percentile) / 127).item()\n",
    ),
    (
        "percentile_forgets_127",
        PS_CHECK + "    return torch.quantile(x.abs().flatten(), percentile / 100).item()\n",
    ),
    (
        "percentile_divides_by_128",
        PS_CHECK
        + "    return (torch.quantile(x.abs().flatten(), percentile / 100) / 128).item()\n",
    ),
    ("percentile_uses_max", PS_CHECK + "    return (x.abs().max() / 127).item()\n"),
    (
        "percentile_nearest_interpolation",
        PS_CHECK
        + "    q = torch.quantile(x.abs().flatten(), percentile / 100, interpolation='nearest')\n"
        "    return (q / 127).item()\n",
    ),
    (
        "percentile_returns_tensor",
        PS_CHECK + "    return torch.quantile(x.abs().flatten(), percentile / 100) / 127\n",
    ),
    (
        "percentile_no_range_check",
        "    return (torch.quantile(x.abs().flatten(), percentile / 100) / 127).item()\n",
    ),
    (
        "percentile_numpy_percentile_lower",
        PS_CHECK + "    import numpy as np\n"
        "    v = np.percentile(x.abs().flatten().numpy(), percentile, method='lower')\n"
        "    return float(v) / 127\n",
    ),
]

# --------------------------------------------------------------------------- exercise 5
IL = "def int8_linear(x, w_q, w_scale, bias=None):\n"
IL_CHECK = (
    "    if x.shape[-1] != w_q.shape[1]:\n"
    "        raise ValueError('in features')\n"
    "    x_scale = x.abs().max() / 127\n"
    "    safe = x_scale if x_scale > 0 else torch.ones_like(x_scale)\n"
)
IL_Q = "    x_q = torch.clamp(torch.round(x / safe), -128, 127).to(torch.int32)\n"
IL_ACC = "    acc = x_q @ w_q.to(torch.int32).T\n"
IL_END = (
    "    y = acc.to(torch.float32) * (x_scale * w_scale)\n"
    "    if bias is not None:\n"
    "        y = y + bias\n"
    "    return y\n"
)
IL_TESTS = ("int8_linear_tests",)
IL_EDGE = ("int8_linear_edge_tests",)
INT8_LINEAR = [
    ("int8_linear_stub", STUB, IL_TESTS + IL_EDGE),
    (
        "int8_linear_accumulates_in_int8",
        IL_CHECK + IL_Q + "    acc = x_q.to(torch.int8) @ w_q.T\n" + IL_END,
        IL_TESTS,
    ),
    (
        "int8_linear_accumulates_in_float16",
        IL_CHECK + IL_Q + "    acc = x_q.half() @ w_q.half().T\n" + IL_END,
        IL_TESTS,
    ),
    (
        "int8_linear_forgets_x_scale",
        IL_CHECK + IL_Q + IL_ACC + ""
        "    y = acc.to(torch.float32) * w_scale\n"
        "    return y if bias is None else y + bias\n",
        IL_TESTS,
    ),
    (
        "int8_linear_forgets_w_scale",
        IL_CHECK + IL_Q + IL_ACC + ""
        "    y = acc.to(torch.float32) * x_scale\n"
        "    return y if bias is None else y + bias\n",
        IL_TESTS,
    ),
    (
        "int8_linear_w_scale_on_wrong_axis",
        IL_CHECK + IL_Q + IL_ACC + ""
        "    y = acc.to(torch.float32) * (x_scale * w_scale).view(-1, 1)\n"
        "    return y if bias is None else y + bias\n",
        IL_TESTS + IL_EDGE,
    ),
    (
        "int8_linear_per_row_x_scale",
        "    if x.shape[-1] != w_q.shape[1]:\n"
        "        raise ValueError('in features')\n"
        "    x_scale = x.abs().amax(dim=-1, keepdim=True) / 127\n"
        "    safe = torch.where(x_scale > 0, x_scale, torch.ones_like(x_scale))\n"
        + IL_Q
        + IL_ACC
        + IL_END,
        IL_TESTS,
    ),
    (
        "int8_linear_floor",
        IL_CHECK
        + "    x_q = torch.clamp(torch.floor(x / safe), -128, 127).to(torch.int32)\n"
        + IL_ACC
        + IL_END,
        IL_TESTS,
    ),
    (
        "int8_linear_trunc_by_cast",
        IL_CHECK + "    x_q = torch.clamp(x / safe, -128, 127).to(torch.int32)\n" + IL_ACC + IL_END,
        IL_TESTS,
    ),
    (
        "int8_linear_x_scale_128",
        "    if x.shape[-1] != w_q.shape[1]:\n"
        "        raise ValueError('in features')\n"
        "    x_scale = x.abs().max() / 128\n"
        "    safe = x_scale if x_scale > 0 else torch.ones_like(x_scale)\n"
        + IL_Q
        + IL_ACC
        + IL_END,
        IL_TESTS,
    ),
    (
        "int8_linear_bias_before_rescale",
        IL_CHECK + IL_Q + IL_ACC + ""
        "    acc = acc.to(torch.float32)\n"
        "    if bias is not None:\n"
        "        acc = acc + bias\n"
        "    return acc * (x_scale * w_scale)\n",
        IL_TESTS + IL_EDGE,
    ),
    (
        "int8_linear_no_transpose",
        IL_CHECK + IL_Q + "    acc = x_q @ w_q.to(torch.int32)\n" + IL_END,
        IL_TESTS + IL_EDGE,
    ),
    (
        "int8_linear_returns_float64",
        IL_CHECK + IL_Q + IL_ACC + ""
        "    y = acc.double() * (x_scale * w_scale).double()\n"
        "    return y if bias is None else y + bias\n",
        IL_TESTS + IL_EDGE,
    ),
    (
        "int8_linear_no_shape_check",
        "    x_scale = x.abs().max() / 127\n"
        "    safe = x_scale if x_scale > 0 else torch.ones_like(x_scale)\n"
        + IL_Q
        + IL_ACC
        + IL_END,
        IL_EDGE,
    ),
    (
        "int8_linear_nan_on_zero_input_float_accumulation",
        "    if x.shape[-1] != w_q.shape[1]:\n"
        "        raise ValueError('in features')\n"
        "    x_scale = x.abs().max() / 127\n"
        "    x_q = torch.clamp(torch.round(x / x_scale), -128, 127)\n"
        "    acc = x_q.double() @ w_q.double().T\n"
        "    y = (acc * (x_scale * w_scale)).float()\n"
        "    return y if bias is None else y + bias\n",
        IL_EDGE,
    ),
    (
        "int8_linear_modifies_x",
        IL_CHECK + "    x /= safe\n"
        "    x_q = torch.clamp(torch.round(x), -128, 127).to(torch.int32)\n" + IL_ACC + IL_END,
        IL_EDGE,
    ),
]

MISTAKES = (
    [Mistake(n, "simulate_int8_answer", _sim(b), SIM_TESTS) for n, b in SIMULATE]
    + [
        Mistake(n, "quantize_per_channel_answer", QPC + b, QPC_TESTS)
        for n, b in QUANTIZE_PER_CHANNEL
    ]
    + [
        Mistake(n, "dequantize_per_channel_answer", DQPC + b, DQPC_TESTS)
        for n, b in DEQUANTIZE_PER_CHANNEL
    ]
    + [Mistake(n, "quantize_affine_answer", QA + b, QA_TESTS) for n, b in QUANTIZE_AFFINE]
    + [Mistake(n, "dequantize_affine_answer", DQA + b, DQA_TESTS) for n, b in DEQUANTIZE_AFFINE]
    + [Mistake(n, "percentile_scale_answer", PS + b, PS_TESTS) for n, b in PERCENTILE]
    + [Mistake(n, "int8_linear_answer", IL + b, fails) for n, b, fails in INT8_LINEAR]
)
