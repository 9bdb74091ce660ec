"""surrogate_training.py: data split, training, checkpoints, exact resume, evaluation reports.

Runs on the tiny synthetic dataset (``synthetic_root``: 4 subjects x 3 squats,
OpenSim inverse dynamics + static optimisation): 3 training subjects (one held
out for validation) and 1 test subject.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.body_mass import BodyMassError, file_masses, subject_mass
from dataset.split import split_sessions
from models.surrogate import load_surrogate
from options.surrogate import get_args_parser, parse_muscles
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dataset.mcs import DatasetError
from dataset.repetitions import load_repetitions
from utils.constants import COORD_INDEX, COORDINATES, GUIDED_MUSCLES
from utils.fileio import OutputExistsError
from metrics.surrogate import VASTI, summarise_accuracy, surrogate_accuracy, temporal_correlation
from dataset.repetitions import mirror_motions, mirror_repetitions, select_muscles
from surrogate_training import check_muscle_names, main, split_validation

REPO = Path(__file__).resolve().parents[1]


def make_args(root, out, *extra: str):
    return get_args_parser().parse_args(
        ["--data-root", str(root), "--out-dir", str(out), "--device", "cpu", "--seed", "3", "--num-threads", "1",
         *extra])


def _validations(run_log: Path) -> list[tuple[int, float]]:
    """(step, validation loss) of every validation (one per epoch) in a run.log."""
    return [(int(s), float(v)) for s, v in
            re.findall(r"^\S+ step (\d+): validation loss (\S+)", run_log.read_text(), re.M)]


def val_losses(run_log: Path) -> list[float]:
    return [v for _, v in _validations(run_log)]


def steps_per_epoch(run_log: Path) -> int:
    steps = [s for s, _ in _validations(run_log)]
    return steps[1] - steps[0]


# ----------------------------------------------------------------------------- pure functions


def test_validation_holds_out_whole_sessions_seeded():
    ids = [f"s{i:02d}" for i in range(10)]
    train, val = split_validation(ids + ids[:3], 0.2, seed=1)  # repeated ids: one entry per session
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == ids
    assert split_validation(ids, 0.2, seed=1) == (train, val)
    assert split_validation(ids, 0.2, seed=2) != (train, val)
    assert len(split_validation(ids[:2], 0.9, seed=0)[0]) == 1  # never holds out every session
    with pytest.raises(ValueError, match="at least 2 training sessions"):
        split_validation(["only"], 0.2, seed=0)
    with pytest.raises(ValueError, match="val-fraction"):
        split_validation(ids, 1.0, seed=0)


def test_muscles_flag_takes_all_or_a_comma_and_space_list():
    assert parse_muscles(["all"]) is None
    assert parse_muscles(["vasmed_r,vasmed_l", "vaslat_r"]) == ["vasmed_r", "vasmed_l", "vaslat_r"]
    assert parse_muscles("vasmed_r, vasmed_l") == ["vasmed_r", "vasmed_l"]
    with pytest.raises(ValueError, match="cannot be combined"):
        parse_muscles(["all,vasmed_r"])
    with pytest.raises(ValueError, match=r"unknown muscle 'vasmed'.*did you mean vasmed_r"):
        check_muscle_names(["vasmed"])
    with pytest.raises(ValueError, match="more than once"):
        check_muscle_names(["vasmed_r", "vasmed_r"])


def test_activation_metrics_on_known_errors():
    t = np.linspace(0, 1, 50)
    sim = np.stack([np.sin(np.pi * t) * a for a in (0.4, 0.8)])[:, :, None].repeat(2, axis=2)
    sim[..., 1] = 0.3  # a muscle that never changes: R^2 undefined
    pred = sim.copy()
    pred[..., 0] += 0.1
    rows = surrogate_accuracy(pred, sim, ["vasmed_r", "soleus_r"])
    assert rows[0]["rmse"] == pytest.approx(0.1)
    assert rows[0]["peak_error"] == pytest.approx(0.1)
    var = sim[..., 0].var()
    assert rows[0]["r2"] == pytest.approx(1 - 0.01 / var)
    assert rows[0]["sim_peak"] == pytest.approx(0.6, abs=1e-3)
    assert rows[1]["rmse"] == 0 and np.isnan(rows[1]["r2"])
    summary = summarise_accuracy(rows)
    assert summary["vasti_mean_r2"] == pytest.approx(rows[0]["r2"])
    assert summary["mean_r2"] == pytest.approx(rows[0]["r2"])  # NaN left out of the mean
    with pytest.raises(ValueError, match=r"\(N, T, M\)"):
        surrogate_accuracy(pred[0], sim[0], ["vasmed_r", "soleus_r"])
    # an offset does not change the temporal correlation; a time-reversed curve does
    assert rows[0]["corr"] == pytest.approx(1.0) and np.isnan(rows[1]["corr"])
    assert rows[0]["pred_peak"] == pytest.approx(rows[0]["sim_peak"] + 0.1)
    ramp = np.stack([t, t])[:, :, None]
    assert surrogate_accuracy(ramp[:, ::-1], ramp, ["vasmed_r"])[0]["corr"] == pytest.approx(-1.0)


def test_temporal_correlation_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))
    expected = np.mean([np.corrcoef(a[i], b[i])[0, 1] for i in range(3)])
    assert temporal_correlation(a, b) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- training on the synthetic dataset


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory):
    """An MLP trained for 150 epochs on the vasti (no early stop), evaluated on the test subject."""
    out = tmp_path_factory.mktemp("surrogate_out")
    args = make_args(synthetic_root, out, "--exp-name", "mlp", "--muscles", ",".join(VASTI), "--epochs", "150",
                     "--patience", "0", "--plot-reps", "2", "--batch-size", "4")
    result = main(args)
    return out / "mlp", result


def test_training_writes_checkpoints_logs_and_reports(trained, synthetic_root):
    folder, result = trained
    for name in ("net_best.pth", "net_last.pth", "run.log", "eval_test.csv", "eval_test.json", "eval_test.png"):
        assert (folder / name).is_file(), name
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert (folder / "eval_test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "run.log").read_text().splitlines()[0].split(" ", 1)[1].startswith("options {")
    assert len(val_losses(folder / "run.log")) == 150

    ckpt = load_checkpoint(folder / "net_last.pth")
    assert ckpt["coordinates"] == list(COORDINATES) and ckpt["muscles"] == list(VASTI)
    for key in ("kind", "model", "model_config", "normalizer", "optimizer", "scheduler", "rng", "ranks", "args",
                "step", "best", "best_step", "stale", "train_sessions", "val_sessions"):  # the one schema
        assert key in ckpt, key
    assert ckpt["kind"] == "surrogate"
    assert ckpt["step"] == 450  # 150 epochs; 6 training clips + mirror images, batch 4: 3 steps/epoch
    assert steps_per_epoch(folder / "run.log") == 3
    assert len(ckpt["normalizer"]["mean"]) == 33
    # validation subjects are whole training sessions, disjoint from the test split
    train_ids, test_ids = split_sessions([*ckpt["train_sessions"], *ckpt["val_sessions"], *result["sessions"]],
                                         root=synthetic_root)
    assert len(ckpt["val_sessions"]) == 1 and len(ckpt["train_sessions"]) == 2
    assert not set(ckpt["val_sessions"]) & set(ckpt["train_sessions"])
    assert set(ckpt["val_sessions"]) <= set(train_ids) and result["sessions"] == test_ids

    best = load_checkpoint(folder / "net_best.pth")
    assert best["best_step"] == best["step"]
    losses = val_losses(folder / "run.log")
    assert best["best"] == pytest.approx(min(losses), abs=5e-7)  # the log prints 6 decimals
    assert best["best"] < 0.8 * losses[0]  # learning generalises to the held-out subject


def test_reports_hold_the_same_per_muscle_numbers(trained):
    folder, result = trained
    report = json.loads((folder / "eval_test.json").read_text())
    with open(folder / "eval_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["muscle"] for r in rows] == list(VASTI) == [r["muscle"] for r in report["muscles"]]
    for r, j in zip(rows, report["muscles"]):
        for key in ("rmse", "r2", "peak_error"):
            assert float(r[key]) == pytest.approx(j[key], rel=1e-4)
            assert np.isfinite(j[key])
    assert report["split"] == "test" and report["n_repetitions"] == 3 and report["arch"] == "mlp"
    assert report["summary"]["vasti_mean_r2"] == pytest.approx(np.mean([j["r2"] for j in report["muscles"]]))
    assert result["summary"] == report["summary"]


def test_trained_surrogate_fits_its_training_subjects_and_loads_for_guidance(trained, synthetic_root, tmp_path,
                                                                             capsys):
    folder, _ = trained
    args = make_args(synthetic_root, tmp_path, "--exp-name", "eval", "--eval-only", "--checkpoint",
                     str(folder / "net_last.pth"), "--eval-split", "train")
    result = main(args)
    assert "vasti mean" in capsys.readouterr().out
    assert (tmp_path / "eval" / "eval_train.json").is_file() and (tmp_path / "eval" / "eval_train.png").is_file()
    assert result["n_repetitions"] == 9  # 3 training subjects x 3 squats (validation subject included)

    ckpt = load_checkpoint(folder / "net_last.pth")
    seen = load_repetitions(synthetic_root, split="train", source="dynamics").of_sessions(ckpt["train_sessions"])
    model = load_surrogate(folder / "net_last.pth")
    assert model.uses_body_mass  # the default: each subject's mass from its scaled model
    pred = model.predict(seen.motions, body_mass=file_masses(seen.files))
    rows = surrogate_accuracy(pred, seen.activations[..., [seen.muscles.index(m) for m in VASTI]], VASTI)
    assert summarise_accuracy(rows)["vasti_mean_r2"] > 0.7, rows  # capacity: it learns the subjects it sees

    model = load_surrogate(folder / "net_best.pth", muscles=list(GUIDED_MUSCLES))
    x = torch.as_tensor(seen.motions[:2]).requires_grad_(True)
    model.for_subject(subject_mass(seen.files[0]))(x).amax(1).sum().backward()
    assert model.muscles == GUIDED_MUSCLES and float(x.grad.abs().sum()) > 0


def test_prediction_agrees_on_the_trial_kinematics_and_the_dynamics_files(trained, synthetic_root):
    """The same test repetitions cut from the whole-trial motion (what the
    VQ-VAE learns from and generates) and read from the Dynamics files (what
    the surrogate learns from) must get the same prediction: no saturation on
    the trial's measurement noise."""
    folder, _ = trained
    model = load_surrogate(folder / "net_best.pth")
    trial = load_repetitions(synthetic_root, split="test", source="kinematics")
    dyn = load_repetitions(synthetic_root, split="test", source="dynamics")
    assert trial.sessions == dyn.sessions and trial.indices == dyn.indices
    peak_trial = model.predict(trial.motions, body_mass=file_masses(trial.files)).max(1)
    peak_dyn = model.predict(dyn.motions, body_mass=file_masses(dyn.files)).max(1)
    assert np.abs(peak_trial - peak_dyn).mean() < 0.05, (peak_trial, peak_dyn)
    assert peak_trial.max() < 0.95


