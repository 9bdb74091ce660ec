"""Device and numeric precision selection, the same for every script."""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import torch

from utils.errors import DeviceError, UserError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
"""``--precision`` values; ``auto`` (the default) is resolved by :func:`resolve_precision`."""
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of native bf16 arithmetic on x86 CPUs."""
AUTO_BF16_ENV = "BIGE_AUTO_BF16"
"""Environment switch for ``--precision auto`` on native-bf16 hardware: ``1``
lets it choose bf16, ``0`` keeps fp32; unset follows :data:`BF16_VALIDATED`."""
PRECISION_STAGES = ("vq_training", "vq_evaluation", "surrogate_training", "surrogate_evaluation",
                    "t2m_training", "mdm_training", "generation", "guidance")
"""What a script does when it resolves ``--precision auto``; bf16 is validated
per stage, since what it does to one model's training says nothing of another
model or of the motions a generator writes."""
BF16_VALIDATED: frozenset[str] = frozenset()
"""The stages (of :data:`PRECISION_STAGES`) where bf16 has been shown, on runs
of at least the demo's length, to reach a validation error within 2 % of fp32
(``bench/bench_bf16_quality.py``; ``docs/PERFORMANCE.md``, "Does bf16 train
as well as fp32?"). Empty: the VQ-VAE's training, the only stage measured,
gave over 160 seeds a validation error ratio of 0.992 [0.980, 1.004] (paired
bootstrap) and a test error ratio of 1.000 [0.986, 1.014], but its models
decode motions 1.5 % rougher [-0.9 %, +3.9 %], not within 2 %. Until a
stage is listed, ``auto`` resolves to fp32 there unless ``BIGE_AUTO_BF16=1``."""


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a ``--device`` value: one of :data:`DEVICES` or ``cuda:<index>``."""
    head, sep, index = name.partition(":")
    return name in DEVICES or (head == "cuda" and bool(sep) and index.isdigit())


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` picks ``cuda:<local_rank>``."""
    if not is_device_name(name):
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


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags listed in ``cpuinfo`` (empty if unreadable, e.g. not Linux)."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_support(device: torch.device, cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and a one-line reason.

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (compute
    capability 8.0 and newer). CPU: ``avx512_bf16`` or ``amx_bf16`` in
    ``cpuinfo``; without them PyTorch emulates bf16, several times slower than fp32.
    """
    if device.type == "cuda":
        native = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        name = torch.cuda.get_device_name(device)
        return native, f"{name} {'has' if native else 'lacks'} native bf16"
    if device.type != "cpu":
        return False, f"no bf16 detection for device type {device.type}"
    found = sorted(cpu_flags(cpuinfo) & set(CPU_BF16_FLAGS))
    if found:
        return True, f"CPU lists {', '.join(found)} in {cpuinfo}"
    return False, f"CPU lists neither {' nor '.join(CPU_BF16_FLAGS)} in {cpuinfo} (bf16 would be emulated)"


def resolve_precision(precision: str, device: torch.device, cpuinfo: str | Path = "/proc/cpuinfo",
                      stage: str | None = None) -> tuple[str, str]:
    """``fp32`` or ``bf16`` for ``--precision``, and why.

    ``fp32`` and ``bf16`` stand. ``auto`` picks bf16 only where the device has
    native bf16 *and* bf16 is cleared for use in ``stage`` (one of
    :data:`PRECISION_STAGES`; ``None``: no stage, never cleared): the stage is
    in :data:`BF16_VALIDATED`, or the environment switch ``BIGE_AUTO_BF16=1``
    clears every stage (``0`` keeps fp32 regardless). Everywhere else ``auto``
    is fp32.
    """
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: unknown; expected one of {', '.join(PRECISIONS)}")
    if stage is not None and stage not in PRECISION_STAGES:
        raise ValueError(f"unknown precision stage {stage!r}; expected one of {', '.join(PRECISION_STAGES)}")
    if precision != "auto":
        return precision, f"precision {precision} (as asked)"
    native, why = bf16_support(device, cpuinfo)
    if not native:
        return "fp32", f"precision auto -> fp32: {why}"
    switch = os.environ.get(AUTO_BF16_ENV, "").strip()
    if switch not in ("", "0", "1"):
        raise UserError(f"{AUTO_BF16_ENV}={switch!r}: expected 0 or 1")
    where = f" for {stage}" if stage else ""
    if switch == "1" or (switch == "" and stage in BF16_VALIDATED):
        source = f"{AUTO_BF16_ENV}=1" if switch == "1" else f"bf16 validated within 2 % of fp32{where}"
        return "bf16", f"precision auto -> bf16: {why}; {source}"
    reason = (f"{AUTO_BF16_ENV}=0" if switch == "0" else
              f"bf16 not yet shown to be within 2 % of fp32{where} (set {AUTO_BF16_ENV}=1 to use it)")
    return "fp32", f"precision auto -> fp32: {why}, but {reason}"


def apply_precision(args: argparse.Namespace, device: torch.device, stage: str) -> str:
    """Resolve ``args.precision`` in place for ``stage`` (one of
    :data:`PRECISION_STAGES`; ``auto`` becomes fp32 or bf16, so that
    checkpoints and logs record what ran); returns the line to log."""
    args.precision, note = resolve_precision(args.precision, device, stage=stage)
    return note


def autocast(device: torch.device, precision: str = "fp32"):
    """Context manager running matmuls/convolutions in bf16 when asked; fp32 is a
    no-op; ``auto`` is resolved with :func:`resolve_precision` (not logged)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "auto":
        precision = resolve_precision(precision, device)[0]
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def thread_count(num_threads: int | None, world_size: int = 1, device_type: str = "cpu") -> int | None:
    """The intra-op CPU thread count a ``--num-threads`` value asks for:
    ``num_threads`` when positive; with 0 / None under a multi-process launch
    on the CPU that did not set ``OMP_NUM_THREADS``, the cores shared out over
    the local processes; otherwise ``None`` (leave torch's default)."""
    if num_threads is not None and num_threads < 0:
        raise UserError(f"--num-threads must be >= 0, got {num_threads}")
    if num_threads:
        return int(num_threads)
    if world_size > 1 and device_type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or world_size)
        return max(1, (os.cpu_count() or 1) // local)
    return None


def set_threads(num_threads: int | None, world_size: int = 1, device_type: str = "cpu") -> int:
    """Apply the thread count :func:`thread_count` decides (nothing when it
    decides none) for the rest of the process; returns the previous count.
    Scripts use :func:`torch_threads`; benchmarks, which own their process,
    call this."""
    before = torch.get_num_threads()
    n = thread_count(num_threads, world_size, device_type)
    if n:
        torch.set_num_threads(n)
    return before


@contextlib.contextmanager
def torch_threads(num_threads: int | None, world_size: int = 1, device_type: str = "cpu"):
    """Run the block with the thread count :func:`thread_count` decides, and
    give the previous count back afterwards (the thread setter of every
    entry point)."""
    before = set_threads(num_threads, world_size, device_type)
    try:
        yield
    finally:
        torch.set_num_threads(before)
