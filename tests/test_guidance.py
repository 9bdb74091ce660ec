"""LIMO_Surrogate.py / models.guidance end to end on a tiny VQ-VAE and a tiny
surrogate trained here (with their own training functions) on the shared
synthetic dataset: the band is met more often with guidance, the band is not
targeted with the surrogate weight at 0, feet stay on the floor, outputs load
in OpenSim, and every bad input is refused before any work."""
from __future__ import annotations

import csv
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from dataset.body_mass import BodyMassError
from dataset.mcs import DatasetError
import LIMO_Surrogate as LIMO
from LIMO_Surrogate import main
from models import guidance as G
from options.guidance import get_args_parser
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.constants import COORDINATES
from utils.errors import UserError
from utils.fileio import OutputExistsError, atomic_torch_save
from utils.kinematics import ForwardKinematics

GUIDE = ["--seq-len", "49", "--total-iter", "90", "--lr", "10", "--num-runs", "24", "--batch-size", "24",
         "--min-samples", "6", "--log-every", "10", "--no-progress", "--device", "cpu", "--seed", "0"]


def lowest_foot_height(points: Tensor, floor: float | Tensor = 0.0) -> Tensor:
    """Height of the lowest foot point above the floor per frame, metres.
    (B, T, P, 3) -> (B, T)"""
    return points[..., 1].amin(-1) - floor


def _args(trained, out: Path, *extra: str):
    root, vq, sur, subject = trained
    return get_args_parser().parse_args(
        ["--vq-name", str(vq), "--surrogate", str(sur), "--subject", str(subject), "--dataname", "mcs",
         "--out-dir", str(out), *GUIDE, *extra])


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def unguided(trained, tmp_path_factory):
    """A run with the surrogate weight at 0 and the band it would have had."""
    out = tmp_path_factory.mktemp("unguided")
    folders = main(_args(trained, out, "--exp-name", "unguided", "--w-band", "0"))
    return out, next(iter(folders.values()))


@pytest.fixture(scope="module")
def band_above(unguided):
    """A band above three quarters of the unguided samples' peak activations,
    0.12 wide. (Not above all of them: on the LaiUhlrich2022 fixture the tiny
    surrogate's outputs are compressed, so a band above the unguided maximum
    lies beyond what it ever predicts; see docs/guidance.md, Status.)"""
    peaks = np.asarray(_summary(unguided[1])["all_runs"]["peak_activation_mean"])
    low = round(float(np.quantile(peaks, 0.75)), 3)
    return low, round(min(1.0, low + 0.12), 3)


@pytest.fixture(scope="module")
def guided(trained, band_above, tmp_path_factory):
    out = tmp_path_factory.mktemp("guided")
    low, high = band_above
    folders = main(_args(trained, out, "--exp-name", "guided", "--low", str(low), "--high", str(high)))
    return out, next(iter(folders.values()))


def _fraction_in_band(summary: dict, low: float, high: float) -> float:
    peaks = np.asarray(summary["all_runs"]["peak_activation_mean"])
    return float(((peaks >= low) & (peaks <= high)).mean())


def test_seed_readme_command_parses() -> None:
    args = get_args_parser().parse_args(
        "--exp-name TestBIGE --vq-name /x/VQVAE14/120000.pth --dataname mcs --seq-len 49 --total-iter 3000 "
        "--lr 0.5 --num-runs 3000 --min-samples 20 --subject /data/MCS_DATA/Data/d66330dc --low 0.35 "
        "--high 0.45 --surrogate s.pth".split())
    assert (args.total_iter, args.num_runs, args.min_samples, args.lr) == (3000, 3000, 20, 0.5)
    assert args.muscles == ["vasmed_r", "vasmed_l"] and args.subject == ["/data/MCS_DATA/Data/d66330dc"]
    s = LIMO.schedule_from_args(args)
    assert (s.proximity_only, s.ramp, s.final_proximity) == (500, 500, 1000)


