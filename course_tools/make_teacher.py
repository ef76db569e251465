"""Train the digits teacher deterministically and write ``lab_utils/checkpoints/teacher.pt``.

Run ``python -m course_tools.make_teacher`` (or ``make teacher``). It prints the file's SHA-256 and
the build environment (torch, CPU capability, CPU); after a deliberate rebuild they go into
``lab_utils.teacher.TEACHER_SHA256`` and ``TEACHER_BUILT_ON``. A run repeats bit for bit on one
machine; on another kind of CPU the float kernels differ and so do the bytes (not the recipe).
"""

import argparse
import io
import json
from pathlib import Path

import torch

from lab_utils.data import digits_loaders, full_batch
from lab_utils.digits_model import DigitsTransformer
from lab_utils.teacher import (
    TEACHER_BUILT_ON,
    TEACHER_PATH,
    TEACHER_SHA256,
    build_environment,
    sha256_of,
)
from lab_utils.train import accuracy, set_seed, train

EPOCHS = 40
SEED = 0
_EPYC_ZEN4 = {
    "torch": "2.13.0+cpu",
    "cpu": "AuthenticAMD family 25 model 17 (AMD EPYC)",
    "vector_extensions": (
        "avx avx2 avx512_bf16 avx512_bitalg avx512_vbmi2 avx512_vnni avx512_vpopcntdq avx512bw "
        "avx512cd avx512dq avx512f avx512ifma avx512vbmi avx512vl fma"
    ),
}
# The bytes the full recipe gave in build environments where it was run (what main() prints as
# "built on" and "sha256"), beside the shipped file's own (TEACHER_BUILT_ON, unknown for the file
# shipped now). Where this machine's environment is listed, retraining must give exactly those
# bytes; a recipe change shows up as other bytes. Add a line for each environment you check.
RECORDED_BUILDS: tuple[tuple[dict[str, str], str], ...] = (
    (
        {**_EPYC_ZEN4, "cpu_capability": "AVX512", "kernel_overrides": ""},
        "83447b84ba3ebcdf4f0a1a4119e4961a32a3ed9bafc3d7c5c4b27e7c033573dc",
    ),
    (  # the kernels of an AVX2 CPU, forced: the bytes the issue reported from an AVX2 EPYC
        {
            **_EPYC_ZEN4,
            "cpu_capability": "AVX2",
            "kernel_overrides": "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2",
        },
        "bc892c06c85aa54195b0038c3f95ec8826d7c7cfc60a768ccdc99e6cffc9231b",
    ),
)


def build_teacher(epochs: int = EPOCHS, progress: bool = True) -> DigitsTransformer:
    """Train a fresh ``DigitsTransformer`` on the course's train split, single-threaded and seeded."""
    torch.set_num_threads(1)  # one thread keeps float reductions in a fixed order
    set_seed(SEED)
    model = DigitsTransformer()
    train(
        model, digits_loaders(batch_size=64, seed=SEED)["train"], epochs=epochs, progress=progress
    )
    return model.eval()


def save_teacher(model: DigitsTransformer, path: Path) -> None:
    """Write config and fp32 weights as a ``torch.save`` zip."""
    buffer = io.BytesIO()
    torch.save({"config": model.config, "state_dict": model.state_dict()}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def main() -> None:
    """Build, save and report the teacher."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=TEACHER_PATH)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    model = build_teacher(args.epochs, progress=not args.quiet)
    save_teacher(model, args.out)
    print(f"val accuracy  {accuracy(model, full_batch('val')):.4f}")
    print(f"test accuracy {accuracy(model, full_batch('test')):.4f}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    digest = sha256_of(args.out)
    print(f"sha256 {digest}")
    environment = build_environment()
    print(f"cpu capability {environment['cpu_capability']}")
    print(f"built on {json.dumps(environment)}")
    print(compare_with_shipped(digest, environment, args.epochs))


def recorded_digest(environment: dict[str, str]) -> str | None:
    """The SHA-256 the full recipe gave in ``environment`` (None where it was never recorded)."""
    if environment == TEACHER_BUILT_ON:
        return TEACHER_SHA256
    return next((digest for built, digest in RECORDED_BUILDS if built == environment), None)


def compare_with_shipped(digest: str, environment: dict[str, str], epochs: int) -> str:
    """One line: does this build have the shipped (or the recorded) bytes, and should it?"""
    if digest == TEACHER_SHA256:
        return "same bytes as the shipped checkpoint"
    if epochs != EPOCHS:
        return (
            f"not the full recipe ({epochs} of {EPOCHS} epochs): other bytes than the shipped file"
        )
    expected = recorded_digest(environment)
    if expected == digest:
        return (
            "other bytes than the shipped file (built elsewhere), and the same bytes the recipe "
            "gave before in this environment (RECORDED_BUILDS)"
        )
    if expected is not None:
        return (
            f"NOT the bytes recorded for this environment ({expected[:8]}...): "
            "the recipe or its determinism changed"
        )
    return "other bytes than the shipped file, which was built elsewhere (see TEACHER_BUILT_ON)"


if __name__ == "__main__":
    main()
