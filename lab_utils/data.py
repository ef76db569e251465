"""scikit-learn's bundled 8x8 digits (offline) as fixed, seeded train/validation/test splits."""

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

SPLIT_SEED = 0
NUM_VAL = 180
NUM_TEST = 360


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images ``[N, 8, 8]`` scaled to ``[0, 1]`` and labels ``[N]`` (int64)."""
    # The file scikit-learn's ``load_digits()`` reads, read the same way: importing scikit-learn
    # costs about a second, in every notebook run and every autograde.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ImportError(
            "scikit-learn is not installed: it ships the digits data the course uses."
        )
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as handle:
        data = np.loadtxt(handle, delimiter=",")  # [1797, 65]: 64 pixels, then the label
    images = torch.tensor(data[:, :-1].reshape(-1, 8, 8), dtype=torch.float32) / 16.0
    return images, torch.tensor(data[:, -1].astype(np.int64))


def digits_splits() -> dict[str, TensorDataset]:
    """The course's fixed splits: ``train`` (1257), ``val`` (180), ``test`` (360) images."""
    images, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    test, val, train = (
        order[:NUM_TEST],
        order[NUM_TEST : NUM_TEST + NUM_VAL],
        order[NUM_TEST + NUM_VAL :],
    )
    return {
        name: TensorDataset(images[idx], labels[idx])
        for name, idx in (("train", train), ("val", val), ("test", test))
    }


def digits_transfer_pool(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unlabelled images the teacher never trained on: ``[1257, 8, 8]`` and their source labels ``[1257]``.

    Every image of the ``train`` split was used to train the teacher, and the digits set has no
    image left over, so the pool is made: each training image moved half a pixel in one of the 8
    directions (seeded by ``seed``), as the mean of the image and its copy shifted by one pixel
    (zero-filled). The labels are those of the source images, for measuring only. The existing
    splits are unchanged.
    """
    images, labels = digits_splits()["train"].tensors
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))  # [N, 10, 10], zero border
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    pick = torch.randint(len(steps), (len(images),), generator=torch.Generator().manual_seed(seed))
    shifted = torch.empty_like(images)
    for k, (dy, dx) in enumerate(steps):
        chosen = pick == k
        shifted[chosen] = padded[chosen, 1 + dy : 9 + dy, 1 + dx : 9 + dx]
    return (images + shifted) / 2, labels.clone()


def digits_loaders(batch_size: int = 64, seed: int = 0) -> dict[str, DataLoader]:
    """Loaders over :func:`digits_splits`; only ``train`` shuffles, with a generator seeded by ``seed``."""
    splits = digits_splits()
    return {
        name: DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=name == "train",
            generator=torch.Generator().manual_seed(seed) if name == "train" else None,
        )
        for name, ds in splits.items()
    }


def full_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as tensors: images ``[N, 8, 8]`` and labels ``[N]``."""
    splits = digits_splits()
    if split not in splits:
        raise ValueError(f"Unknown split {split!r}; choose one of {sorted(splits)}.")
    return splits[split].tensors