def test_guidance_raises_the_fraction_of_samples_in_a_band_above_the_unguided_ones(unguided, guided,
                                                                                   band_above) -> None:
    low, high = band_above
    before = _fraction_in_band(_summary(unguided[1]), low, high)
    s = _summary(guided[1])
    after = s["in_band_fraction_all_runs"]
    assert after <= _fraction_in_band(s, low, high)  # every muscle in the band implies their mean is
    assert before <= 0.3
    print(f"in band: {before:.2f} unguided, {after:.2f} guided, band [{low}, {high}]")
    assert after >= before + 0.25, f"in band: {before:.2f} unguided, {after:.2f} guided, band [{low}, {high}]"
    # the kept samples are the in-band ones, ordered by peak activation
    kept = s["samples"]
    assert sum(k["in_band"] for k in kept) >= min(len(kept), int(after * s["num_runs"]))
    peaks = [k["peak_activation_mean"] for k in kept]
    assert peaks == sorted(peaks)


def test_with_surrogate_weight_zero_the_band_is_not_targeted(trained, unguided, tmp_path) -> None:
    out, folder = unguided
    # same seed, another band: identical motions, because the band takes no part
    other = main(_args(trained, tmp_path, "--exp-name", "unguided2", "--w-band", "0", "--low", "0.8",
                       "--high", "0.9"))
    a, b = _summary(folder), _summary(next(iter(other.values())))
    assert a["all_runs"]["peak_activation_mean"] == b["all_runs"]["peak_activation_mean"]
    for ka, kb in zip(a["samples"], b["samples"]):
        assert np.array_equal(np.load(folder / ka["npy"]), np.load(next(iter(other.values())) / kb["npy"]))
    assert all(k["loss_terms"]["band"] == 0.0 or a["weights"]["band"] == 0.0 for k in a["samples"])


def test_guided_motions_keep_the_feet_on_the_floor(trained, guided) -> None:
    _, folder = guided
    s = _summary(folder)
    session = Path(trained[3])
    model = next((session / "OpenSimData" / "Model").glob("*.osim"))
    fk = ForwardKinematics.from_osim(model)
    motions = np.stack([np.load(folder / k["npy"]) for k in s["samples"]])
    feet = fk(torch.as_tensor(motions, dtype=torch.float64))[..., fk.foot_contact_indices(), :]
    height = lowest_foot_height(feet, s["floor_height_m"])
    worst = float(height.abs().max())
    assert worst <= 0.02, f"lowest foot point up to {100 * worst:.1f} cm off the floor"


def test_outputs_load_in_opensim_and_are_complete(trained, guided) -> None:
    import opensim as osim

    out, folder = guided
    s = _summary(folder)
    assert len(s["samples"]) == 6 and s["num_runs"] == 24
    from dataset.mcs import find_session
    from dataset.subjects import mean_repetition_duration

    assert s["time_source"] == "mean real duration of the subject's repetitions"
    assert s["duration_s"] == pytest.approx(mean_repetition_duration(find_session(trained[3])))
    assert 1.0 < s["duration_s"] < 4.0
    for k, sample in enumerate(s["samples"]):
        assert sample["mot"] == f"entry_{k}_guided.mot"
        table = osim.TimeSeriesTable(str(folder / sample["mot"]))
        assert list(table.getColumnLabels()) == list(COORDINATES)
        assert table.getNumRows() == 196
        assert table.getTableMetaDataAsString("inDegrees") == "yes"
        times = np.array(table.getIndependentColumn())
        # real time: the clip spans the subject's mean repetition duration
        assert times[-1] == pytest.approx(s["duration_s"], rel=1e-6)
        assert np.allclose(np.diff(times), s["duration_s"] / 195)
        npy = np.load(folder / sample["npy"])
        assert npy.shape == (196, 33)
        mot = np.array([[table.getRowAtIndex(i)[j] for j in range(33)] for i in (0, 98, 195)])
        assert np.allclose(mot, npy[[0, 98, 195]], atol=1e-5)
        assert set(sample["loss_terms"]) == set(G.TERMS)
        assert {"peak_activation", "squat_depth_m", "in_band"} <= set(sample)
    assert (folder / "samples_guided.png").stat().st_size > 10_000
    first = (folder / "run.log").read_text().splitlines()[0]
    assert " options {" in first and '"exp_name": "guided"' in first
    # the surrogate was bound to the subject's body mass: the one the generator recorded, placed among the
    # masses of the subjects the surrogate trained on (their own records, one per subject, std at least 1 kg)
    records = {p.parent.name: json.loads(p.read_text())["subject"]["mass_kg"]
               for p in Path(trained[0]).glob("Data/*/synthetic_session.json")}
    trained_on = [records[sid] for sid in load_checkpoint(trained[2])["train_sessions"]]
    kg = records[Path(trained[3]).name]
    z = (kg - np.mean(trained_on)) / max(np.std(trained_on), 1.0)
    assert f"body mass {kg:.1f} kg ({z:+.1f} SD from the surrogate's training subjects)" in \
        (folder / "run.log").read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {f"guidance/{t}" for t in G.TERMS} <= tags
    assert len(acc.Scalars("guidance/band")) == 10  # iterations 0, 10, ..., 80 and the last
    assert (out / "guided" / "run.log").read_text().startswith(first[:10])


