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
