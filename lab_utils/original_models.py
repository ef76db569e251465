"""The original script's models: a one-block toy transformer and its linear student."""

import torch
from torch import nn


class ToyTransformer(nn.Module):
    """One attention block without residuals or norms: ``[B, T, H] -> [B, T, H]``."""

    def __init__(self, hidden_size: int = 256, num_heads: int = 8) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}."
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.attn = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, hidden_size * 4),
            nn.GELU(),
            nn.Linear(hidden_size * 4, hidden_size),
        )

    @property
    def head_dim(self) -> int:
        """Width of one head: ``hidden_size // num_heads``."""
        return self.hidden_size // self.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention then FFN: ``[B, T, H] -> [B, T, H]``."""
        attn_out, _ = self.attn(x, x, x, need_weights=False)
        return self.ffn(attn_out)


class DistilledStudent(nn.Module):
    """The seed's student, one linear layer and tanh: ``[B, T, H] -> [B, T, H]``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``tanh(W x + b)``: ``[B, T, H] -> [B, T, H]``."""
        return torch.tanh(self.linear(x))
