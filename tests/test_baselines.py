"""Baselines: unguided VQ-VAE samples, the token prior (T2M-GPT style) and the
motion diffusion model (MDM style): each trains a few steps on a small
dataset, resumes exactly, and samples motions of shape 196 x 33 with finite
values that OpenSim loads, written per subject like guidance writes them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import generate_mdm
import generate_t2m
import generate_vq
import train_mdm
import train_t2m_trans
from dataset.mcs import DatasetError, discover
from dataset.normalization import Normalizer
from dataset.repetitions import load_repetitions
from dataset.subjects import SUBJECT_FEATURES, resolve_subjects, subject_descriptor
from models.mdm import GaussianDiffusion, MDMConfig, MotionDenoiser, cosine_betas
from models.token_prior import TokenPrior, TokenPriorConfig
from models.vqvae import VQVAE
from options.generate_vq import get_args_parser as vq_gen_parser
from options.mdm import get_args_parser as mdm_parser
from options.mdm import get_generate_parser as mdm_gen_parser
from options.t2m import get_args_parser as t2m_parser
from options.t2m import get_generate_parser as t2m_gen_parser
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.constants import CLIP_LENGTH, COORDINATES
from utils.fileio import OutputExistsError
from utils.generation_output import read_subject_samples, write_subject_samples
from utils.motion_io import read_motion, write_coordinates

N_SESSIONS, N_REPS, REP_FRAMES = 6, 3, 90


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread, and do not suffer from other
    processes on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_layout(root: Path) -> Path:
    """A small MCS layout: 6 subjects of different depth, one trial of 3 squats
    each, the last two subjects form the test split."""
    rng = np.random.default_rng(0)
    ids = [f"subject-{i}" for i in range(N_SESSIONS)]
    for s, sid in enumerate(ids):
        n = N_REPS * REP_FRAMES
        phase = (1 - np.cos(np.linspace(0, N_REPS * 2 * np.pi, n))) / 2
        x = np.zeros((n, len(COORDINATES)))
        depth = 60.0 + 8.0 * s
        for name, gain in [("knee_angle_r", 1.0), ("knee_angle_l", 0.97), ("hip_flexion_r", 0.8),
                           ("hip_flexion_l", 0.8), ("ankle_angle_r", 0.3), ("ankle_angle_l", 0.3),
                           ("pelvis_tilt", 0.15), ("lumbar_extension", -0.1)]:
            x[:, COORDINATES.index(name)] = gain * depth * phase + rng.normal(0, 0.3, n)
        x[:, COORDINATES.index("pelvis_ty")] = 0.95 - 0.003 * x[:, COORDINATES.index("knee_angle_r")]
        write_coordinates(root / "Data" / sid / "OpenSimData" / "Kinematics" / "SQT01.mot", x)
        seg = root / "squat-segmentation-data"
        seg.mkdir(parents=True, exist_ok=True)
        np.save(seg / f"{sid}.npy", {"SQT01": [(REP_FRAMES * k, REP_FRAMES * (k + 1)) for k in range(N_REPS)]},
                allow_pickle=True)
    (root / "split.json").write_text(json.dumps({"train": ids[:-2], "test": ids[-2:]}))
    return root


@pytest.fixture(scope="module")
def data_root(request, tmp_path_factory) -> Path:
    """The shared synthetic dataset (``synthetic_root``) when it exists, else
    the small layout above."""
    try:
        return Path(request.getfixturevalue("synthetic_root"))
    except pytest.FixtureLookupError:
        return _write_layout(tmp_path_factory.mktemp("baseline_data"))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "baseline_cache"))


def _opensim_rows(path: Path) -> tuple[int, list[str]]:
    import opensim

    table = opensim.TimeSeriesTable(str(path))
    return table.getNumRows(), list(table.getColumnLabels())


def _check_generated(folder: Path, exp_name: str, n: int) -> np.ndarray:
    """Every subject folder holds n entries: .mot loads in OpenSim with the 33
    coordinates and 196 rows, .npy twins are finite (196, 33), and the time
    column spans the duration the summary states."""
    motions = read_subject_samples(folder)
    assert motions.shape == (n, CLIP_LENGTH, len(COORDINATES))
    assert np.isfinite(motions).all()
    summary = json.loads((folder / "summary.json").read_text())
    for k in range(n):
        rows, labels = _opensim_rows(folder / f"entry_{k}_{exp_name}.mot")
        assert rows == CLIP_LENGTH and labels == list(COORDINATES)
        mot = read_motion(folder / f"entry_{k}_{exp_name}.mot")
        np.testing.assert_allclose(mot.coordinates(), motions[k], atol=1e-4)
        assert mot.times[-1] - mot.times[0] == pytest.approx(summary["duration_s"], rel=1e-6)
    assert summary["num_samples"] == n and len(summary["samples"]) == n
    return motions


def _test_ids(root: Path) -> list[str]:
    return [s.id for s in resolve_subjects(root, ["all"])]


# ----------------------------------------------------------------------------- shared pieces


def test_subject_output_is_written_whole_and_never_overwritten_silently(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    motions = rng.normal(size=(3, CLIP_LENGTH, len(COORDINATES)))
    folder = write_subject_samples(tmp_path / "exp", "s1", motions, "exp", info={"method": "test"})
    _check_generated(folder, "exp", 3)
    assert json.loads((folder / "summary.json").read_text())["time_source"].startswith("assumed 60 Hz")
    timed = write_subject_samples(tmp_path / "timed", "s1", motions, "exp", duration=2.5)
    assert read_motion(timed / "entry_0_exp.mot").frame_rate == pytest.approx(195 / 2.5)
    with pytest.raises(ValueError, match="s1: duration must be a positive"):
        write_subject_samples(tmp_path / "timed2", "s1", motions, "exp", duration=0.0)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_subject_samples(tmp_path / "exp", "s1", motions[:1], "exp")
    write_subject_samples(tmp_path / "exp", "s1", motions[:1], "exp", overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["entry_0_exp.mot", "entry_0_exp.npy", "summary.json"]
    bad = motions.copy()
    bad[2, 5, 7] = np.nan
    with pytest.raises(ValueError, match=r"s2: generated sample\(s\) \[2\]"):
        write_subject_samples(tmp_path / "exp", "s2", bad, "exp")
    with pytest.raises(ValueError, match=r"expected generated motions \(N>=1, T, 33\)"):
        write_subject_samples(tmp_path / "exp", "s2", motions[..., :32], "exp")
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["s1"]  # no partial or hidden folders


def test_subjects_resolve_from_split_ids_and_folders(data_root: Path) -> None:
    all_ids = [s.id for s in discover(data_root)]
    test_ids = _test_ids(data_root)
    assert test_ids and set(test_ids) < set(all_ids)
    folder = data_root / "Data" / all_ids[0]
    got = resolve_subjects(data_root, [str(folder), all_ids[1], all_ids[0]])
    assert [s.id for s in got] == [all_ids[0], all_ids[1]]
    with pytest.raises(DatasetError, match="not a session folder and not a session id"):
        resolve_subjects(data_root, ["no-such-subject"])
    with pytest.raises(DatasetError, match="session folder does not exist"):
        resolve_subjects(data_root, [str(data_root / "Data" / "missing")])
    reps = load_repetitions(data_root, "train")
    norm = Normalizer.fit(reps.motions)
    desc = subject_descriptor(norm.normalize(reps.motions[:3]))
    assert desc.shape == (SUBJECT_FEATURES,) and np.isfinite(desc).all()


# ----------------------------------------------------------------------------- diffusion


def test_cosine_schedule_and_both_samplers_recover_an_oracle_x0() -> None:
    betas = cosine_betas(100)
    ab = np.cumprod(1 - betas)
    assert np.all(np.diff(ab) < 0) and ab[0] > 0.999 and ab[-1] < 1e-4
    diffusion = GaussianDiffusion(100, "cosine")
    target = torch.randn(2, 12, len(COORDINATES))

    def oracle(x, t, cond=None, cond_mask=None):
        return target.expand_as(x)

    x0 = torch.randn_like(target)
    noise = torch.randn_like(target)
    t = torch.tensor([0, 99])
    xt = diffusion.q_sample(x0, t, noise)
    torch.testing.assert_close(xt[0], x0[0] * diffusion.sqrt_ab[0] + noise[0] * diffusion.sqrt_1m_ab[0])
    gen = torch.Generator().manual_seed(0)
    for kwargs in ({"sampler": "ddpm"}, {"sampler": "ddim", "ddim_steps": 10},
                   {"sampler": "ddim", "ddim_steps": 7, "eta": 1.0}):
        out = diffusion.sample(oracle, tuple(target.shape), generator=gen, **kwargs)
        torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


def test_denoiser_conditions_on_the_subject_and_can_drop_it() -> None:
    torch.manual_seed(0)
    model = MotionDenoiser(MDMConfig(latent_dim=32, layers=1, heads=2, ff_size=64, cond_dim=SUBJECT_FEATURES,
                                     dropout=0.0)).eval()
    x, t = torch.randn(2, 20, 33), torch.tensor([3, 3])
    c1, c2 = torch.randn(2, SUBJECT_FEATURES), torch.randn(2, SUBJECT_FEATURES)
    assert model(x, t, c1).shape == (2, 20, 33)
    patched = MotionDenoiser(MDMConfig(n_frames=20, latent_dim=32, layers=1, heads=2, ff_size=64,
                                       frames_per_token=4))
    assert patched(x, t).shape == (2, 20, 33)
    with pytest.raises(ValueError, match="does not fit the model"):
        patched(x[:, :18], t)
    # the output filter starts as a binomial smoother: a constant clip passes unchanged
    weights = model.output_filter.weight
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    plain = MotionDenoiser(MDMConfig(n_frames=20, latent_dim=32, layers=1, heads=2, ff_size=64, output_filter=0))
    assert plain.output_filter is None
    assert not torch.allclose(model(x, t, c1), model(x, t, c2))
    dropped = torch.tensor([True, True])
    torch.testing.assert_close(model(x, t, c1, dropped), model(x, t, c2, dropped))


def test_denoiser_predicts_motion_in_float32_under_bf16_autocast() -> None:
    """The output projection and filter compute in float32 (models.float32_layers):
    the prediction equals those two layers applied in fp32 to the features the
    bf16 transformer produced."""
    torch.manual_seed(0)
    model = MotionDenoiser(MDMConfig(n_frames=20, latent_dim=32, layers=1, heads=2, ff_size=64, dropout=0.0)).eval()
    x, t = torch.randn(2, 20, 33), torch.tensor([3, 3])
    seen = {}
    model.output_proj.register_forward_hook(lambda m, inp, out: seen.update(features=inp[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t)
    assert out.dtype == torch.float32
    with torch.no_grad():
        proj = model.output_proj(seen["features"].float()).reshape(2, 20, 33)
        expected = model.output_filter(proj.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(out, expected)


def _mdm_train_args(root: Path, out: Path, exp: str, total: int, *extra: str):
    return mdm_parser().parse_args([
        "--data-root", str(root), "--out-dir", str(out), "--exp-name", exp, "--device", "cpu", "--no-progress",
        "--latent-dim", "32", "--layers", "2", "--heads", "2", "--ff-size", "64", "--diffusion-steps", "20",
        "--batch-size", "8", "--total-iter", str(total), "--warm-up-iter", "2", "--lr", "1e-3",
        "--print-iter", "2", "--eval-iter", "3", "--cond", "subject", "--frames-per-token", "4", *extra])


def test_mdm_trains_resumes_exactly_and_samples_loadable_motions(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    full = train_mdm.main(_mdm_train_args(data_root, out, "full", 6, "--snapshot-iter", "6"))
    assert np.isfinite(full["loss"]) and np.isfinite(full["val_loss"]) and full["step"] == 6
    train_mdm.main(_mdm_train_args(data_root, out, "part", 3))
    with pytest.raises(OutputExistsError, match="--resume"):
        train_mdm.main(_mdm_train_args(data_root, out, "part", 6))
    with pytest.raises(CheckpointError, match="checkpoint model does not match the options"):
        train_mdm.main(_mdm_train_args(data_root, out, "part", 6, "--resume", str(out / "part" / "net_last.pth"),
                                       "--layers", "3"))
    train_mdm.main(_mdm_train_args(data_root, out, "part", 6, "--resume", str(out / "part" / "net_last.pth")))
    a = torch.load(out / "full" / "net_last.pth", weights_only=False)
    b = torch.load(out / "part" / "net_last.pth", weights_only=False)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=0, rtol=0)
    assert a["coordinates"] == list(COORDINATES) and "normalizer" in a and "optimizer" in a and "scheduler" in a
    assert (out / "full" / "6.pth").is_file() and (out / "full" / "net_best.pth").is_file()
    assert (out / "full" / "run.log").read_text().count("options") == 1

    gen = tmp_path / "gen"
    test_ids = _test_ids(data_root)
    for sampler in ("ddim", "ddpm"):
        args = mdm_gen_parser().parse_args([
            "--model-path", str(out / "full" / "net_last.pth"), "--data-root", str(data_root),
            "--out-dir", str(gen), "--exp-name", f"mdm_{sampler}", "--num-samples", "3", "--batch-size", "2",
            "--sampler", sampler, "--ddim-steps", "5", "--guidance-param", "1.5", "--device", "cpu"])
        folders = generate_mdm.main(args)
        assert sorted(f.name for f in folders) == sorted(test_ids)
        for folder in folders:
            _check_generated(folder, f"mdm_{sampler}", 3)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        generate_mdm.main(args)
    # same seed, same samples; a subject's samples do not depend on the other subjects asked for
    again = mdm_gen_parser().parse_args([
        "--model-path", str(out / "full" / "net_last.pth"), "--data-root", str(data_root), "--out-dir", str(gen),
        "--exp-name", "mdm_again", "--num-samples", "3", "--batch-size", "2", "--sampler", "ddpm",
        "--guidance-param", "1.5", "--device", "cpu", "--subject", test_ids[-1]])
    generate_mdm.main(again)
    np.testing.assert_allclose(read_subject_samples(gen / "mdm_again" / test_ids[-1]),
                               read_subject_samples(gen / "mdm_ddpm" / test_ids[-1]), atol=1e-5)


# ----------------------------------------------------------------------------- token prior and VQ-VAE samples


def test_token_prior_is_causal_and_top_k_one_is_greedy() -> None:
    torch.manual_seed(0)
    prior = TokenPrior(TokenPriorConfig(nb_code=16, block_size=10, embed_dim=32, num_layers=2, n_head=2,
                                        dropout=0.0, cond_dim=SUBJECT_FEATURES)).eval()
    idx, cond = torch.randint(0, 16, (3, 10)), torch.randn(3, SUBJECT_FEATURES)
    changed = idx.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 16
    a, b = prior(idx[:, :9], cond), prior(changed[:, :9], cond)
    assert a.shape == (3, 10, 16)
    torch.testing.assert_close(a[:, :5], b[:, :5])  # outputs 0..4 see codes 0..3 only
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    greedy = prior.sample(3, cond, temperature=0)
    top1 = prior.sample(3, cond, top_k=1, generator=torch.Generator().manual_seed(5))
    assert greedy.shape == (3, 10) and torch.equal(greedy, top1)
    with pytest.raises(ValueError, match="at most 9"):
        prior(idx, cond)


@pytest.fixture(scope="module")
def vq_checkpoint(data_root: Path, tmp_path_factory) -> Path:
    """A tiny VQ-VAE whose codebook is initialised and updated from the
    training clips (a few EMA steps), saved in train_vq.py's format."""
    torch.manual_seed(0)
    reps = load_repetitions(data_root, "train")
    norm = Normalizer.fit(reps.motions)
    x = torch.as_tensor(norm.normalize(reps.motions.astype(np.float64)), dtype=torch.float32)
    vq = VQVAE(nb_code=32, code_dim=16, width=32, depth=1)
    opt = torch.optim.AdamW(vq.parameters(), lr=2e-3)
    vq.train()
    for _ in range(5):
        x_hat, commit, _ = vq(x)
        loss = torch.nn.functional.smooth_l1_loss(x_hat, x) + 0.02 * commit
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("vq") / "net_last.pth"
    save_checkpoint(path, model=vq.state_dict(), config=vq.config, coordinates=list(COORDINATES),
                    normalizer=norm.state_dict(), step=5, args={"clip_length": CLIP_LENGTH, "clip_mode": "resample"})
    return path


