"""models.surrogate_refine on the tiny surrogate trained in ``conftest.trained``
and a test subject's own repetitions with their simulated activations (the
dataset's activations come from the same OpenSim pipeline as ``--verify``):
the refined copy fits the runs it is refined on, leaves the original and the
outputs it is not refined on untouched, the anchor bounds its drift, and bad
inputs are refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dataset.body_mass import subject_mass
from dataset.repetitions import load_repetitions
from models.surrogate import load_surrogate
from models.surrogate_refine import RefineConfig, peak_mad, refine_surrogate

WINDOW = 6


@pytest.fixture(scope="module")
def subject(trained):
    """(surrogate predicting vasmed_r, vasmed_l; motions (N, 196, 33); their simulated activations (N, 196, 2))."""
    root, _, sur, session = trained
    reps = load_repetitions(root, source="dynamics", sessions=[session.name])
    cols = [reps.muscles.index(m) for m in ("vasmed_r", "vasmed_l")]
    torch.set_num_threads(1)
    return load_surrogate(sur, "cpu").for_subject(subject_mass(session)), reps.motions, reps.activations[..., cols]


def test_refined_surrogate_fits_the_simulated_runs_and_leaves_the_original_alone(subject) -> None:
    model, x, y = subject
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pred0 = model.predict(x)
    refined, stats = refine_surrogate(model, x, y, [0, 1], WINDOW, RefineConfig(steps=200, lr=3e-3))
    pred1 = refined.predict(x)
    mad0, mad1 = peak_mad(pred0, y, WINDOW), peak_mad(pred1, y, WINDOW)
    print(f"peak MAD {mad0:.4f} -> {mad1:.4f}, frame MAE {np.abs(pred0 - y).mean():.4f} -> "
          f"{np.abs(pred1 - y).mean():.4f}, drift {stats.drift:.3f}")
    assert stats.examples == len(x) and stats.peak_mad_before == pytest.approx(mad0, abs=1e-5)
    assert stats.peak_mad_after == pytest.approx(mad1, abs=1e-5)
    assert mad1 < 0.5 * mad0 and stats.loss_after < 0.5 * stats.loss_before
    assert np.abs(pred1 - y).mean() < np.abs(pred0 - y).mean()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "the original changed"
    assert not refined.training and not any(p.requires_grad for p in refined.parameters())


def test_only_the_refined_outputs_are_trained(subject) -> None:
    model, x, y = subject
    refined, _ = refine_surrogate(model, x, y[..., :1], [0], WINDOW, RefineConfig(steps=50))
    head0, head1 = model.net.head, refined.net.head
    assert torch.equal(head0.weight[1], head1.weight[1]) and torch.equal(head0.bias[1], head1.bias[1])
    assert not torch.equal(head0.weight[0], head1.weight[0])


def test_a_stronger_anchor_keeps_the_copy_closer_to_the_original(subject) -> None:
    model, x, y = subject
    drifts = [refine_surrogate(model, x, y, [0, 1], WINDOW, RefineConfig(steps=100, anchor=a))[1].drift
              for a in (0.0, 1.0)]
    assert drifts[1] < 0.8 * drifts[0], drifts


def test_bad_refinement_inputs_are_refused(subject) -> None:
    model, x, y = subject
    for bad in ({"steps": 0}, {"lr": 0.0}, {"anchor": -1.0}, {"beta": 0.0}):
        with pytest.raises(ValueError, match="refinement needs"):
            RefineConfig(**bad)
    with pytest.raises(ValueError, match=r"targets \(N, T, 2\)"):
        refine_surrogate(model, x, y[..., :1], [0, 1], WINDOW)
    nan = y.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite targets"):
        refine_surrogate(model, x, nan, [0, 1], WINDOW)
