"""Dilated residual stack of 1-D convolutions (the body of the VQ-VAE encoder
and decoder).

Tensors are channels-first, ``(B, C, T)``. A block keeps both ``C`` and ``T``.
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = ("relu", "silu", "gelu")
NORMS = ("none", "LN", "GN", "BN")


def make_activation(name: str) -> nn.Module:
    """``relu`` | ``silu`` | ``gelu`` as a module."""
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, T)`` tensor."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def make_norm(name: str | None, channels: int) -> nn.Module:
    """``none`` (identity) | ``LN`` (layer norm over channels) | ``GN`` (32 groups) | ``BN``."""
    if name in (None, "none", "None", ""):
        return nn.Identity()
    if name == "LN":
        return ChannelLayerNorm(channels)
    if name == "GN":
        groups = 32 if channels % 32 == 0 else 1
        return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
    if name == "BN":
        return nn.BatchNorm1d(channels)
    raise ValueError(f"unknown norm {name!r}; expected one of {NORMS}")


class ResConv1DBlock(nn.Module):
    """``x + conv1x1(act(norm(conv3_dilated(act(norm(x))))))``; (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, dilation: int = 1, activation: str = "relu", norm: str | None = None):
        super().__init__()
        self.norm1 = make_norm(norm, channels)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.norm2 = make_norm(norm, channels)
        self.act2 = make_activation(activation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        h = self.conv2(self.act2(self.norm2(h)))
        return x + h


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations ``growth**0 .. growth**(depth-1)``
    (reversed, largest first, when ``reverse_dilation``, as in the decoder).
    (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, depth: int, dilation_growth_rate: int = 3,
                 reverse_dilation: bool = False, activation: str = "relu", norm: str | None = None):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        dilations = [dilation_growth_rate ** d for d in range(depth)]
        if reverse_dilation:
            dilations = dilations[::-1]
        self.dilations = tuple(dilations)
        self.model = nn.Sequential(*[ResConv1DBlock(channels, d, activation, norm) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