def _t2m_train_args(root: Path, vq: Path, out: Path, exp: str, total: int, *extra: str):
    return t2m_parser().parse_args([
        "--vq-name", str(vq), "--data-root", str(root), "--out-dir", str(out), "--exp-name", exp,
        "--device", "cpu", "--no-progress", "--embed-dim-gpt", "32", "--num-layers", "2", "--n-head-gpt", "2",
        "--batch-size", "8", "--total-iter", str(total), "--warm-up-iter", "2", "--lr", "1e-3",
        "--print-iter", "2", "--eval-iter", "3", "--cond", "subject", *extra])


def test_token_prior_trains_resumes_exactly_and_samples_loadable_motions(
        data_root: Path, vq_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    full = train_t2m_trans.main(_t2m_train_args(data_root, vq_checkpoint, out, "full", 6))
    assert np.isfinite(full["loss"]) and 0 <= full["accuracy"] <= 1 and np.isfinite(full["val_loss"])
    train_t2m_trans.main(_t2m_train_args(data_root, vq_checkpoint, out, "part", 3))
    train_t2m_trans.main(_t2m_train_args(data_root, vq_checkpoint, out, "part", 6,
                                         "--resume", str(out / "part" / "net_last.pth")))
    a = torch.load(out / "full" / "net_last.pth", weights_only=False)
    b = torch.load(out / "part" / "net_last.pth", weights_only=False)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=0, rtol=0)
    assert a["model_config"]["block_size"] == CLIP_LENGTH // 4 and sum(a["code_counts"]) > 0

    gen = tmp_path / "gen"
    args = t2m_gen_parser().parse_args([
        "--resume-trans", str(out / "full" / "net_last.pth"), "--data-root", str(data_root), "--out-dir", str(gen),
        "--num-samples", "3", "--batch-size", "2", "--top-k", "8", "--temperature", "0.9", "--device", "cpu"])
    folders = generate_t2m.main(args)
    assert sorted(f.name for f in folders) == sorted(_test_ids(data_root))
    for folder in folders:
        _check_generated(folder, "t2m_baseline", 3)
    summary = json.loads((folders[0] / "summary.json").read_text())
    assert summary["method"] == "t2m" and summary["conditioning"] == "subject" and summary["top_k"] == 8
    # a checkpoint of another kind is refused with the file named
    with pytest.raises(CheckpointError, match="not a train_t2m_trans.py checkpoint"):
        generate_t2m.main(t2m_gen_parser().parse_args([
            "--resume-trans", str(vq_checkpoint), "--data-root", str(data_root), "--out-dir", str(gen),
            "--exp-name", "other", "--device", "cpu"]))


