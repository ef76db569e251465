"""The pretrained digits teacher shipped with the package, verified by its SHA-256."""

import hashlib
import os
import platform
from pathlib import Path

import torch

from lab_utils.digits_model import DigitsTransformer

TEACHER_PATH = Path(__file__).parent / "checkpoints" / "teacher.pt"
TEACHER_SHA256 = "07634fe8e83a400dbe25909db79307f47eec0c1e7753eecacbc74909f5325dff"
# What `build_environment()` returned where the shipped file was trained (make_teacher prints it).
# Retraining gives these exact bytes only in an equal environment: float kernels differ between CPU
# kinds. None: the file predates this record, so no machine is known to reproduce its bytes.
TEACHER_BUILT_ON: dict[str, str] | None = None
RESTORE_HINT = (
    "Restore the shipped file with `git checkout -- lab_utils/checkpoints/teacher.pt` "
    "(or reinstall the course). `make teacher` retrains it, with the same bytes only on the kind "
    "of CPU it was built on (lab_utils.teacher.TEACHER_BUILT_ON)."
)
# Environment variables that change which float kernels PyTorch, oneDNN or MKL pick.
KERNEL_OVERRIDES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def build_environment() -> dict[str, str]:
    """What decides the float kernels of a training run here, as strings.

    The torch build, ATen's CPU capability (``torch.backends.cpu.get_cpu_capability()``), the CPU
    (vendor, family, model) and its vector extensions, which oneDNN and MKL also dispatch on, and
    any environment variable that overrides their choice. Measured: forcing the AVX2 kernels of
    ATen and oneDNN on an AVX-512 machine changes the trained bytes.
    """
    info = _cpuinfo()
    if info:
        cpu = (
            f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} "
            f"model {info.get('model', '?')} ({info.get('model name', '?')})"
        )
        flags = info.get("flags", info.get("Features", "")).split()
        vector = " ".join(
            sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sve", "asimd")))
        )
    else:
        cpu, vector = platform.processor() or platform.machine(), ""
    overrides = " ".join(f"{k}={os.environ[k]}" for k in KERNEL_OVERRIDES if k in os.environ)
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu,
        "vector_extensions": vector,
        "kernel_overrides": overrides,
    }


def load_teacher(path: Path = TEACHER_PATH, verify: bool = True) -> DigitsTransformer:
    """The pretrained ``DigitsTransformer`` in eval mode, after checking the file's hash."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Teacher checkpoint not found at {path}. {RESTORE_HINT}")
    if verify and (digest := sha256_of(path)) != TEACHER_SHA256:
        raise RuntimeError(
            f"Teacher checkpoint {path} has SHA-256 {digest}, expected {TEACHER_SHA256}: "
            f"the file is corrupt, from another version, or retrained on another kind of CPU. "
            f"{RESTORE_HINT}"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = DigitsTransformer(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