def test_no_body_mass_trains_the_kinematics_only_model(synthetic_root, tmp_path):
    """--no-body-mass: no mass input, nothing asks for a mass (not even a file
    outside any session), and the report says no mass was used; the default
    model's report lists the mass of every test repetition's subject."""
    args = make_args(synthetic_root, tmp_path, "--exp-name", "kin", "--muscles", "vasmed_r,vasmed_l", "--epochs", "3",
                     "--plot-reps", "0", "--no-body-mass", "--eval-data", str(REAL_MUSCLE_DRIVEN))
    result = main(args)
    model = load_surrogate(tmp_path / "kin" / "net_best.pth")
    assert not model.uses_body_mass and load_checkpoint(tmp_path / "kin" / "net_best.pth")[
        "model_config"]["body_mass"] is None
    assert result["body_mass_kg"] is None and result["eval_data"]["body_mass_kg"] is None
    with_mass = main(make_args(synthetic_root, tmp_path, "--exp-name", "mass", "--muscles", "vasmed_r,vasmed_l",
                               "--epochs", "3", "--plot-reps", "0"))
    test = load_repetitions(synthetic_root, split="test", source="dynamics")
    assert with_mass["body_mass_kg"] == pytest.approx(list(file_masses(test.files)))
    assert len(set(with_mass["body_mass_kg"])) == len(set(test.sessions))  # one mass per subject