def test_existing_results_are_kept_without_overwrite(trained, guided) -> None:
    out, folder = guided
    before = (folder / "summary.json").read_text()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        main(_args(trained, out, "--exp-name", "guided"))
    assert (folder / "summary.json").read_text() == before


def _refused(trained, tmp_path, error, match, *extra) -> None:
    start = time.perf_counter()
    with pytest.raises(error, match=match):
        main(_args(trained, tmp_path, "--exp-name", "bad", *extra))
    assert not any((tmp_path / "bad").glob("*/summary.json"))
    assert time.perf_counter() - start < 60


def test_bad_input_is_refused_before_any_work(trained, tmp_path) -> None:
    root, vq, sur, subject = trained
    _refused(trained, tmp_path, DatasetError, "does not exist", "--subject", str(root / "Data" / "no-such-session"))
    empty = tmp_path / "layout" / "Data" / "walker"
    (empty / "OpenSimData" / "Kinematics").mkdir(parents=True)
    (empty / "OpenSimData" / "Kinematics" / "Walk01.mot").write_text("not a squat")
    _refused(trained, tmp_path, DatasetError, r"no squat repetition .*trials found: Walk01 \(a squat trial.s name "
             r"must contain .sqt.\)", "--subject", str(empty))
    _refused(trained, tmp_path, G.GuidanceError, "low .* high", "--low", "0.5", "--high", "0.5")
    _refused(trained, tmp_path, G.GuidanceError, "--min-samples", "--min-samples", "50")
    _refused(trained, tmp_path, CheckpointError, "does not predict recfem_r", "--muscles", "recfem_r", "vasmed_r")
    _refused(trained, tmp_path, G.GuidanceError, "--peak-window", "--peak-window", "-0.1")
    _refused(trained, tmp_path, G.GuidanceError, "--surrogate-lowpass", "--surrogate-lowpass", "-6")
    _refused(trained, tmp_path, G.GuidanceError, "--verify-rounds", "--verify", "--verify-rounds", "-1")
    _refused(trained, tmp_path, G.GuidanceError, "--sim-cache .* needs --verify", "--sim-cache", str(tmp_path / "c"))

    ckpt = load_checkpoint(vq)
    ckpt["coordinates"] = list(reversed(COORDINATES))
    atomic_torch_save(ckpt, tmp_path / "reordered.pth")
    _refused(trained, tmp_path, CheckpointError, "coordinates", "--vq-name", str(tmp_path / "reordered.pth"))
    ckpt = load_checkpoint(vq)
    ckpt["model_config"]["n_features"] = 30
    atomic_torch_save(ckpt, tmp_path / "narrow.pth")
    _refused(trained, tmp_path, CheckpointError, "narrow.pth", "--vq-name", str(tmp_path / "narrow.pth"))


def test_overwrite_on_a_subset_never_leaves_mixed_settings(trained, guided, tmp_path) -> None:
    out, folder = guided
    exp = tmp_path / "mixed"
    shutil.copytree(folder, exp / "other-session")  # a subject guided earlier with the fixture's band
    low, high = _summary(folder)["band"]
    with pytest.raises(UserError, match=r"other-session/summary.json: generated with other settings .*band"):
        main(_args(trained, tmp_path, "--exp-name", "mixed", "--low", str(low - 0.05), "--high", str(high),
                   "--overwrite"))
    assert not (exp / Path(trained[3]).name).exists(), "nothing written"


VERIFY = ["--num-runs", "8", "--batch-size", "8", "--min-samples", "2", "--workers", "2"]


