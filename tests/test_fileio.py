"""utils.fileio and utils.checkpoint: atomic writes, no silent overwrite,
RNG capture and checkpoint compatibility checks."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.checkpoint import (
    CheckpointError, check_compatible, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
)
from utils.constants import COORDINATES
from utils.fileio import (
    OutputExistsError, RunLock, RunLockedError, atomic_open, atomic_write_json, ensure_writable, exclusive_run,
    staged_dir,
)


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


# ----------------------------------------------------------------------------- reliability


def test_checkpoint_with_a_code_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    mark = tmp_path / "payload_ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {mark}",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil.pth: refused: it asks to load posix.system"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not mark.exists()
    # what the trainers save (NumPy values and RNG states included) loads with weights_only
    save_checkpoint(tmp_path / "ok.pth", stats=np.arange(3.0), best=np.float64(0.5), where=tmp_path)
    ckpt = load_checkpoint(tmp_path / "ok.pth")
    assert ckpt["stats"].tolist() == [0.0, 1.0, 2.0] and ckpt["best"] == 0.5 and ckpt["where"] == str(tmp_path)


def test_run_lock_admits_one_writer_and_dies_with_its_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from utils.fileio import RunLock; "
        "lock = RunLock(sys.argv[2]).acquire(); print('locked', flush=True); time.sleep(60)"),
        str(Path(__file__).resolve().parents[1]), str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"exp: another process \(pid {holder.pid}\) is writing"):
            RunLock(run).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
        holder.wait()
    with RunLock(run) as lock:  # a dead process does not hold it
        assert lock.path.read_text().strip() == str(os.getpid())
    assert not run.exists(), "the lock lives beside the run folder, which --overwrite may delete"


def test_stale_temporary_files_of_a_dead_writer_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".net_last.pth.abc123.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "net_best.pth").write_bytes(b"kept")
    (tmp_path / ".session-1.x7.tmp").mkdir()  # a subject folder being staged when its writer died
    (tmp_path / ".session-1.x7.tmp" / "entry_0_BIGE.mot").write_text("half")
    with exclusive_run(tmp_path) as removed:
        assert sorted(p.name for p in removed) == [".net_last.pth.abc123.tmp", ".session-1.x7.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net_best.pth"]


def test_staged_folder_replaces_old_results_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "reconstruction_test"
    out.mkdir()
    (out / "errors.csv").write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out) as tmp:
            (tmp / "errors.csv").write_text("new, half written\n")
            raise KeyboardInterrupt
    assert (out / "errors.csv").read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["reconstruction_test"]
    with staged_dir(out) as tmp:
        (tmp / "errors.csv").write_text("new\n")
    assert (out / "errors.csv").read_text() == "new\n" and sorted(os.listdir(tmp_path)) == ["reconstruction_test"]


def test_a_full_disk_names_the_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import resource, signal, sys; sys.path.insert(0, sys.argv[1]); "
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
            "from utils.fileio import atomic_write_text; from utils.errors import OutputWriteError\n"
            "try:\n    atomic_write_text(sys.argv[2], 'x' * 5000)\n"
            "except OutputWriteError as err:\n    print(err)")
    target = tmp_path / "table.csv"
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[1]), str(target)],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"cannot write {target}: File too large", out.stderr
    assert os.listdir(tmp_path) == []