def test_mirror_swaps_sides_and_is_its_own_inverse(synthetic_root):
    reps = load_repetitions(synthetic_root, split="train", source="dynamics")
    mirrored = mirror_repetitions(reps)
    m = mirrored.motions
    assert np.array_equal(m[..., COORD_INDEX["knee_angle_l"]], reps.motions[..., COORD_INDEX["knee_angle_r"]])
    assert np.array_equal(m[..., COORD_INDEX["pelvis_list"]], -reps.motions[..., COORD_INDEX["pelvis_list"]])
    assert np.array_equal(m[..., COORD_INDEX["pelvis_ty"]], reps.motions[..., COORD_INDEX["pelvis_ty"]])
    assert np.array_equal(mirror_motions(m), reps.motions)
    vr, vl = reps.muscles.index("vasmed_r"), reps.muscles.index("vasmed_l")
    assert np.array_equal(mirrored.activations[..., vr], reps.activations[..., vl])
    with pytest.raises(ValueError, match="other side of vasmed_r"):
        mirror_repetitions(select_muscles(reps, ["vasmed_r"]))


def test_resume_continues_exactly(synthetic_root, tmp_path):
    common = ["--arch", "transformer", "--d-model", "24", "--ff", "32", "--layers", "2", "--dropout", "0.1",
              "--muscles", "vasmed_r,vasmed_l", "--epochs", "6", "--noise", "0.05", "--batch-size", "4",
              "--save-every", "2", "--patience", "0"]
    assert main(make_args(synthetic_root, tmp_path, "--exp-name", "once", *common)) is not None
    assert main(make_args(synthetic_root, tmp_path, "--exp-name", "twice", "--stop-at", "3", *common)) is None
    assert not (tmp_path / "twice" / "eval_test.json").exists()  # evaluation waits for the end of the run
    half = load_checkpoint(tmp_path / "twice" / "net_last.pth")["step"]
    main(make_args(synthetic_root, tmp_path, "--exp-name", "twice", "--resume",
                   str(tmp_path / "twice" / "net_last.pth"), *common))
    a = load_checkpoint(tmp_path / "once" / "net_last.pth")
    b = load_checkpoint(tmp_path / "twice" / "net_last.pth")
    assert a["step"] == b["step"] == 2 * half == 6 * steps_per_epoch(tmp_path / "once" / "run.log")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["best"] == b["best"] and a["best_step"] == b["best_step"]
    assert val_losses(tmp_path / "once" / "run.log") == val_losses(tmp_path / "twice" / "run.log")
    assert "resumed from" in (tmp_path / "twice" / "run.log").read_text()
    assert json.loads((tmp_path / "once" / "eval_test.json").read_text())["summary"] == \
        json.loads((tmp_path / "twice" / "eval_test.json").read_text())["summary"]


