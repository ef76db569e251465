"""Size, memory and speed measurements: parameters, serialized bytes, peak memory, latency."""

import io
import weakref

import torch
from torch import nn
from torch.utils import benchmark
from torch.utils._python_dispatch import TorchDispatchMode


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


class _LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of the tensors created inside the mode that are alive, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[int, int] = {}  # storage address -> live tensors using it
        self.sizes: dict[int, int] = {}  # storage address -> bytes
        self.live = self.peak = 0

    def _release(self, key: int) -> None:
        self.users[key] -= 1
        if not self.users[key]:
            del self.users[key]
            self.live -= self.sizes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if not key:
                continue
            if key not in self.users:  # a new allocation (views share their base's storage)
                self.users[key], self.sizes[key] = 0, storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self.users[key] += 1
            weakref.finalize(tensor, self._release, key)
        return out


def peak_forward_memory(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Peak bytes of the tensors one ``model(*inputs)`` call allocates, under ``torch.no_grad``.

    Every tensor an operation creates during the call is counted while it is alive (views of one
    storage once), so the figure is the activation memory of the forward pass; the weights and the
    inputs, which exist before the call, are not included.
    """
    model.eval()
    with torch.no_grad(), _LiveTensorBytes() as counter:
        model(*inputs)
    return counter.peak
