"""Layers that compute in float32 also under bf16 autocast.

Used for the layers whose output is a motion (the VQ-VAE decoder's last
convolution, the motion diffusion model's output projection and filter): the
losses and guidance terms take frame differences of that output, and a
normalised squat's second difference at 60 Hz (about 0.003) is smaller than
bf16's rounding of the value itself (8-bit mantissa: about 0.4 %). The
parameters and state-dict keys are those of the plain layers, so checkpoints
load either way. Measured in docs/PERFORMANCE.md, "Precision".
"""
from __future__ import annotations

import torch
from torch import nn


class _Float32Forward:
    """Runs the layer's forward with autocast off, on a float32 input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())  # type: ignore[misc]


class Float32Conv1d(_Float32Forward, nn.Conv1d):
    """``nn.Conv1d`` computed in float32 under autocast."""


class Float32Linear(_Float32Forward, nn.Linear):
    """``nn.Linear`` computed in float32 under autocast."""
