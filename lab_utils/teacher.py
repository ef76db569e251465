"""The pretrained digits teacher shipped with the package, verified by its SHA-256."""

import hashlib
from pathlib import Path

import torch

from lab_utils.digits_model import DigitsTransformer

TEACHER_PATH = Path(__file__).parent / "checkpoints" / "teacher.pt"
TEACHER_SHA256 = "07634fe8e83a400dbe25909db79307f47eec0c1e7753eecacbc74909f5325dff"
REBUILD_HINT = (
    "Rebuild it with `make teacher` (python -m course_tools.make_teacher) from the repo root."
)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_teacher(path: Path = TEACHER_PATH, verify: bool = True) -> DigitsTransformer:
    """The pretrained ``DigitsTransformer`` in eval mode, after checking the file's hash."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Teacher checkpoint not found at {path}. {REBUILD_HINT}")
    if verify and (digest := sha256_of(path)) != TEACHER_SHA256:
        raise RuntimeError(
            f"Teacher checkpoint {path} has SHA-256 {digest}, expected {TEACHER_SHA256}: "
            f"the file is corrupt or from another version. {REBUILD_HINT}"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = DigitsTransformer(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
