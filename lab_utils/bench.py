"""Size and speed measurements: parameter count, serialized bytes, median latency."""

import io

import torch
from torch import nn
from torch.utils import benchmark


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters in ``model``."""
    return sum(p.numel() for p in model.parameters())


def serialized_size(model: nn.Module) -> int:
    """Bytes taken by ``torch.save(model.state_dict())`` (works for quantized modules too)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def measure_latency(
    model: nn.Module, *inputs: torch.Tensor, threads: int = 1, min_run_time: float = 0.2
) -> float:
    """Median seconds per ``model(*inputs)`` call under ``torch.no_grad``, after a warm-up.

    Uses ``torch.utils.benchmark`` with a fixed thread count so numbers compare across models.
    """
    model.eval()
    with torch.no_grad():
        for _ in range(3):  # warm-up: the first calls pay for allocation and kernel selection
            model(*inputs)
    timer = benchmark.Timer(
        stmt="with torch.no_grad(): model(*inputs)",
        globals={"model": model, "inputs": inputs, "torch": torch},
        num_threads=threads,
    )
    return timer.blocked_autorange(min_run_time=min_run_time).median
