"""Temporal convolutional encoder and decoder of the VQ-VAE (T2M-GPT design).

The encoder shortens time by ``stride_t ** down_t`` (196 frames -> 49 latent
steps with the defaults); the decoder mirrors it with nearest-neighbour
upsampling. Both work channels-first: ``(B, C, T)``.
The decoder's last layer computes in float32 also under bf16 autocast
(:mod:`models.float32_layers`: its output is the motion).
"""
from __future__ import annotations

import torch
from torch import nn

from models.float32_layers import Float32Conv1d
from models.resnet import Resnet1D, make_activation


class Encoder(nn.Module):
    """(B, n_features, T) -> (B, code_dim, T / stride_t**down_t)."""

    def __init__(self, n_features: int, code_dim: int, width: int = 512, down_t: int = 2, stride_t: int = 2,
                 depth: int = 3, dilation_growth_rate: int = 3, activation: str = "relu",
                 norm: str | None = None):
        super().__init__()
        if stride_t < 2 or stride_t % 2:
            raise ValueError(f"stride_t must be an even number >= 2, got {stride_t}")
        layers: list[nn.Module] = [nn.Conv1d(n_features, width, 3, 1, 1), make_activation(activation)]
        for _ in range(down_t):
            layers += [
                nn.Conv1d(width, width, kernel_size=2 * stride_t, stride=stride_t, padding=stride_t // 2),
                Resnet1D(width, depth, dilation_growth_rate, activation=activation, norm=norm),
            ]
        layers.append(nn.Conv1d(width, code_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, code_dim, T') -> (B, n_features, T' * stride_t**down_t)."""

    def __init__(self, n_features: int, code_dim: int, width: int = 512, down_t: int = 2, stride_t: int = 2,
                 depth: int = 3, dilation_growth_rate: int = 3, activation: str = "relu",
                 norm: str | None = None):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, 3, 1, 1), make_activation(activation)]
        for _ in range(down_t):
            layers += [
                Resnet1D(width, depth, dilation_growth_rate, reverse_dilation=True,
                         activation=activation, norm=norm),
                nn.Upsample(scale_factor=stride_t, mode="nearest"),
                nn.Conv1d(width, width, 3, 1, 1),
            ]
        layers += [nn.Conv1d(width, width, 3, 1, 1), make_activation(activation),
                   Float32Conv1d(width, n_features, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
