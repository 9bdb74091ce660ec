"""Device and numeric precision selection, the same for every script."""
from __future__ import annotations

import contextlib

import torch

from utils.errors import DeviceError, UserError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` picks ``cuda:<local_rank>``."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UserError(f"--device {name}: unknown device; expected one of {', '.join(DEVICES)} or cuda:<index>")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: PyTorch sees no CUDA device on this machine; use --device cpu "
                              "(or auto)")
        if name == "cuda" and local_rank is not None:
            name = f"cuda:{local_rank}"
    return torch.device(name)


def autocast(device: torch.device, precision: str = "fp32"):
    """Context manager running matmuls/convolutions in bf16 when asked; fp32 is a no-op."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: unknown; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
