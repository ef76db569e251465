"""Multi-head self-attention with separate Q/K/V projections and one gate per head."""

import math

import torch
from torch import nn


class MultiHeadSelfAttention(nn.Module):
    """Self-attention ``[B, T, E] -> [B, T, E]`` whose heads can be gated or physically removed.

    The inner width ``num_heads * head_dim`` need not equal ``embed_dim``, so a module with some
    heads removed is still this class.
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int | None = None) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {num_heads}.")
        if head_dim is None:
            if embed_dim % num_heads:
                raise ValueError(
                    f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; pass head_dim."
                )
            head_dim = embed_dim // num_heads
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, inner)
        self.k_proj = nn.Linear(embed_dim, inner)
        self.v_proj = nn.Linear(embed_dim, inner)
        self.out_proj = nn.Linear(inner, embed_dim)

    @classmethod
    def from_multihead_attention(cls, mha: nn.MultiheadAttention) -> "MultiHeadSelfAttention":
        """Copy the weights of a ``batch_first`` ``nn.MultiheadAttention`` (packed ``in_proj``)."""
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None:
            raise ValueError(
                "Only nn.MultiheadAttention with packed in_proj and biases is supported."
            )
        module = cls(mha.embed_dim, mha.num_heads)
        e = mha.embed_dim
        with torch.no_grad():
            for i, proj in enumerate((module.q_proj, module.k_proj, module.v_proj)):
                proj.weight.copy_(mha.in_proj_weight[i * e : (i + 1) * e])
                proj.bias.copy_(mha.in_proj_bias[i * e : (i + 1) * e])
            module.out_proj.weight.copy_(mha.out_proj.weight)
            module.out_proj.bias.copy_(mha.out_proj.bias)
        return module

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, n*d] -> [B, n, T, d]``."""
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        head_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, E]``, optional ``head_mask [num_heads]`` (one gate per head) -> ``[B, T, E]``.

        With ``return_attention=True`` it returns ``(output, weights)``, where ``weights
        [B, num_heads, T, T]`` are the softmax attention maps (each row sums to 1, before any gate).
        """
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"Expected x of shape [B, T, {self.embed_dim}], got {list(x.shape)}.")
        q = self._split_heads(self.q_proj(x))
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        weights = scores.softmax(dim=-1)  # [B, n, T, T]
        context = weights @ v  # [B, n, T, d]
        if head_mask is not None:
            if head_mask.shape != (self.num_heads,):
                raise ValueError(
                    f"head_mask must have one gate per head, shape [{self.num_heads}], "
                    f"got {list(head_mask.shape)}."
                )
            context = context * head_mask.to(context.dtype).view(1, -1, 1, 1)
        b, _, t, _ = context.shape
        out = self.out_proj(context.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))
        return (out, weights) if return_attention else out