def test_unguided_vq_samples_subject_and_random_modes(data_root: Path, vq_checkpoint: Path, tmp_path: Path) -> None:
    test_ids = _test_ids(data_root)
    for mode, extra in (("subject", []), ("subject", ["--noise-range", "0", "0"]), ("random", [])):
        exp = f"vq_{mode}_{len(extra)}"
        args = vq_gen_parser().parse_args([
            "--vq-name", str(vq_checkpoint), "--data-root", str(data_root), "--out-dir", str(tmp_path),
            "--exp-name", exp, "--mode", mode, "--num-samples", "3", "--batch-size", "2", "--device", "cpu",
            "--subject", *test_ids, *extra])
        folders = generate_vq.main(args)
        motions = [_check_generated(f, exp, 3) for f in folders]
        for f in folders:  # each subject's samples last as long as its own repetitions, on average
            reps = load_repetitions(data_root, "all")
            summary = json.loads((f / "summary.json").read_text())
            assert summary["duration_s"] == pytest.approx(reps.mean_duration(f.name), rel=1e-6)
        if extra:  # no noise: every sample is the subject's mean latent, quantised and decoded
            np.testing.assert_allclose(motions[0][0], motions[0][2], atol=1e-4)
    with pytest.raises(ValueError, match="--noise-range needs 0 <= LOW <= HIGH"):
        generate_vq.main(vq_gen_parser().parse_args([
            "--vq-name", str(vq_checkpoint), "--data-root", str(data_root), "--noise-range", "5", "1"]))
    with pytest.raises(CheckpointError, match="not a VQ-VAE checkpoint"):
        bogus = tmp_path / "bogus.pth"
        save_checkpoint(bogus, model={}, step=1)
        generate_vq.main(vq_gen_parser().parse_args([
            "--vq-name", str(bogus), "--data-root", str(data_root), "--out-dir", str(tmp_path / "b")]))
