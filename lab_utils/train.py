"""Seeding, a training loop with a progress bar, and accuracy evaluation."""

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so a run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def accuracy(
    model: nn.Module, data: DataLoader | tuple[torch.Tensor, torch.Tensor], **kwargs
) -> float:
    """Fraction of correct argmax predictions over a loader or an ``(inputs, labels)`` pair."""
    was_training = model.training
    model.eval()
    batches = [data] if isinstance(data, tuple) else data
    correct = total = 0
    for inputs, labels in batches:
        correct += (model(inputs, **kwargs).argmax(dim=-1) == labels).sum().item()
        total += len(labels)
    model.train(was_training)
    if total == 0:
        raise ValueError("accuracy() got no examples: the loader or tensors are empty.")
    return correct / total


def train(
    model: nn.Module,
    loader: DataLoader,
    epochs: int,
    lr: float = 3e-3,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    weight_decay: float = 0.01,
    progress: bool = True,
    desc: str = "train",
) -> list[float]:
    """Train ``model`` in place with AdamW and a cosine schedule; returns the mean loss per epoch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    history = []
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        total, count = 0.0, 0
        for inputs, labels in loader:
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(labels)
            count += len(labels)
        history.append(total / count)
    model.eval()
    return history