def test_verify_keeps_only_samples_in_band_by_simulation(trained, tmp_path, capsys) -> None:
    """--verify: the kept samples are in band by OpenSim simulation of the written motion itself."""
    from metrics.simulation import simulate_activations
    from utils.motion_io import read_motion

    root, _, _, subject = trained
    wide = ["--low", "0.05", "--high", "0.6", "--verify-rounds", "1"]
    folder = next(iter(main(_args(trained, tmp_path, "--exp-name", "ver", "--verify", *wide, *VERIFY)).values()))
    summary = _summary(folder)
    said = capsys.readouterr().out.strip().splitlines()
    assert said[-1].startswith(f"{subject.name}: 8 runs in ") and said[-1].endswith(f"kept in [0.05, 0.6] -> {folder}")
    ver = summary["verification"]
    assert ver["runs_simulated"] >= 2 and ver["simulations_failed"] == 0
    assert summary["verification"]["kept_in_band_by_simulation"] == len(summary["samples"]) >= 1
    model = next((subject / "OpenSimData" / "Model").glob("*.osim"))
    window = summary["peak_window_frames"]
    for k, rec in enumerate(summary["samples"]):
        sim = rec["simulated"]
        assert sim["in_band"] and all(0.05 <= v <= 0.6 for v in sim["peak_activation_windowed"].values())
        table = read_motion(folder / f"entry_{k}_ver.mot")
        act, names = simulate_activations(model, table.coordinates(), table.times)
        vm = act[:, names.index("vasmed_r")]
        again = np.convolve(vm, np.ones(window) / window, mode="valid").max()
        assert again == pytest.approx(sim["peak_activation_windowed"]["vasmed_r"], abs=2e-3)  # .mot rounding


def test_verify_counts_every_failed_simulation_and_stops_when_all_fail(trained, tmp_path) -> None:
    """A session model that OpenSim loads but that lacks a coordinate of the
    motion (mtp_angle_r renamed): every simulation fails; the log counts all of
    them, not only the last chunk's, and --verify stops with the reason."""
    root, vq, sur, subject = trained
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    model = next((copy / "Data" / subject.name / "OpenSimData" / "Model").glob("*.osim"))
    text = model.read_text()
    assert text.count('Coordinate name="mtp_angle_r"') == 1
    model.write_text(text.replace('Coordinate name="mtp_angle_r"', 'Coordinate name="mtp_angle_rx"'))
    args = get_args_parser().parse_args([
        "--vq-name", str(vq), "--surrogate", str(sur), "--subject", str(copy / "Data" / subject.name),
        "--dataname", "mcs", "--out-dir", str(tmp_path / "out"), *GUIDE, "--exp-name", "bad", "--verify",
        "--verify-rounds", "1", "--total-iter", "10", *VERIFY])
    with pytest.raises(G.GuidanceError, match="every simulation failed.*mtp_angle_r"):
        main(args)
    lines = [ln for ln in (tmp_path / "out" / "bad" / "run.log").read_text().splitlines() if "runs simulated" in ln]
    counts = [ln.split("verify: ")[1].split(",")[0] for ln in lines]
    assert len(counts) >= 4 and counts == [f"{n} runs simulated ({n} of them failed)"
                                           for n in range(2, 2 * len(counts) + 1, 2)]


def test_verify_fills_the_simulation_cache_calculate_guidance_reads(trained, tmp_path) -> None:
    """--verify --sim-cache D simulates the runs as their files hold them: calculate_guidance.py --simulate
    --sim-cache D on the results folder (.npy twins or .mot alike) finds every kept sample in D, writes the
    tables a run without the cache writes, and its simulated peaks are summary.json's verified ones."""
    import calculate_guidance
    from options.metrics import get_guidance_parser

    root, cache = trained[0], tmp_path / "sim_cache"
    wide = ["--low", "0.05", "--high", "0.6", "--verify-rounds", "1"]
    folder = next(iter(main(_args(trained, tmp_path, "--exp-name", "BIGE", "--verify", "--sim-cache", str(cache),
                                  *wide, *VERIFY)).values()))
    summary = _summary(folder)
    ver, samples = summary["verification"], summary["samples"]
    assert ver["simulations_failed"] == 0 and len(list(cache.rglob("*.npz"))) == ver["runs_simulated"] >= 2
    assert len(samples) >= 1 and all(rec["simulated"]["in_band"] for rec in samples)

    def metrics(out: str, *flags: str) -> dict:
        calculate_guidance.main(get_guidance_parser().parse_args([
            "--folder_path", str(tmp_path / "BIGE"), "--data-root", str(root), "--activations", "none", "--no-fk",
            "--simulate", "--muscles", *summary["muscles"], "--out", str(tmp_path / out), "--no-progress", *flags]))
        return json.loads((tmp_path / out / "guidance.json").read_text())

    for out, kind in (("cached", "auto"), ("cached_mot", "mot")):
        cached = metrics(out, "--file_type", kind, "--sim-cache", str(cache))
        assert cached["sets"][0]["kind"] == ("npy" if kind == "auto" else "mot")
        assert cached["sim_cache"]["hits"] == len(samples), f"{kind}: every kept sample is a hit"
        assert cached["sim_cache"]["misses"] == cached["sim_cache"]["stored"] == 0
    metrics("plain")
    for name in ("guidance.md", "guidance.csv", "guidance_motions.csv"):
        assert (tmp_path / "cached" / name).read_text() == (tmp_path / "plain" / name).read_text(), name
    with open(tmp_path / "plain" / "guidance_motions.csv", newline="") as handle:
        rows = {Path(r["file"]).stem: r for r in csv.DictReader(handle)}
    assert sorted(rows) == [f"entry_{k}_BIGE" for k in range(len(samples))]
    for k, rec in enumerate(samples):
        row, sim = rows[f"entry_{k}_BIGE"], rec["simulated"]
        for m, peak in sim["peak_activation"].items():
            assert float(row[f"sim_activation_peak_{m}"]) == peak  # the same float32 activations
        assert float(row["sim_activation_peak_windowed"]) == pytest.approx(sim["peak_activation_windowed_mean"],
                                                                           abs=1e-6)  # float32 vs float64 sums