def test_early_stopping_keeps_the_best_checkpoint(synthetic_root, tmp_path):
    # a learning rate far too high: the validation loss stops improving at once
    main(make_args(synthetic_root, tmp_path, "--exp-name", "es", "--muscles", "vasmed_r", "--epochs", "200",
                   "--lr", "3", "--warmup-epochs", "0", "--patience", "3", "--plot-reps", "0"))
    last = load_checkpoint(tmp_path / "es" / "net_last.pth")
    best = load_checkpoint(tmp_path / "es" / "net_best.pth")
    per_epoch = steps_per_epoch(tmp_path / "es" / "run.log")
    assert last["step"] < 200 * per_epoch and last["stale"] == 3
    assert last["step"] == best["step"] + 3 * per_epoch == last["best_step"] + 3 * per_epoch
    assert "early stop" in (tmp_path / "es" / "run.log").read_text()
    assert json.loads((tmp_path / "es" / "eval_test.json").read_text())["checkpoint"].endswith("net_best.pth")
    assert not (tmp_path / "es" / "eval_test.png").exists()


def test_bad_input_fails_before_any_work(synthetic_root, tmp_path):
    with pytest.raises(ValueError, match="unknown muscle 'vasmedd_r'"):
        main(make_args(synthetic_root, tmp_path, "--exp-name", "bad", "--muscles", "vasmedd_r"))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="--epochs"):
        main(make_args(synthetic_root, tmp_path, "--exp-name", "bad", "--epochs", "0"))
    with pytest.raises(ValueError, match="odd"):
        main(make_args(synthetic_root, tmp_path, "--exp-name", "bad", "--window", "4"))
    assert not (tmp_path / "bad").exists()
    save_checkpoint(tmp_path / "vq.pth", net={})
    with pytest.raises(CheckpointError, match=r"vq\.pth.*not a surrogate checkpoint"):
        main(make_args(synthetic_root, tmp_path, "--exp-name", "bad", "--resume", str(tmp_path / "vq.pth")))
    with pytest.raises(CheckpointError, match=r"nothing\.pth.*does not exist"):
        main(make_args(synthetic_root, tmp_path, "--exp-name", "bad", "--eval-only", "--checkpoint",
                       str(tmp_path / "nothing.pth")))


