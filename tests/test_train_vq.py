"""train_vq.py (on engine/training.py) and MOT_eval.py on a small generated
dataset: outputs, logging, exact resume, refusal of bad starts, DDP (2 gloo
processes) and DeepSpeed, and the reconstruction files."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.mcs import DatasetError
from dataset.paired_dynamics import paired_dynamics
from dataset.repetitions import load_repetitions
from engine.training import lr_factor
from models.vq_losses import FootSlideTerm, acceleration_loss, depth_loss, recons_loss_fn, vq_loss
from options.vq import get_args_parser, get_eval_parser
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.constants import COORDINATES
from utils.fileio import OutputExistsError
from utils.motion_io import read_motion
from MOT_eval import main as evaluate_checkpoint
from train_vq import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--width", "32", "--code-dim", "16", "--nb-code", "32", "--depth", "2", "--batch-size", "8",
        "--warm-up-iter", "3", "--lr", "2e-3", "--print-iter", "2", "--no-progress", "--device", "cpu", "--num-threads", "1"]


@pytest.fixture(scope="module")
def data_root(synthetic_root) -> Path:
    """The shared tiny synthetic dataset (tests/conftest.py)."""
    return Path(synthetic_root)


def _args(data_root: Path, out: Path, exp: str, *extra: str):
    return get_args_parser().parse_args(
        ["--data-root", str(data_root), "--out-dir", str(out), "--exp-name", exp, *TINY, *extra])


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("vq_runs")
    args = _args(data_root, out, "run", "--total-iter", "24", "--eval-iter", "12", "--snapshot-iter", "12")
    return args, main(args)


def test_seed_readme_command_parses() -> None:
    args = get_args_parser().parse_args(
        "--batch-size 256 --lr 2e-4 --total-iter 300000 --lr-scheduler 200000 --nb-code 512 --down-t 2 "
        "--depth 3 --dilation-growth-rate 3 --out-dir output --dataname mcs --vq-act relu --quantizer ema_reset "
        "--loss-vel 0.5 --recons-loss l1_smooth --exp-name VQVAE9".split())
    assert args.lr_scheduler == [200000] and args.quantizer == "ema_reset" and args.recons_loss == "l1_smooth"
    assert get_args_parser().parse_args(["--lr-scheduler", "100,200"]).lr_scheduler == [100, 200]


def test_learning_rate_warms_up_then_decays_at_each_milestone() -> None:
    assert lr_factor(0, 4, [10, 20], 0.1) == pytest.approx(0.25)
    assert lr_factor(3, 4, [10, 20], 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 4, [10, 20], 0.1) == pytest.approx(0.1)
    assert lr_factor(25, 4, [10, 20], 0.1) == pytest.approx(0.01)


def test_acceleration_loss_is_zero_for_the_target_and_counts_a_spike_exactly() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 20, 33)
    assert acceleration_loss(x, x).item() == 0.0
    t = torch.arange(20.0)[None, :, None]
    assert acceleration_loss(x + 0.3 + 0.1 * t, x).item() == pytest.approx(0.0, abs=1e-6)  # offset and drift are free
    spike = x.clone()
    spike[0, 10, 5] += 0.5  # second differences 0.5, -1.0, 0.5 at frames 9..11 of one channel
    assert acceleration_loss(spike, x).item() == pytest.approx(2.0 / (2 * 18 * 33), rel=1e-4)
    x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    loss = acceleration_loss(x_hat, x)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0


def test_depth_loss_compares_the_bottom_of_pelvis_height_only() -> None:
    ty = COORDINATES.index("pelvis_ty")
    x = torch.zeros(2, 11, 33)
    x[:, :, ty] = -(1 - torch.linspace(-1, 1, 11).abs())  # a V, bottom -1 at frame 5
    assert depth_loss(x, x, ty).item() == 0.0
    shallow = x.clone()
    shallow[0, :, ty] *= 0.5  # clip 0 bottoms out at -0.5
    shallow[:, :, ty + 1] += 3.0  # other features do not count
    assert depth_loss(shallow, x, ty).item() == pytest.approx(0.25, rel=1e-5)
    x_hat = shallow.clone().requires_grad_()
    args = get_args_parser().parse_args(["--loss-depth", "2", "--loss-vel", "0", "--commit", "0"])
    loss, parts = vq_loss(x_hat, x, torch.tensor(0.0), args, recons_loss_fn("l1"))
    assert parts["depth"].item() == pytest.approx(0.25, rel=1e-5)
    loss.backward()
    assert x_hat.grad[0, :, ty].abs().sum() > 0
    defaults = get_args_parser().parse_args([])
    assert defaults.loss_depth == 0.0
    assert (defaults.loss_acc, defaults.acc_target, defaults.acc_loss) == (3000.0, "dynamics", "l2")
    assert set(vq_loss(x_hat, x, torch.tensor(0.0), defaults, recons_loss_fn("l1"))[1]) == {
        "recons", "commit", "vel", "acc"}


def test_acceleration_target_from_the_dynamics_files_is_paired_and_used(data_root) -> None:
    train = load_repetitions(data_root, "train")
    clean, n = paired_dynamics(train, data_root, dict(length=train.motions.shape[1], clip_mode="resample",
                                                      split_file=None))
    assert clean.shape == train.motions.shape and 0 < n <= len(train)
    ty = COORDINATES.index("pelvis_ty")
    gap = np.abs(clean[..., ty] - train.motions[..., ty]).max()
    assert gap < 0.05  # the same repetitions, same frames (centimetres of jitter at most)
    x, x_clean = torch.as_tensor(train.motions[:4]), torch.as_tensor(clean[:4])
    args = get_args_parser().parse_args(["--loss-acc", "30"])
    _, own = vq_loss(x_clean, x, torch.tensor(0.0), args, recons_loss_fn("l1"))
    _, paired = vq_loss(x_clean, x, torch.tensor(0.0), args, recons_loss_fn("l1"), x_acc=x_clean)
    assert paired["acc"].item() == 0.0 and (own["acc"].item() > 0 or gap == 0)


def test_acceleration_loss_l2_is_the_mean_squared_second_difference_error() -> None:
    x = torch.zeros(2, 10, 33)
    x_hat = x.clone()
    x_hat[0, 5, 3] = 1.0  # one spike: second differences 1, -2, 1 at frames 4, 5, 6 (of 8)
    n = 2 * 8 * 33
    l1 = get_args_parser().parse_args(["--loss-acc", "1", "--acc-loss", "l1", "--loss-vel", "0", "--commit", "0"])
    l2 = get_args_parser().parse_args(["--loss-acc", "1", "--acc-loss", "l2", "--loss-vel", "0", "--commit", "0"])
    assert vq_loss(x_hat, x, torch.tensor(0.0), l1, recons_loss_fn("l1"))[1]["acc"].item() == pytest.approx(4 / n)
    assert vq_loss(x_hat, x, torch.tensor(0.0), l2, recons_loss_fn("l1"))[1]["acc"].item() == pytest.approx(6 / n)


def test_acceleration_target_without_dynamics_files_falls_back_to_the_input(data_root, tmp_path) -> None:
    import shutil

    bare = tmp_path / "no_dynamics"
    shutil.copytree(data_root, bare, ignore=shutil.ignore_patterns("Dynamics"))
    train = load_repetitions(bare, "train")
    clean, n = paired_dynamics(train, bare, dict(length=train.motions.shape[1], clip_mode="resample",
                                                 split_file=None))
    assert n == 0 and np.array_equal(clean, train.motions)


def test_pelvis_acceleration_term_is_in_metres_per_second_squared() -> None:
    args = get_args_parser().parse_args(["--loss-vel", "0", "--loss-acc", "0", "--loss-pelvis-acc", "2", "--commit", "0"])
    fs, std = 100.0, torch.full((33,), 0.05)
    ty = COORDINATES.index("pelvis_ty")
    t = torch.arange(30.0) / fs
    x = torch.zeros(1, 30, 33)
    x_hat = x.clone()
    x_hat[0, :, ty] = 0.5 * 3.0 * t ** 2 / std[ty]  # 3 m/s^2 upwards, normalised
    loss, parts = vq_loss(x_hat, x, torch.tensor(0.0), args, recons_loss_fn("l1"), std, fs)
    # smooth-L1 (beta 1 m/s^2) of 3 m/s^2 is 2.5, on one of the three translations
    assert parts["pelvis_acc"].item() == pytest.approx(2.5 / 3, rel=1e-4)
    assert loss.item() == pytest.approx(parts["recons"].item() + 2 * 2.5 / 3, rel=1e-5)
    assert vq_loss(x, x, torch.tensor(0.0), args, recons_loss_fn("l1"), std, fs)[1]["pelvis_acc"].item() == 0.0
    published = get_args_parser().parse_args(["--loss-acc", "0"])  # the published loss: every new term off
    assert set(vq_loss(x_hat, x, torch.tensor(0.0), published, recons_loss_fn("l1"), std, fs)[1]) == {
        "recons", "commit", "vel"}
    matched = get_args_parser().parse_args(["--loss-acc", "30"])
    assert set(vq_loss(x_hat, x, torch.tensor(0.0), matched, recons_loss_fn("l1"), std, fs)[1]) == {
        "recons", "commit", "vel", "acc"}


def test_foot_slide_term_is_zero_for_planted_feet_and_quadruples_with_twice_the_speed() -> None:
    from dataset.synthetic.osim_model import default_model_path
    from utils.kinematics import ForwardKinematics

    fk = ForwardKinematics.from_osim(default_model_path()).float()
    term = FootSlideTerm(fk, torch.zeros(33), torch.ones(33))  # inputs in degrees / metres
    x = torch.zeros(1, 12, 33)
    # the model's default pose, standing still: all eight sole points on the floor, nothing slides
    assert term(x, x).item() == pytest.approx(0.0, abs=1e-9)
    tx = COORDINATES.index("pelvis_tx")
    slow, fast = x.clone(), x.clone()
    slow[0, :, tx] = 0.001 * torch.arange(12.0)  # the whole body glides 1 mm per frame
    fast[0, :, tx] = 0.002 * torch.arange(12.0)
    slow.requires_grad_()
    value = term(slow, x)
    value.backward()
    # 0.1 cm per frame, squared, times the soft contact weight sigmoid(tol / width = 4) squared
    assert value.item() == pytest.approx(0.01 * torch.sigmoid(torch.tensor(4.0)).item() ** 2, rel=1e-3)
    assert term(fast, x).item() == pytest.approx(4 * value.item(), rel=1e-4)
    assert torch.isfinite(slow.grad).all() and slow.grad[0, :, tx].abs().sum() > 0


def test_training_writes_log_tensorboard_and_complete_checkpoints(trained) -> None:
    args, result = trained
    folder = result.folder
    assert result.step == 24 and len(result.losses) == 24
    lines = (folder / "run.log").read_text().splitlines()
    assert " options {" in lines[0] and json.loads(lines[0].split(" options ", 1)[1])["total_iter"] == 24
    assert any("validation MAE" in line and "deg" in line and "cm" in line for line in lines)
    for name in ("net_last.pth", "net_best.pth", "12.pth", "24.pth"):
        assert (folder / name).is_file(), name
    ckpt = load_checkpoint(folder / "net_last.pth")
    for key in ("kind", "model", "model_config", "args", "coordinates", "normalizer", "step", "optimizer",
                "scheduler", "rng", "ranks", "best", "val"):  # the one checkpoint schema
        assert key in ckpt, key
    assert ckpt["step"] == 24 and ckpt["coordinates"] == list(COORDINATES)
    assert {"codebook", "code_sum", "code_count", "initialized"} <= {
        k.split(".")[-1] for k in ckpt["model"] if k.startswith("quantizer.")}
    # the normaliser was fitted on training data: standardised features of the training clips
    assert len(ckpt["normalizer"]["mean"]) == 33

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/recons", "train/vel", "train/commit", "train/perplexity",
                "train/code_usage", "train/lr", "val/mae_deg", "val/mae_cm"):
        assert tag in tags, tag
    lrs = [e.value for e in acc.Scalars("train/lr")]
    assert lrs[0] < lrs[-1] == pytest.approx(2e-3)  # warm-up seen


def test_training_reduces_the_loss(trained) -> None:
    losses = trained[1].losses
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6])


def test_acceleration_matching_trains_a_smoother_decoder(data_root, tmp_path) -> None:
    from metrics.guidance import kinematic_metrics
    from models.vqvae import load_vqvae

    reps = load_repetitions(data_root, "train")
    rough = {}
    for name, flags in (("published", ["--loss-acc", "0"]), ("default", []),
                        ("l1", ["--loss-acc", "30", "--acc-loss", "l1"])):
        result = main(_args(data_root, tmp_path, f"acc_{name}", "--total-iter", "60", "--eval-iter", "60",
                            "--warm-up-iter", "10", *flags))
        net, normalizer, _ = load_vqvae(result.folder / "net_last.pth")
        recon = net.reconstruct(reps.motions, normalizer)
        rough[name] = float(kinematic_metrics(recon, reps.time_steps())["pelvis_acceleration_rms_m_s2"].mean())
    assert rough["default"] < 0.5 * rough["published"]
    assert rough["l1"] < 0.5 * rough["published"]


def test_resume_continues_exactly(data_root, tmp_path) -> None:
    common = ("--eval-iter", "100", "--window-size", "64", "--quantizer", "ema_reset")
    full = main(_args(data_root, tmp_path, "full", "--total-iter", "8", *common))
    first = main(_args(data_root, tmp_path, "part", "--total-iter", "4", *common))
    rest = main(_args(data_root, tmp_path, "part", "--total-iter", "8", *common,
                      "--resume", str(tmp_path / "part" / "net_last.pth")))
    assert first.losses == full.losses[:4]
    assert rest.losses == full.losses[4:]  # bit-exact on the CPU
    a, b = full.model.state_dict(), rest.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "resumed from" in (tmp_path / "part" / "run.log").read_text()


def test_new_run_in_a_non_empty_folder_is_refused(data_root, tmp_path) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "run.log").write_text("earlier run\n")
    with pytest.raises(OutputExistsError, match="--resume .*--overwrite"):
        main(_args(data_root, tmp_path, "exp", "--total-iter", "1"))
    result = main(_args(data_root, tmp_path, "exp", "--total-iter", "1", "--overwrite"))
    assert result.step == 1 and "earlier run" not in (tmp_path / "exp" / "run.log").read_text()


def test_resume_refuses_an_incompatible_checkpoint(trained, data_root, tmp_path) -> None:
    pth = str(trained[1].folder / "net_last.pth")
    with pytest.raises(CheckpointError, match=r"net_last\.pth: checkpoint model does not match.*width"):
        main(_args(data_root, tmp_path, "x", "--total-iter", "30", "--resume", pth, "--width", "64"))
    torch.save({"weights": 1}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match=r"foreign\.pth: not a VQ-VAE training checkpoint"):
        main(_args(data_root, tmp_path, "y", "--total-iter", "30", "--resume", str(tmp_path / "foreign.pth")))


def test_bad_options_are_rejected_before_any_work(data_root, tmp_path) -> None:
    with pytest.raises(ValueError, match="--window-size 30 must be a multiple of 4"):
        main(_args(data_root, tmp_path, "w", "--window-size", "30"))
    assert not (tmp_path / "w").exists()
    with pytest.raises(DatasetError, match="nowhere"):
        main(_args(tmp_path / "nowhere", tmp_path, "d"))
    assert not (tmp_path / "d").exists()  # nothing written for a bad data root


# -- distributed ---------------------------------------------------------------------------
_DRIVER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    import torch
    from options.vq import get_args_parser
    from train_vq import main
    args = get_args_parser().parse_args(sys.argv[1:])
    result = main(args)
    torch.save(result.model.state_dict(), os.path.join(args.out_dir, "rank%s.pt" % os.environ["RANK"]))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path: Path, data_root: Path, *extra: str) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.format(repo=str(REPO)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), str(driver), "--data-root", str(data_root), "--out-dir", str(tmp_path),
           "--exp-name", "dist", *TINY, "--total-iter", "4", "--eval-iter", "2", *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _assert_identical_ranks(tmp_path: Path) -> None:
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    assert set(w0) == set(w1)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    log = (tmp_path / "dist" / "run.log").read_text()
    assert log.count(" options {") == 1 and "world size 2" in log  # rank 0 logs alone
    ckpt = load_checkpoint(tmp_path / "dist" / "net_last.pth")
    assert len(ckpt["ranks"]) == 2
    assert torch.equal(ckpt["model"]["quantizer.codebook"], w0["quantizer.codebook"])


def test_ddp_two_gloo_processes_end_with_identical_weights(data_root, tmp_path) -> None:
    _torchrun(tmp_path, data_root)
    _assert_identical_ranks(tmp_path)
    assert ", ddp" in (tmp_path / "dist" / "run.log").read_text()


def test_deepspeed_two_processes_end_with_identical_weights(data_root, tmp_path) -> None:
    pytest.importorskip("deepspeed", reason="optional extra (requirements-deepspeed.txt)")
    _torchrun(tmp_path, data_root, "--deepspeed", "--deepspeed-config", str(REPO / "configs" / "deepspeed_vq.json"))
    _assert_identical_ranks(tmp_path)
    assert ", deepspeed" in (tmp_path / "dist" / "run.log").read_text()


# -- MOT_eval -----------------------------------------------------------------------------------
def test_mot_eval_writes_opensim_motions_and_error_tables(trained, data_root, tmp_path) -> None:
    args, result = trained
    eval_args = get_eval_parser().parse_args(
        ["--resume-pth", str(result.folder / "net_best.pth"), "--out-dir", str(tmp_path), "--exp-name", "ev",
         "--batch-size", "4", "--no-progress", "--device", "cpu", "--num-threads", "1"])
    errors = evaluate_checkpoint(eval_args)
    folder = tmp_path / "ev" / "reconstruction_test"
    test = load_repetitions(data_root, "test")
    mots = sorted((folder / "mot").glob("*.mot"))
    assert len(mots) == len(test) > 0
    report = json.loads((folder / "errors.json").read_text())
    assert report["n_clips"] == len(test) and len(report["clips"]) == len(test)
    csv_lines = (folder / "errors.csv").read_text().splitlines()
    assert csv_lines[0] == "coordinate,mae,unit" and len(csv_lines) == 1 + 33 + 2
    assert csv_lines[1].startswith("pelvis_tilt,") and csv_lines[4].endswith(",cm")  # pelvis_tx in cm

    # the .mot files: canonical columns, degrees, the repetition's real time, and the reported error
    recon = []
    for i, clip in enumerate(report["clips"]):
        motion = read_motion(folder / clip["file"])
        assert list(motion.labels) == list(COORDINATES) and motion.in_degrees
        assert motion.times[-1] - motion.times[0] == pytest.approx(test.durations[i], rel=1e-6)
        recon.append(motion.coordinates())
    mae = np.abs(np.stack(recon) - test.motions).reshape(-1, 33).mean(0)
    rot = [i for i, n in enumerate(COORDINATES) if n not in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
    assert mae[rot].mean() == pytest.approx(errors["mae_deg"], abs=1e-3)

    import opensim

    table = opensim.TimeSeriesTable(str(mots[0]))
    assert table.getNumColumns() == 33 and table.getColumnLabel(0) == "pelvis_tilt"
    assert table.getTableMetaDataAsString("inDegrees") == "yes"

    with pytest.raises(OutputExistsError):
        evaluate_checkpoint(eval_args)  # never overwrite silently


def test_resuming_a_finished_run_rewrites_a_lost_final_snapshot(data_root, tmp_path) -> None:
    args = _args(data_root, tmp_path, "run", "--total-iter", "4", "--eval-iter", "2", "--snapshot-iter", "4")
    main(args)
    folder = tmp_path / "run"
    (folder / "4.pth").unlink()
    (folder / "net_best.pth").unlink()
    (folder / ".net_last.pth.dead1234.tmp").write_bytes(b"left by a killed writer")
    resumed = main(_args(data_root, tmp_path, "run", "--total-iter", "4", "--eval-iter", "2", "--snapshot-iter", "4",
                         "--resume", str(folder / "net_last.pth")))
    assert resumed.step == 4 and resumed.losses == []
    assert load_checkpoint(folder / "4.pth")["step"] == 4 and load_checkpoint(folder / "net_best.pth")["step"] == 4
    assert not list(folder.glob(".*.tmp")), "temporary files of a dead writer are removed at start"


def test_bf16_training_keeps_fp32_weights_and_follows_the_fp32_run(data_root, tmp_path) -> None:
    """--precision bf16 runs end to end (autocast; the quantizer and the decoder's
    last layer in fp32): the checkpoint's weights stay fp32 (master weights), the
    log names the precision, and the first steps follow the fp32 run from the
    same seed to within bf16's rounding, while bf16 does change them."""
    runs = {p: main(_args(data_root, tmp_path, p, "--total-iter", "8", "--eval-iter", "8", "--precision", p))
            for p in ("fp32", "bf16")}
    state = torch.load(tmp_path / "bf16" / "net_last.pth", weights_only=False)
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float32}
    assert "precision bf16 (as asked)" in (tmp_path / "bf16" / "run.log").read_text()
    fp32, bf16 = np.asarray(runs["fp32"].losses), np.asarray(runs["bf16"].losses)
    assert np.isfinite(bf16).all() and len(bf16) == len(fp32) == 8
    relative = np.abs(bf16 - fp32) / fp32
    assert 0 < relative.max() < 0.01, relative          # measured: up to 0.16 % over the 8 steps
    assert abs(runs["bf16"].val["mae_deg"] - runs["fp32"].val["mae_deg"]) < 0.01 * runs["fp32"].val["mae_deg"]