def test_verify_with_an_unreachable_band_keeps_the_closest_and_says_so(trained, tmp_path) -> None:
    # no squat keeps the vasti below 0.5 % activation
    folder = next(iter(main(_args(trained, tmp_path, "--exp-name", "ver", "--verify", "--low", "0.0", "--high",
                                  "0.005", "--verify-rounds", "0", *VERIFY)).values()))
    summary = _summary(folder)
    assert summary["verification"]["runs_simulated"] == 8 and summary["verification"]["in_band_by_simulation"] == 0
    assert len(summary["samples"]) == 1 and summary["samples"][0]["simulated"]["in_band"] is False
    assert "WARNING only 0 of the 2" in (folder / "run.log").read_text()


def test_verify_refine_refits_the_surrogate_and_records_every_round(trained, tmp_path) -> None:
    """--verify-refine with a band no squat reaches: every chunk of simulations
    refines the surrogate (its error on the runs it was refined on falls), the
    second round is guided by the refined copy, and summary.json / verification.npz
    hold the per-round figures."""
    extra = ["--verify", "--low", "0.0", "--high", "0.005", "--verify-rounds", "1", "--no-verify-prune", *VERIFY]
    folder = next(iter(main(_args(trained, tmp_path, "--exp-name", "ref", *extra)).values()))
    summary = _summary(folder)
    ver = summary["verification"]
    assert summary["verify_refine"] is True and ver["refine"]["steps"] == 300  # the default
    assert summary["verify_prune"] is False
    assert ver["rounds"] == 2 and ver["runs_simulated"] == 16 and ver["in_band_by_simulation"] == 0
    rounds = ver["per_round"]
    assert [r["round"] for r in rounds] == [1, 2] and [r["runs_simulated"] for r in rounds] == [8, 8]
    assert [r["guided_by"] for r in rounds] == ["original", "refined"]
    print("per round:", rounds)
    # round 1 was guided by the original: 'before' is the original's error
    assert rounds[0]["surrogate_sim_peak_mad_before"] == pytest.approx(rounds[0]["surrogate_sim_peak_mad_original"],
                                                                       abs=1e-5)
    # one refinement per chunk of --min-samples simulations (8 runs / 2 per chunk, 2 rounds)
    refs = ver["refinements"]
    assert len(refs) == 8 and [r["examples"] for r in refs] == list(range(2, 17, 2))
    for r in refs:
        assert r["peak_mad_after"] < r["peak_mad_before"] and r["loss_after"] < r["loss_before"]
    # the last copy, on the round-1 runs it was refined on, is closer than the original. Only closer: with the
    # default, smooth decoder the original is already within 0.02 here and the copy is held near it (drift
    # penalty), so the margin depends on the draw (0.88x with engine.generation.subject_seed's, below 0.7x with
    # the CRC32 seed used before) and on the CPU's float kernels, which change the guided latents; hence no margin
    assert rounds[0]["surrogate_sim_peak_mad_after"] < rounds[0]["surrogate_sim_peak_mad_original"]
    data = np.load(folder / "verification.npz")
    assert data["motions"].shape == (16, 196, 33) and data["simulated"].shape == (16, 196, 2)
    assert list(np.bincount(data["round"])[1:]) == [8, 8] and set(data["runs"]) == set(range(16))


