"""The shipped pipeline configs parse, and every flag they pass is one the
stage's script accepts (checked against the script's own parser)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from utils.pipeline_config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config", ["configs/demo.yaml", "configs/paper.yaml"])
def test_config_flags_exist_in_each_script(config: str) -> None:
    _, stages = load_config(REPO / config)
    assert stages
    helps: dict[str, str] = {}
    for stage in stages:
        entry = tuple(stage.command[1:3]) if stage.command[1] == "-m" else (stage.command[1],)
        if entry not in helps:
            out = subprocess.run([sys.executable, *entry, "--help"], cwd=REPO, capture_output=True, text=True)
            assert out.returncode == 0, f"{entry}: --help failed: {out.stderr[-500:]}"
            helps[entry] = out.stdout
        for key in stage.args:
            flag = key if key.startswith("-") else f"--{key}"
            assert flag in helps[entry], f"{config}: stage {stage.name} passes {flag}, unknown to {entry}"


def _writes(stage) -> list[str]:
    """Folders a stage writes: those of its declared outputs, else its out-dir/exp-name."""
    if stage.outputs:
        return sorted({str(p.parent) for p in stage.outputs})
    a = stage.args
    return [f"{a['out-dir']}/{a['exp-name']}"] if "out-dir" in a and "exp-name" in a else []


def _closure(stages) -> dict[str, set[str]]:
    """Every stage a stage waits for, directly or through its needs."""
    after: dict[str, set[str]] = {}
    for s in stages:
        after[s.name] = set(s.needs).union(*(after[n] for n in s.needs))
    return after


def test_demo_stages_wait_for_every_stage_whose_output_they_read() -> None:
    _, stages = load_config(REPO / "configs/demo.yaml")
    after = _closure(stages)
    for stage in stages:
        read = [str(v) for v in stage.args.values() if not isinstance(v, (list, dict, bool))]
        read += [str(v) for v in stage.args.values() if isinstance(v, list) for v in v] + stage.positional
        for other in stages:
            if other is stage:
                continue
            for folder in _writes(other):
                if any(r == folder or r.startswith(folder + "/") for r in read):
                    assert other.name in after[stage.name], f"{stage.name} reads {folder} but does not need {other.name}"
    # the demo runs side by side: the guidance stage does not wait for the baselines
    assert "mdm_train" not in after["guidance"] and "t2m_train" not in after["guidance"]


def test_demo_simulates_the_baselines_into_the_cache_guidance_simulated_reads() -> None:
    """The sets that do not depend on guidance are simulated beside it, and
    guidance's verification simulates BIGE's motions, into the cache the final
    simulated comparison reads, which waits for both. The shared cache is no
    dependency between the two writers (entries are written atomically and
    keyed by their inputs), so they still run side by side."""
    _, stages = load_config(REPO / "configs/demo.yaml")
    after = _closure(stages)
    by_name = {s.name: s for s in stages}
    early, guidance, final = by_name["simulate_baselines"], by_name["guidance"], by_name["guidance_simulated"]
    assert early.args["sim-cache"] == guidance.args["sim-cache"] == final.args["sim-cache"]
    assert guidance.args["verify"] is True
    assert set(early.args["compare"]) < set(final.args["compare"])
    assert {"simulate_baselines", "guidance"} <= after["guidance_simulated"]
    assert "guidance" not in after["simulate_baselines"] and "simulate_baselines" not in after["guidance"]
