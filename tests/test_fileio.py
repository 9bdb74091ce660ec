"""utils.fileio and utils.checkpoint: atomic writes, no silent overwrite,
RNG capture and checkpoint compatibility checks."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.checkpoint import (
    CheckpointError, check_compatible, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
)
from utils.constants import COORDINATES
from utils.fileio import OutputExistsError, atomic_open, atomic_write_json, ensure_writable


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write('{"a": 2')
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_json_writes_nan_as_null_and_numpy_values(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "x.json", {"v": np.float32(1.5), "n": float("nan"), "a": np.arange(2)})
    assert json.loads(path.read_text()) == {"v": 1.5, "n": None, "a": [0, 1]}


def test_ensure_writable_refuses_existing_results(tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    ensure_writable(tmp_path / "exp", overwrite=False)  # empty folder is fine
    (tmp_path / "exp" / "run.log").write_text("x")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        ensure_writable(tmp_path / "exp", overwrite=False)
    ensure_writable(tmp_path / "exp", overwrite=True)


def test_checkpoint_restores_rng_streams(tmp_path: Path) -> None:
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    save_checkpoint(tmp_path / "c.pth", step=7, coordinates=list(COORDINATES))
    expected = (torch.rand(3), random.random(), np.random.rand())
    ckpt = load_checkpoint(tmp_path / "c.pth")
    set_rng_state(ckpt["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1] and np.random.rand() == expected[2]
    assert ckpt["step"] == 7


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pth")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.pth: cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pth")
    ckpt = {"coordinates": list(COORDINATES[:-1])}
    with pytest.raises(CheckpointError, match="expected 33 coordinates, found 32; missing pro_sup_r"):
        check_compatible(ckpt, "m.pth", "coordinates", COORDINATES)
    check_compatible({"coordinates": list(COORDINATES)}, "m.pth", "coordinates", COORDINATES)
    assert rng_state()["torch"].dtype == torch.uint8


def test_atomic_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    path = atomic_write_json(tmp_path / "p.json", {})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