def test_verify_prune_skips_runs_the_refined_surrogate_puts_out_of_band(trained, tmp_path) -> None:
    """--verify-prune (default): with a band no squat reaches, the surrogate
    refined on round 1's first chunk predicts the rest of round 1 out of band,
    so they are not simulated and round 2 is guided at once; round 2, the last
    allowed, is simulated in full as without pruning."""
    extra = ["--verify", "--low", "0.0", "--high", "0.005", "--verify-rounds", "1", *VERIFY]
    folder = next(iter(main(_args(trained, tmp_path, "--exp-name", "prune", *extra)).values()))
    summary = _summary(folder)
    ver = summary["verification"]
    assert summary["verify_prune"] is True and ver["rounds"] == 2
    rounds = ver["per_round"]
    assert rounds[0]["runs_simulated"] == 2  # one chunk of --min-samples, then nothing predicted in band
    # the last round: round 2's own 8 runs and round 1's 6 leftovers are all simulated, none pruned
    assert rounds[1]["runs_simulated"] == 14 and ver["runs_simulated"] == 16
    log = (folder / "run.log").read_text()
    assert "out of band; not simulating them (next round instead)" in log
    assert [r["examples"] for r in ver["refinements"]] == list(range(2, 17, 2))


def test_verify_refine_options_are_checked_before_any_work(trained, tmp_path) -> None:
    _refused(trained, tmp_path, G.GuidanceError, "--refine-steps", "--verify", "--verify-refine", "--refine-steps", "0")
    _refused(trained, tmp_path, G.GuidanceError, "--refine-lr", "--verify", "--verify-refine", "--refine-lr", "0")
    _refused(trained, tmp_path, G.GuidanceError, "--refine-anchor", "--verify", "--verify-refine",
             "--refine-anchor", "-1")
    args = get_args_parser().parse_args(["--vq-name", "v", "--surrogate", "s"])
    assert args.verify_refine is True and LIMO.refine_config(args) is None  # on by default, acts only with --verify
    args = get_args_parser().parse_args(["--vq-name", "v", "--surrogate", "s", "--verify", "--no-verify-refine"])
    assert LIMO.refine_config(args) is None


# ----------------------------------------------------------------------------- --subject-workers

def _two_subjects(trained) -> list[str]:
    """The fixture's test session and one other session folder of its root."""
    root, _, _, subject = trained
    other = next(p for p in sorted((root / "Data").iterdir()) if p.is_dir() and p != subject)
    return [str(subject), str(other)]


def _comparable(summary: dict) -> dict:
    """``summary`` without what may differ between equal runs: times and the options line."""
    if isinstance(summary, dict):
        return {k: _comparable(v) for k, v in summary.items() if k not in ("seconds", "wall_seconds", "options")}
    if isinstance(summary, list):
        return [_comparable(v) for v in summary]
    return summary


