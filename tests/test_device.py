"""utils/device.py: bf16 detection from /proc/cpuinfo and what --precision auto resolves to."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest
import torch

from utils import device as D

CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu sse2 {flags}\n")
    return path


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    assert D.cpu_flags(_cpuinfo(tmp_path, "avx2 avx512f")) == {"fpu", "sse2", "avx2", "avx512f"}
    assert D.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("flags,native", [("avx2", False), ("avx512f avx512_vnni", False),
                                          ("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True)])
def test_native_bf16_needs_avx512_bf16_or_amx_bf16(tmp_path, flags, native) -> None:
    found, why = D.bf16_support(CPU, _cpuinfo(tmp_path, flags))
    assert found is native
    assert ("emulated" in why) is not native


def test_explicit_precisions_stand(tmp_path) -> None:
    info = _cpuinfo(tmp_path, "avx2")
    assert D.resolve_precision("fp32", CPU, info)[0] == "fp32"
    assert D.resolve_precision("bf16", CPU, info)[0] == "bf16"
    with pytest.raises(ValueError, match="--precision fp16: unknown"):
        D.resolve_precision("fp16", CPU, info)


def test_auto_is_fp32_without_native_bf16_whatever_the_switch(tmp_path, monkeypatch) -> None:
    info = _cpuinfo(tmp_path, "avx2 avx512f")
    for switch in ("", "0", "1"):
        monkeypatch.setenv(D.AUTO_BF16_ENV, switch)
        precision, note = D.resolve_precision("auto", CPU, info)
        assert precision == "fp32" and note.startswith("precision auto -> fp32") and "neither" in note


def test_auto_on_native_bf16_follows_validation_and_the_switch(tmp_path, monkeypatch) -> None:
    info = _cpuinfo(tmp_path, "avx512f avx512_bf16")
    monkeypatch.delenv(D.AUTO_BF16_ENV, raising=False)
    monkeypatch.setattr(D, "BF16_VALIDATED", frozenset())
    precision, note = D.resolve_precision("auto", CPU, info, stage="vq_training")
    assert precision == "fp32" and "not yet shown to be within 2 % of fp32 for vq_training" in note
    monkeypatch.setenv(D.AUTO_BF16_ENV, "1")
    assert D.resolve_precision("auto", CPU, info, stage="guidance")[0] == "bf16"
    assert D.resolve_precision("auto", CPU, info)[0] == "bf16"
    monkeypatch.setattr(D, "BF16_VALIDATED", frozenset({"vq_training"}))
    monkeypatch.setenv(D.AUTO_BF16_ENV, "0")
    assert D.resolve_precision("auto", CPU, info, stage="vq_training")[0] == "fp32"
    monkeypatch.delenv(D.AUTO_BF16_ENV)
    assert D.resolve_precision("auto", CPU, info, stage="vq_training") == (
        "bf16", f"precision auto -> bf16: CPU lists avx512_bf16 in {info}; bf16 validated within 2 % of fp32 "
                "for vq_training")
    # validated for one stage says nothing of the others, nor of a caller naming no stage
    for stage in ("guidance", "generation", "t2m_training", None):
        assert D.resolve_precision("auto", CPU, info, stage=stage)[0] == "fp32"
    with pytest.raises(ValueError, match="unknown precision stage 'vq'"):
        D.resolve_precision("auto", CPU, info, stage="vq")
    monkeypatch.setenv(D.AUTO_BF16_ENV, "yes")
    with pytest.raises(ValueError, match=D.AUTO_BF16_ENV):
        D.resolve_precision("auto", CPU, info, stage="vq_training")


def test_every_script_resolves_auto_for_its_own_stage() -> None:
    """Each ``apply_precision`` call names a stage of PRECISION_STAGES, and every stage has its caller."""
    root = Path(__file__).resolve().parents[1]
    named = set()
    for path in [*root.glob("*.py"), *root.glob("engine/*.py")]:
        named |= set(re.findall(r'apply_precision\(args, device, "(\w+)"\)', path.read_text()))
    assert named == set(D.PRECISION_STAGES)


def test_apply_precision_records_the_resolved_choice_in_the_options(monkeypatch) -> None:
    monkeypatch.setenv(D.AUTO_BF16_ENV, "0")
    args = argparse.Namespace(precision="auto")
    note = D.apply_precision(args, CPU, "vq_training")
    assert args.precision == "fp32" and note.startswith("precision auto -> fp32")


def test_runtime_options_default_to_auto() -> None:
    from options.common import add_runtime_args

    parser = argparse.ArgumentParser()
    add_runtime_args(parser)
    assert parser.parse_args([]).precision == "auto"
    assert parser.parse_args(["--precision", "bf16"]).precision == "bf16"


def test_autocast_auto_runs_fp32_when_auto_resolves_to_fp32(monkeypatch) -> None:
    monkeypatch.setenv(D.AUTO_BF16_ENV, "0")
    a = torch.randn(4, 4)
    with D.autocast(CPU, "auto"):
        assert (a @ a).dtype == torch.float32
    with D.autocast(CPU, "bf16"):
        assert (a @ a).dtype == torch.bfloat16


def test_one_thread_setter_applies_the_count_and_gives_it_back(monkeypatch) -> None:
    from utils.device import set_threads, thread_count, torch_threads
    from utils.errors import UserError

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0 = leave torch's choice in a single process
        assert torch.get_num_threads() == before
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert thread_count(0, world_size=2, device_type="cpu") == max(1, (os.cpu_count() or 1) // 2)
    assert thread_count(0, world_size=2, device_type="cuda") is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the launcher decided
    assert thread_count(0, world_size=2, device_type="cpu") is None
    with pytest.raises(UserError, match="--num-threads"):
        thread_count(-1)
    previous = set_threads(1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(previous)


def test_device_names_are_checked_once_for_the_parser_and_resolve_device() -> None:
    for good in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert D.is_device_name(good)
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:0", "CUDA"):
        assert not D.is_device_name(bad)
        with pytest.raises(ValueError, match=f"--device {bad}: unknown device"):
            D.resolve_device(bad)
