"""metrics/simulation.py: verification by simulation with real OpenSim on the
shared synthetic dataset. The adapter must give back the activations the
dataset was made with (same inverse dynamics and static optimisation), fail
per motion with a message instead of stopping a set, and calculate_guidance
--simulate must report them next to the surrogate's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import calculate_guidance
from dataset.repetitions import load_repetitions
from metrics.simulation import SimulationError, simulate_activations, simulate_many
from options.metrics import get_guidance_parser
from utils.errors import UserError

VASMED = ("vasmed_r", "vasmed_l")


@pytest.fixture(scope="module")
def dynamics(synthetic_root):
    """The test sessions' muscle-driven repetitions (kinematics + activations) and their models."""
    reps = load_repetitions(synthetic_root, split="test", source="dynamics")
    models = [str(next((Path(synthetic_root) / "Data" / sid / "OpenSimData" / "Model").glob("*.osim")))
              for sid in reps.sessions]
    return reps, models


def test_simulation_reproduces_the_datasets_activations(dynamics) -> None:
    reps, models = dynamics
    cols = [reps.muscles.index(m) for m in VASMED]
    dt = reps.time_steps()[0]
    act, names = simulate_activations(models[0], reps.motions[0], dt * np.arange(reps.motions.shape[1]))
    assert act.shape == (reps.motions.shape[1], 80) and 0.0 <= act.min() and act.max() <= 1.0
    ours = act[:, [names.index(m) for m in VASMED]]
    theirs = reps.activations[0][:, cols]
    # the dataset simulated the whole trial (filtered across repetitions), here one repetition alone
    assert np.abs(ours.max(0) - theirs.max(0)).max() < 0.02
    assert np.abs(ours - theirs)[20:-20].mean() < 0.01


def test_simulate_many_reports_a_failed_motion_and_keeps_the_others(dynamics, tmp_path: Path) -> None:
    reps, models = dynamics
    x = reps.motions[:2]
    dt = reps.time_steps()[:2]
    one, err1 = simulate_many(models[:2], x, dt, VASMED, workers=1)
    two, err2 = simulate_many(models[:2], x, dt, VASMED, workers=2)
    assert err1 == ["", ""] and err2 == ["", ""]
    np.testing.assert_allclose(one, two, atol=1e-6)  # processes give the same numbers
    bad, errors = simulate_many([str(tmp_path / "missing.osim"), models[1]], x, dt, VASMED)
    assert "missing.osim: no such model file" in errors[0] and errors[1] == ""
    assert np.isnan(bad[0]).all() and np.allclose(bad[1], one[1], atol=1e-6)
    with pytest.raises(SimulationError, match="increasing"):
        simulate_activations(models[0], x[0], np.zeros(len(x[0])))


def test_models_and_workers_are_kept_between_calls(dynamics, tmp_path: Path) -> None:
    """A subject's model is loaded once per process and the worker processes
    outlive a call; a rewritten model file is loaded again, and a cached model
    gives the numbers a fresh one gives."""
    import os
    import shutil

    from metrics import simulation

    reps, models = dynamics
    model = tmp_path / "subject.osim"
    shutil.copy(models[0], model)
    x, dt = reps.motions[:1], reps.time_steps()[0]
    t = dt * np.arange(x.shape[1])
    simulation._loaded.clear()
    fresh, _ = simulate_activations(model, x[0], t)
    first = simulation._subject_models(model)
    cached, _ = simulate_activations(model, x[0], t)
    assert simulation._subject_models(model) is first
    other, _ = simulate_activations(model, x[0][::-1].copy(), t)  # another motion between the two
    again, _ = simulate_activations(model, x[0], t)
    np.testing.assert_array_equal(cached, fresh)  # bit for bit: nothing carries over from earlier motions
    np.testing.assert_array_equal(again, fresh)
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed on disk
    assert simulation._subject_models(model) is not first

    simulate_many([str(model)] * 2, np.repeat(x, 2, axis=0), dt, VASMED, workers=2)
    pool = simulation._pool(2)
    again, errors = simulate_many([str(model)] * 2, np.repeat(x, 2, axis=0), dt, VASMED, workers=2)
    assert simulation._pool(2) is pool and errors == ["", ""]
    np.testing.assert_allclose(again[0], again[1], atol=1e-6)
    simulation.shutdown_workers()
    assert simulation._workers is None


def test_calculate_guidance_simulate_agrees_with_the_dynamics_files(synthetic_root, tmp_path: Path) -> None:
    """With the Dynamics activations as the 'surrogate', simulation must agree with them."""
    args = get_guidance_parser().parse_args([
        "--file_type", "mocap", "--folder_path", str(synthetic_root), "--activations", "simulation", "--simulate",
        "--workers", "2", "--out", str(tmp_path), "--no-progress"])
    pooled = calculate_guidance.main(args)[-1]
    assert pooled["surrogate_sim_mad"] < 0.02
    assert pooled["surrogate_sim_spearman"] > 0.9
    assert pooled["sim_activation_peak"] == pytest.approx(pooled["activation_peak"], abs=0.02)
    assert pooled["sim_activation_peak_windowed"] <= pooled["sim_activation_peak"]
    assert 0.0 <= pooled["sim_in_band_windowed"] <= 1.0
    md = (tmp_path / "guidance.md").read_text()
    assert "in band (sim., window)" in md and "Spearman surr./sim." in md
    notes = json.loads((tmp_path / "guidance.json").read_text())["notes"]
    assert any("motions simulated" in n for n in notes)


@pytest.mark.parametrize("flags, message", [
    (["--peak-window", "-0.1"], "--peak-window must be >= 0"),
    (["--lowpass", "-6"], "--lowpass must be >= 0"),
    (["--simulate", "--protocol", "published"], "--simulate is reported under --protocol project only"),
])
def test_calculate_guidance_refuses_bad_new_flags(synthetic_root, tmp_path: Path, flags, message) -> None:
    args = get_guidance_parser().parse_args(["--file_type", "mocap", "--folder_path", str(synthetic_root),
                                             "--out", str(tmp_path), "--no-progress", *flags])
    with pytest.raises(UserError, match=message):
        calculate_guidance.main(args)