def test_existing_experiment_is_kept_unless_overwrite(synthetic_root, tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "net_best.pth").write_text("earlier result")
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    quick = ["--exp-name", "exp", "--muscles", "vasmed_r", "--epochs", "2", "--plot-reps", "0"]
    with pytest.raises(OutputExistsError, match="--overwrite"):
        main(make_args(synthetic_root, tmp_path, *quick))
    assert (tmp_path / "exp" / "net_best.pth").read_text() == "earlier result"
    main(make_args(synthetic_root, tmp_path, *quick, "--overwrite"))
    assert load_checkpoint(tmp_path / "exp" / "net_best.pth")["muscles"] == ["vasmed_r"]
    assert (tmp_path / "exp" / "notes.txt").read_text() == "mine"  # only the run's own outputs are replaced


def test_command_line_help_and_errors(synthetic_root, tmp_path):
    out = subprocess.run([sys.executable, "surrogate_training.py", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--data-root", "--arch", "--muscles", "--epochs", "--batch-size", "--lr", "--out-dir",
                 "--exp-name", "--device", "--seed", "--precision", "--resume", "--window", "--stride",
                 "--patience", "--val-fraction", "--eval-only", "--overwrite", "--stop-at"):
        assert flag in out, flag
    bad = subprocess.run([sys.executable, "surrogate_training.py", "--data-root", str(synthetic_root),
                          "--out-dir", str(tmp_path), "--muscles", "quads"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown muscle 'quads'" in bad.stderr
    with pytest.raises(DatasetError, match="does not exist"):
        main(make_args(tmp_path / "none", tmp_path, "--exp-name", "none"))
    assert not (tmp_path / "none").exists()


REAL_MUSCLE_DRIVEN = REPO / "tests" / "data" / "real_opencap" / "opencap-to-nwb" / "Squats_0_1_kinematics_activations.mot"


def test_eval_data_scores_a_real_opencap_muscle_driven_file(trained, tmp_path):
    """--eval-only --eval-data on OpenCap's own muscle-driven file (older header,
    left side first, rows ending in a tab, ~50 Hz uneven mesh): the report holds
    every muscle of the model with finite numbers computed against the file."""
    folder, _ = trained
    args = make_args(tmp_path / "no_such_root", folder.parent, "--exp-name", "mlp", "--eval-only",
                     "--eval-data", str(REAL_MUSCLE_DRIVEN.parent), "--eval-name", "real", "--plot-reps", "1",
                     "--eval-body-mass", "72")  # the subject's mass in OpenCap's metadata.yaml beside the file
    result = main(args)
    report = json.loads((folder / "eval_real.json").read_text())
    assert (folder / "eval_real.png").is_file() and (folder / "eval_real.csv").is_file()
    assert report["files"] == [str(REAL_MUSCLE_DRIVEN)] and report["n_repetitions"] == 1
    assert [r["muscle"] for r in report["muscles"]] == list(VASTI)
    by_muscle = {r["muscle"]: r for r in report["muscles"]}
    heavier = main(make_args(tmp_path / "no_such_root", tmp_path / "heavy", "--exp-name", "mlp", "--eval-only",
                             "--checkpoint", str(folder / "net_best.pth"), "--eval-data", str(REAL_MUSCLE_DRIVEN),
                             "--eval-name", "real", "--plot-reps", "0", "--eval-body-mass", "95"))
    assert heavier["muscles"][0]["pred_peak"] != pytest.approx(report["muscles"][0]["pred_peak"], abs=1e-4)
    from utils.motion_io import read_motion
    real = read_motion(REAL_MUSCLE_DRIVEN)
    # the simulated peak in the report is the file's own peak (resampling by time keeps it within 1 %)
    assert by_muscle["vasmed_l"]["sim_peak"] == pytest.approx(real.column("vasmed_l").max(), rel=0.01)
    for r in report["muscles"]:
        assert all(np.isfinite(r[k]) for k in ("rmse", "r2", "corr", "peak_error", "pred_peak"))
        assert -1.0 <= r["corr"] <= 1.0
    assert result["summary"] == report["summary"]


def test_eval_data_errors_name_the_path(trained, tmp_path):
    folder, _ = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    for target, words in ((tmp_path / "missing", "no such file or folder"), (empty, "no .mot or .sto files")):
        args = make_args(tmp_path, folder.parent, "--exp-name", "mlp", "--eval-only", "--eval-data", str(target))
        with pytest.raises(DatasetError, match=words):
            main(args)
    kin_only = tmp_path / "ik.mot"
    kin_only.write_bytes((REPO / "tests" / "data" / "real_opencap" / "opencap-processing" /
                          "squats1_videoAndMocap.mot").read_bytes())
    args = make_args(tmp_path, folder.parent, "--exp-name", "mlp", "--eval-only", "--eval-data", str(kin_only))
    with pytest.raises(DatasetError, match=r"ik\.mot: no muscle activation columns"):
        main(args)
    only_kin = tmp_path / "only_kinematics"  # a folder holding no muscle-driven file at all
    only_kin.mkdir()
    (only_kin / "ik.mot").write_bytes(kin_only.read_bytes())
    args = make_args(tmp_path, folder.parent, "--exp-name", "mlp", "--eval-only", "--eval-data", str(only_kin))
    with pytest.raises(DatasetError, match=r"only_kinematics: no file with muscle activation columns"):
        main(args)


def test_eval_data_folder_passes_over_files_without_activations(trained, tmp_path):
    """An OpenCap Dynamics folder also holds inverse-dynamics files: searching
    it scores the muscle-driven files and passes over the others."""
    folder, _ = trained
    dynamics = tmp_path / "Dynamics"
    dynamics.mkdir()
    (dynamics / "squat_muscle_driven.mot").write_bytes(REAL_MUSCLE_DRIVEN.read_bytes())
    (dynamics / "inverse_dynamics.sto").write_bytes((REPO / "tests" / "data" / "real_opencap" / "opencap-processing" /
                                                    "squats1_videoAndMocap.mot").read_bytes())
    out = tmp_path / "out"
    args = make_args(tmp_path, out, "--exp-name", "mlp", "--eval-only", "--checkpoint",
                     str(folder / "net_best.pth"), "--eval-data", str(dynamics), "--eval-name", "dyn")
    with pytest.raises(BodyMassError, match=r"squat_muscle_driven\.mot: not inside an MCS session folder.*--eval-body"):
        main(args)  # a surrogate that takes body mass needs the subject's
    (tmp_path / "OpenSimData").mkdir()  # now the folder is an OpenCap session: mass from its metadata
    (tmp_path / "sessionMetadata.yaml").write_bytes((REAL_MUSCLE_DRIVEN.parent / "metadata.yaml").read_bytes())
    report = main(args)
    assert report["n_repetitions"] == 1 and report["files"] == [str(dynamics / "squat_muscle_driven.mot")]
