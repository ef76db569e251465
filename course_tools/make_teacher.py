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


def compare_with_shipped(digest: str, environment: dict[str, str], epochs: int) -> str:
    """One line: does this build have the shipped bytes, and should it?"""
    if digest == TEACHER_SHA256:
        return "same bytes as the shipped checkpoint"
    if epochs != EPOCHS:
        return (
            f"not the full recipe ({epochs} of {EPOCHS} epochs): other bytes than the shipped file"
        )
    if environment == TEACHER_BUILT_ON:
        return (
            "NOT the shipped bytes, on the kind of machine the shipped file was built on: "
            "the recipe or its determinism changed"
        )
    return "other bytes than the shipped file, which was built elsewhere (see TEACHER_BUILT_ON)"


if __name__ == "__main__":
    main()
