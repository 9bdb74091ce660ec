"""metrics/sim_cache.py: simulated activations kept on disk. A hit must give
the arrays a simulation gives bit for bit; anything the result depends on (the
model's bytes, the motion, its time stamps, the code) must change the key; a
corrupt entry is simulated again; two writers leave a valid entry; and
calculate_guidance --simulate --sim-cache writes the tables a run without the
cache writes, without simulating when the cache is warm."""
from __future__ import annotations

import json
import multiprocessing
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import calculate_guidance
from dataset.repetitions import load_repetitions
from metrics import sim_cache, simulation
from metrics.sim_cache import SimulationCache, SimulationCacheWarning
from metrics.simulation import simulate_many
from options.metrics import get_guidance_parser
from utils.errors import OutputWriteError, UserError
from utils.fileio import TEMP_SUFFIX

VASMED = ("vasmed_r", "vasmed_l")


@pytest.fixture(scope="module")
def dynamics(synthetic_root):
    """Two test repetitions (kinematics) with their time steps and subject models."""
    reps = load_repetitions(synthetic_root, split="test", source="dynamics")
    models = [str(next((Path(synthetic_root) / "Data" / sid / "OpenSimData" / "Model").glob("*.osim")))
              for sid in reps.sessions[:2]]
    return models, reps.motions[:2], reps.time_steps()[:2]


def _no_simulation(*_args, **_kwargs):
    raise AssertionError("simulated although the cache holds the motion")


def test_a_hit_returns_the_arrays_a_simulation_gives_bit_for_bit(dynamics, tmp_path: Path, monkeypatch) -> None:
    models, x, dt = dynamics
    plain, errors = simulate_many(models, x, dt, VASMED)
    cache = SimulationCache(tmp_path / "cache")
    cold, _ = simulate_many(models, x, dt, VASMED, workers=2, cache=cache)
    assert errors == ["", ""] and (cache.hits, cache.misses, cache.stored) == (0, 2, 2)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2
    monkeypatch.setattr(simulation, "simulate_activations", _no_simulation)
    warm_cache = SimulationCache(tmp_path / "cache")
    warm, errors = simulate_many(models, x, dt, VASMED, workers=2, cache=warm_cache)
    assert errors == ["", ""] and (warm_cache.hits, warm_cache.misses) == (2, 0)
    np.testing.assert_array_equal(warm, cold)
    np.testing.assert_array_equal(warm, plain)
    other, _ = simulate_many(models, x, dt, VASMED[::-1], cache=warm_cache)  # the muscles are not in the key
    assert warm_cache.hits == 4
    np.testing.assert_array_equal(other, plain[..., ::-1])


def test_a_changed_model_motion_time_or_code_misses(dynamics, tmp_path: Path, monkeypatch) -> None:
    models, x, dt = dynamics
    cache = SimulationCache(tmp_path)
    t = dt[0] * np.arange(x.shape[1])
    key = cache.key(models[0], x[0], t)
    copy = tmp_path / "copy.osim"
    shutil.copy(models[0], copy)
    assert cache.key(copy, x[0], t) == key  # the bytes count, not the path
    copy.write_bytes(copy.read_bytes() + b"\n")
    assert cache.key(copy, x[0], t) != key
    moved = x[0].astype(np.float64).copy()
    moved[100, 3] = np.nextafter(moved[100, 3], np.inf)  # one unit in the last place
    assert cache.key(models[0], moved, t) != key
    assert cache.key(models[0], x[0], t * 1.5) != key
    assert cache.key(models[0], x[0][:-1], t[:-1]) != key
    assert cache.key(tmp_path / "missing.osim", x[0], t) is None
    monkeypatch.setattr(sim_cache, "code_identity", lambda: "edited")
    assert cache.key(models[0], x[0], t) != key


def test_code_identity_covers_every_module_the_simulation_imports() -> None:
    names = {p.relative_to(sim_cache.REPO).as_posix() for p in sim_cache.simulation_sources()}
    assert {"metrics/simulation.py", "dataset/synthetic/muscle_dynamics.py", "utils/kinematics.py",
            "utils/constants.py", "metrics/sim_cache.py"} <= names
    assert len(sim_cache.code_identity()) == 64


