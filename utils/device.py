"""Device and numeric precision selection, the same for every script."""
from __future__ import annotations

import contextlib

import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` picks ``cuda:<local_rank>``."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; expected one of {DEVICES}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but PyTorch sees no CUDA device")
        if name == "cuda" and local_rank is not None:
            name = f"cuda:{local_rank}"
    return torch.device(name)


def autocast(device: torch.device, precision: str = "fp32"):
    """Context manager running matmuls/convolutions in bf16 when asked; fp32 is a no-op."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
