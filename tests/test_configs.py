"""The shipped pipeline configs parse, and every flag they pass is one the
stage's script accepts (checked against the script's own parser)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from run_pipeline import load_config

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