def test_a_corrupt_entry_is_simulated_again_with_a_warning(dynamics, tmp_path: Path) -> None:
    models, x, dt = dynamics
    cache = SimulationCache(tmp_path)
    first, _ = simulate_many(models[:1], x[:1], dt[:1], VASMED, cache=cache)
    (entry,) = tmp_path.rglob("*.npz")
    entry.write_bytes(entry.read_bytes()[:1000])  # cut short, as by a crash of a non-atomic writer
    with pytest.warns(SimulationCacheWarning, match="unreadable simulation cache entry"):
        again, errors = simulate_many(models[:1], x[:1], dt[:1], VASMED, cache=cache)
    assert errors == [""] and cache.stored == 2
    np.testing.assert_array_equal(again, first)
    assert SimulationCache(tmp_path).load(entry.stem, x.shape[1]) is not None  # replaced by a valid entry


def test_a_cache_that_cannot_be_written_warns_and_keeps_the_results(dynamics, tmp_path: Path, monkeypatch) -> None:
    models, x, dt = dynamics

    def full_disk(path, **_arrays):
        raise OutputWriteError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(sim_cache, "atomic_save_npz", full_disk)
    cache = SimulationCache(tmp_path)
    with pytest.warns(SimulationCacheWarning, match="simulation cache not written: .*No space left"):
        act, errors = simulate_many(models[:1], x[:1], dt[:1], VASMED, cache=cache)
    assert errors == [""] and np.isfinite(act).all() and cache.stored == 0


def _write_many(folder: str, key: str, times: int) -> None:
    """Store the same entry ``times`` times (one of two concurrent writers)."""
    cache = SimulationCache(folder)
    act = np.random.default_rng(0).random((196, 80))
    for _ in range(times):
        cache.store(key, act, tuple(f"m{j}" for j in range(80)))


def test_two_concurrent_writers_leave_a_valid_entry(tmp_path: Path) -> None:
    key = "ab" + "0" * 62
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_write_many, args=(str(tmp_path), key, 40)) for _ in range(2)]
    for w in writers:
        w.start()
    reader = SimulationCache(tmp_path)
    while any(w.is_alive() for w in writers):  # every read sees no entry or a whole one, never half
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            reader.load(key, 196)
        assert not [r for r in record if issubclass(r.category, SimulationCacheWarning)]
    for w in writers:
        w.join()
        assert w.exitcode == 0
    act, names = reader.load(key, 196)
    np.testing.assert_array_equal(act, np.random.default_rng(0).random((196, 80)))
    assert names == tuple(f"m{j}" for j in range(80))
    assert not list(tmp_path.rglob(f"*{TEMP_SUFFIX}"))


def _guidance(root: Path, out: Path, *flags: str) -> list[dict]:
    args = get_guidance_parser().parse_args([
        "--file_type", "mocap", "--folder_path", str(root), "--activations", "simulation", "--simulate",
        "--out", str(out), "--no-progress", *flags])
    return calculate_guidance.main(args)


def test_calculate_guidance_with_a_warm_cache_writes_the_same_tables_without_simulating(
        synthetic_root, tmp_path: Path, monkeypatch, capsys) -> None:
    cache = tmp_path / "sim_cache"
    _guidance(synthetic_root, tmp_path / "plain", "--workers", "2")
    _guidance(synthetic_root, tmp_path / "cold", "--workers", "2", "--sim-cache", str(cache))
    monkeypatch.setattr(simulation, "simulate_activations", _no_simulation)
    capsys.readouterr()
    _guidance(synthetic_root, tmp_path / "warm", "--sim-cache", str(cache))
    assert "motions from the simulation cache" in capsys.readouterr().out
    for name in ("guidance.md", "guidance.csv", "guidance_motions.csv"):
        plain = (tmp_path / "plain" / name).read_text()
        assert (tmp_path / "cold" / name).read_text() == plain
        assert (tmp_path / "warm" / name).read_text() == plain
    cold = json.loads((tmp_path / "cold" / "guidance.json").read_text())["sim_cache"]
    warm = json.loads((tmp_path / "warm" / "guidance.json").read_text())["sim_cache"]
    assert cold["hits"] == 0 and cold["stored"] == cold["misses"] > 0
    assert warm["hits"] == cold["stored"] and warm["misses"] == warm["stored"] == 0


def test_calculate_guidance_refuses_a_cache_without_simulation(synthetic_root, tmp_path: Path) -> None:
    args = get_guidance_parser().parse_args(["--file_type", "mocap", "--folder_path", str(synthetic_root),
                                             "--out", str(tmp_path), "--sim-cache", str(tmp_path / "c")])
    with pytest.raises(UserError, match="--sim-cache keeps simulations: it needs --simulate"):
        calculate_guidance.main(args)
