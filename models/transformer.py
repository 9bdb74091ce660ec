"""A small pre-norm transformer stack shared by the baselines (the diffusion
denoiser of :mod:`models.mdm` and the token prior of :mod:`models.token_prior`).

Attention goes through ``F.scaled_dot_product_attention`` (fused kernels on
CPU and GPU); dropout is applied to the residual branches only, not to the
(B, heads, T, T) attention weights, which on a CPU cost more than the
attention itself.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """Multi-head self-attention. (B, T, D) -> (B, T, D)"""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, ff_size: int, dropout: float = 0.1):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ff_size), nn.GELU(), nn.Linear(ff_size, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), causal))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerStack(nn.Module):
    """``layers`` blocks and a final LayerNorm. (B, T, D) -> (B, T, D)"""

    def __init__(self, dim: int, layers: int, heads: int, ff_size: int, dropout: float = 0.1):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, ff_size, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        for block in self.blocks:
            x = block(x, causal)
        return self.ln(x)