def _assert_same_results(a: Path, b: Path) -> None:
    """Two subject folders hold byte-identical samples and equal summaries / verification arrays."""
    names = sorted(p.name for p in a.iterdir() if p.suffix in (".npy", ".mot"))
    assert names and names == sorted(p.name for p in b.iterdir() if p.suffix in (".npy", ".mot"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a.name}/{name} differs"
    assert _comparable(_summary(a)) == _comparable(_summary(b))
    if (a / "verification.npz").exists():
        va, vb = np.load(a / "verification.npz"), np.load(b / "verification.npz")
        assert sorted(va.files) == sorted(vb.files)
        for key in va.files:
            np.testing.assert_array_equal(va[key], vb[key], err_msg=key)


@pytest.mark.parametrize("verify", [False, True], ids=["guide", "verify"])
def test_subject_workers_give_results_identical_to_one_process(trained, tmp_path, verify) -> None:
    """Two subjects in two spawned processes: the same folders, byte-identical
    .npy / .mot, equal summaries (timings apart), and the experiment's run.log
    holds every subject's lines in subject order."""
    extra = ["--subject", *_two_subjects(trained), "--no-plot", "--num-threads", "1"]  # one thread count for all
    if verify:
        extra += ["--verify", "--verify-rounds", "0", *VERIFY]  # --workers 2: each worker has a simulation pool
    one = main(_args(trained, tmp_path / "one", "--exp-name", "same", *extra))
    two = main(_args(trained, tmp_path / "two", "--exp-name", "same", "--subject-workers", "2", *extra))
    assert list(one) == list(two) and len(one) == 2
    for sid in one:
        assert two[sid] == tmp_path / "two" / "same" / sid
        _assert_same_results(one[sid], two[sid])
    log = (tmp_path / "two" / "same" / "run.log").read_text()
    firsts = [log.index(f" {sid}: ") for sid in two]
    lasts = [log.rindex(f" {sid}: ") for sid in two]
    assert lasts[0] < firsts[1], "the first subject's lines come before the second's"
    per_subject = [line.split(" ", 1)[1] for line in (two[next(iter(two))] / "run.log").read_text().splitlines()]
    assert per_subject[1].endswith("frames") and "latent-iterations/s" in per_subject[-1]


def test_an_error_in_a_subject_worker_names_the_subject(trained, tmp_path) -> None:
    """A subject whose model OpenSim cannot load (its bodies and masses are
    intact, a joint names a frame that does not exist) fails with the same
    error and message in a worker process as in one process, naming the file."""
    first, second = _two_subjects(trained)
    broken = tmp_path / "broken" / "Data" / Path(second).name
    shutil.copytree(second, broken)
    for model in (broken / "OpenSimData" / "Model").glob("*.osim"):
        model.write_text(re.sub(r"<socket_parent_frame>[^<]*</socket_parent_frame>",
                                "<socket_parent_frame>no_such_frame</socket_parent_frame>", model.read_text(), count=1))
    extra = ["--subject", first, str(broken), "--no-plot"]
    errors = []
    for workers in ("1", "2"):
        with pytest.raises(Exception) as info:
            main(_args(trained, tmp_path, "--exp-name", f"err{workers}", "--subject-workers", workers, *extra))
        errors.append(info.value)
    assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1])
    assert str(broken) in str(errors[1])
    assert (tmp_path / "err2" / Path(first).name / "summary.json").exists(), "the subject before it was written"


def test_a_model_that_is_not_xml_fails_before_any_subject_is_guided(trained, tmp_path) -> None:
    """The surrogate takes each subject's body mass, read from its model
    before any work: an unreadable model stops the run there, naming the file
    and line, and no subject is written."""
    first, second = _two_subjects(trained)
    broken = tmp_path / "broken" / "Data" / Path(second).name
    shutil.copytree(second, broken)
    for model in (broken / "OpenSimData" / "Model").glob("*.osim"):
        model.write_text("<OpenSimDocument>not a model")
    with pytest.raises(BodyMassError, match=re.escape(str(broken)) + r".*\.osim, line 1, column \d+: not an OpenSim"):
        main(_args(trained, tmp_path, "--exp-name", "early", "--subject", first, str(broken), "--no-plot"))
    assert not (tmp_path / "early" / Path(first).name).exists()


def test_subject_workers_must_be_at_least_one(trained, tmp_path) -> None:
    with pytest.raises(SystemExit):
        _args(trained, tmp_path, "--subject-workers", "0")
    args = _args(trained, tmp_path, "--exp-name", "bad")
    args.subject_workers = 0
    with pytest.raises(G.GuidanceError, match="--subject-workers"):
        main(args)


def test_bf16_guidance_runs_end_to_end_and_writes_finite_motions(trained, tmp_path) -> None:
    """--precision bf16 (decoder and surrogate under autocast, the decoder's last
    layer, losses and search in fp32): the run finishes, says so in its log, and
    writes finite motions and peaks."""
    out = tmp_path / "bf16"
    folders = main(_args(trained, out, "--exp-name", "bf16", "--precision", "bf16", "--total-iter", "20",
                         "--num-runs", "4", "--batch-size", "4", "--min-samples", "2"))
    folder = next(iter(folders.values()))
    assert "precision bf16 (as asked)" in (out / "bf16" / "run.log").read_text()
    peaks = np.asarray(_summary(folder)["all_runs"]["peak_activation_mean"], dtype=float)
    assert len(peaks) == 4 and np.isfinite(peaks).all() and ((peaks >= 0) & (peaks <= 1)).all()
    motions = sorted(folder.glob("entry_*.npy"))
    assert motions and all(np.isfinite(np.load(m)).all() for m in motions)
