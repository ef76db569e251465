"""A patch-token transformer classifier for 8x8 digit images, with per-layer head masks."""

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from lab_utils.attention import MultiHeadSelfAttention


class Internals(NamedTuple):
    """What :meth:`DigitsTransformer.forward_with_internals` returns.

    ``logits [B, num_classes]``; ``hidden_states``: ``num_layers + 1`` tensors ``[B, T, width]``
    (the embedded tokens, then the output of each block; ``T = num_patches + 1`` with the class
    token first); ``attentions``: ``num_layers`` tensors ``[B, heads_in_layer, T, T]``, each
    block's softmax attention maps (rows sum to 1).
    """

    logits: torch.Tensor
    hidden_states: list[torch.Tensor]
    attentions: list[torch.Tensor]


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln(x))`` then ``x + ffn(ln(x))``, ``[B, T, E]``."""

    def __init__(self, width: int, num_heads: int, ffn_width: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = MultiHeadSelfAttention(width, num_heads)
        self.ln2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, ffn_width), nn.GELU(), nn.Linear(ffn_width, width)
        )

    def forward(
        self,
        x: torch.Tensor,
        head_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, E] -> [B, T, E]``; ``head_mask [num_heads]`` gates this block's heads.

        With ``return_attention=True``: ``(output, attention maps [B, num_heads, T, T])``.
        """
        if not return_attention:
            x = x + self.attn(self.ln1(x), head_mask=head_mask)
            return x + self.ffn(self.ln2(x))
        attended, weights = self.attn(self.ln1(x), head_mask=head_mask, return_attention=True)
        x = x + attended
        return x + self.ffn(self.ln2(x)), weights


class DigitsTransformer(nn.Module):
    """Classifier ``[B, 8, 8] -> [B, 10]`` logits: 2x2 patches become 16 tokens plus a class token."""

    def __init__(
        self,
        width: int = 64,
        num_heads: int = 8,
        num_layers: int = 2,
        ffn_width: int = 128,
        patch: int = 2,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if 8 % patch:
            raise ValueError(f"patch={patch} must divide the 8-pixel image side.")
        self.config = dict(
            width=width,
            num_heads=num_heads,
            num_layers=num_layers,
            ffn_width=ffn_width,
            patch=patch,
            num_classes=num_classes,
        )
        self.patch = patch
        num_tokens = (8 // patch) ** 2
        self.embed = nn.Linear(patch * patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, num_tokens + 1, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, num_heads, ffn_width) for _ in range(num_layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    def heads_per_layer(self) -> list[int]:
        """Current number of heads in each block (differs between blocks after pruning)."""
        return [block.attn.num_heads for block in self.blocks]

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 8, 8]`` (or ``[B, 64]``) -> ``[B, num_patches, patch*patch]``."""
        b = images.shape[0]
        p = self.patch
        x = images.reshape(b, 8 // p, p, 8 // p, p).permute(0, 1, 3, 2, 4)
        return x.reshape(b, -1, p * p)

    def forward(
        self, images: torch.Tensor, head_mask: torch.Tensor | Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``images [B, 8, 8]`` -> logits ``[B, 10]``.

        ``head_mask`` is ``[num_layers, num_heads]`` or a list with one ``[heads_in_layer]`` gate
        vector per block (the list form fits pruned models whose blocks differ in head count).
        """
        x = self._embed_tokens(images, head_mask)
        for i, block in enumerate(self.blocks):
            x = block(x, head_mask=None if head_mask is None else head_mask[i])
        return self.head(self.norm(x[:, 0]))

    def _embed_tokens(
        self, images: torch.Tensor, head_mask: torch.Tensor | Sequence[torch.Tensor] | None
    ) -> torch.Tensor:
        """Check the inputs; ``images [B, 8, 8]`` -> class token and patch tokens ``[B, T, width]``."""
        if images.dim() not in (2, 3) or images[0].numel() != 64:
            raise ValueError(f"Expected images of shape [B, 8, 8], got {list(images.shape)}.")
        if head_mask is not None and len(head_mask) != self.num_layers:
            raise ValueError(
                f"head_mask needs one entry per layer ({self.num_layers}), got {len(head_mask)}."
            )
        tokens = self.embed(self.patchify(images))
        return torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos

    def forward_with_internals(
        self, images: torch.Tensor, head_mask: torch.Tensor | Sequence[torch.Tensor] | None = None
    ) -> Internals:
        """The same computation as ``forward``, also returning every hidden state and attention map.

        ``images [B, 8, 8]`` -> :class:`Internals` ``(logits [B, 10], hidden_states, attentions)``;
        ``logits`` equal ``forward(images, head_mask)``. Use it to distil from inside a model.
        """
        x = self._embed_tokens(images, head_mask)
        hidden_states, attentions = [x], []
        for i, block in enumerate(self.blocks):
            mask = None if head_mask is None else head_mask[i]
            x, weights = block(x, head_mask=mask, return_attention=True)
            hidden_states.append(x)
            attentions.append(weights)
        return Internals(self.head(self.norm(x[:, 0])), hidden_states, attentions)
