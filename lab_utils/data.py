"""scikit-learn's bundled 8x8 digits (offline) as fixed, seeded train/validation/test splits."""

from functools import lru_cache

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

SPLIT_SEED = 0
NUM_VAL = 180
NUM_TEST = 360


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images ``[N, 8, 8]`` scaled to ``[0, 1]`` and labels ``[N]`` (int64)."""
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32) / 16.0
    return images, torch.tensor(bunch.target, dtype=torch.int64)


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
