"""Train the digits teacher deterministically and write ``lab_utils/checkpoints/teacher.pt``.

Run ``python -m course_tools.make_teacher`` (or ``make teacher``); it prints the file's SHA-256,
which goes into ``lab_utils.teacher.TEACHER_SHA256``.
"""

import argparse
import io
from pathlib import Path

import torch

from lab_utils.data import digits_loaders, full_batch
from lab_utils.digits_model import DigitsTransformer
from lab_utils.teacher import TEACHER_PATH, sha256_of
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
    print(f"sha256 {sha256_of(args.out)}")


if __name__ == "__main__":
    main()
