"""Shared test fixtures."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic MCS-layout dataset (4 subjects x 3 squats, seed 0),
    built once per test session with OpenSim by :mod:`dataset.synthetic.synthesize`."""
    from dataset.synthetic.synthesize import build_dataset

    root = tmp_path_factory.mktemp("mcs_synthetic")
    return build_dataset(root, n_subjects=4, n_reps=3, seed=0, workers=2, progress=False)
