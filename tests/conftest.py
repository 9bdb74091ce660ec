"""Shared test fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic MCS-layout dataset (4 subjects x 3 squats, seed 0),
    built once per test session with OpenSim by :mod:`dataset.synthetic.synthesize`."""
    from dataset.synthetic.synthesize import build_dataset

    root = tmp_path_factory.mktemp("mcs_synthetic")
    return build_dataset(root, n_subjects=4, n_reps=3, seed=0, workers=2, progress=False)


@pytest.fixture(scope="session")
def trained(synthetic_root, tmp_path_factory):
    """(data root, VQ-VAE checkpoint, surrogate checkpoint, a test session folder): a tiny
    VQ-VAE and a tiny vasmed surrogate trained with their own training functions on
    :func:`synthetic_root`, once per test session (guidance and refinement tests share them)."""
    import torch

    from dataset.mcs import discover
    from dataset.split import split_sessions
    from options.surrogate import get_args_parser as sur_parser
    from options.vq import get_args_parser as vq_parser
    from surrogate_training import main as sur_main
    from train_vq import main as vq_main

    root = Path(synthetic_root)
    out = tmp_path_factory.mktemp("guidance_models")
    torch.set_num_threads(1)  # tiny models: a second thread only adds synchronisation
    vq_main(vq_parser().parse_args([
        "--data-root", str(root), "--out-dir", str(out), "--exp-name", "vq", "--width", "48", "--code-dim", "16",
        "--nb-code", "32", "--depth", "2", "--batch-size", "8", "--total-iter", "300", "--warm-up-iter", "20",
        "--lr", "2e-3", "--lr-scheduler", "250", "--eval-iter", "300", "--print-iter", "100",
        "--snapshot-iter", "1000", "--no-progress", "--device", "cpu"]))
    sur_main(sur_parser().parse_args([
        "--data-root", str(root), "--out-dir", str(out), "--exp-name", "sur", "--muscles", "vasmed_r", "vasmed_l",
        "--hidden", "32", "--epochs", "60", "--batch-size", "4", "--plot-reps", "0", "--device", "cpu"]))
    _, test = split_sessions([s.id for s in discover(root)], root=root)
    return root, out / "vq" / "net_last.pth", out / "sur" / "net_best.pth", root / "Data" / test[0]
