"""models/guidance_losses.py and the pure parts of models/guidance.py: every
loss term on small hand-made batches with known answers, the batched
nearest-latent search against brute force, the schedule and the ranking."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import guidance_losses as L
from models.guidance import (DEFAULT_WEIGHTS, GuidanceError, GuidanceResult, Schedule, TERMS, initial_latents,
                             rank_samples, weighted_total)
from utils.constants import COORD_INDEX, COORDINATES

T = 40


def _motion(batch: int = 2, frames: int = T) -> torch.Tensor:
    return torch.zeros(batch, frames, len(COORDINATES), dtype=torch.float64)


# ----------------------------------------------------------------------------- proximity


@pytest.mark.parametrize("unit", ["frame", "sequence"])
def test_nearest_latent_matches_brute_force_cdist(unit) -> None:
    g = torch.Generator().manual_seed(0)
    bank_lat = torch.randn(30, 8, 5, generator=g)
    z = torch.randn(7, 8, 5, generator=g)
    bank = L.LatentBank(bank_lat, unit=unit)
    if unit == "frame":
        q = z.transpose(1, 2).reshape(-1, 8)
        ref = torch.cdist(q.double(), bank.vectors.double()).argmin(1).reshape(7, 5)
    else:
        ref = torch.cdist(z.reshape(7, -1).double(), bank.vectors.double()).argmin(1)
    assert torch.equal(bank.nearest_index(z), ref)
    # chunking over the bank only (tiny memory budget) gives the same answer
    chunked = L.LatentBank(bank_lat, unit=unit, max_chunk_bytes=64)
    assert torch.equal(chunked.nearest_index(z), ref)


def test_proximity_is_zero_on_bank_latents_and_pulls_towards_the_nearest() -> None:
    g = torch.Generator().manual_seed(1)
    bank_lat = torch.randn(6, 4, 3, generator=g)
    bank = L.LatentBank(bank_lat, unit="frame")
    assert torch.allclose(L.proximity(bank_lat[:2], bank), torch.zeros(2), atol=1e-6)
    z = (bank_lat[:1] + 0.01 * torch.randn(1, 4, 3, generator=g)).requires_grad_(True)
    value = L.proximity(z, bank)
    value.sum().backward()
    diff = (z - bank_lat[:1]).detach()
    assert value.item() == pytest.approx(float((diff ** 2).mean()), rel=1e-5)
    assert torch.allclose(z.grad, 2 * diff / diff.numel(), atol=1e-7)


def test_sequence_proximity_measures_distance_to_a_whole_training_sequence() -> None:
    bank_lat = torch.stack([torch.zeros(2, 3), torch.ones(2, 3) * 10])
    bank = L.LatentBank(bank_lat, unit="sequence")
    z = torch.full((1, 2, 3), 9.0)
    assert L.proximity(z, bank).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="latent steps"):
        L.proximity(torch.zeros(1, 2, 4), bank)


def test_latent_bank_rejects_bad_shapes_and_units() -> None:
    with pytest.raises(ValueError, match="unit"):
        L.LatentBank(torch.zeros(2, 3, 4), unit="pixel")
    with pytest.raises(ValueError, match=r"\(N, C, L\)"):
        L.LatentBank(torch.zeros(0, 3, 4))
    bank = L.LatentBank(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="latents must be"):
        bank.nearest(torch.zeros(1, 5, 4))


# ----------------------------------------------------------------------------- kinematic terms


def test_temporal_smoothness_of_a_ramp() -> None:
    x = _motion()
    x[1, :, 0] = torch.arange(T) * 0.5  # 0.5 per frame on one of 33 channels
    out = L.temporal_smoothness(x)
    assert out[0] == 0 and out[1].item() == pytest.approx(0.25 / 33)


def test_pelvis_velocity_and_acceleration_in_si_units() -> None:
    fs = 60.0
    t = torch.arange(T, dtype=torch.float64) / fs
    x = _motion()
    x[0, :, COORD_INDEX["pelvis_tx"]] = 0.3 * t                 # constant 0.3 m/s
    x[1, :, COORD_INDEX["pelvis_ty"]] = 0.5 * 0.4 * t ** 2      # constant 0.4 m/s^2
    vel = L.pelvis_smoothness(x, fs)
    acc = L.pelvis_acceleration(x, fs, beta=1.0)
    assert vel[0].item() == pytest.approx(0.09)
    assert acc[0].item() == pytest.approx(0.0, abs=1e-9)
    # smooth-L1 below beta: 0.5 a^2 / beta on one of three axes
    assert acc[1].item() == pytest.approx(0.5 * 0.4 ** 2 / 3, rel=1e-6)
    x[1, :, COORD_INDEX["pelvis_ty"]] = 0.5 * 5.0 * t ** 2      # 5 m/s^2: linear part |a| - beta/2
    assert L.pelvis_acceleration(x, fs, beta=1.0)[1].item() == pytest.approx((5.0 - 0.5) / 3, rel=1e-6)


def test_symmetry_tilt_and_depth_reward_in_radians() -> None:
    x = _motion()
    for a, b in (("hip_flexion_l", "hip_flexion_r"), ("knee_angle_l", "knee_angle_r"),
                 ("ankle_angle_l", "ankle_angle_r")):
        x[:, :, COORD_INDEX[a]] = 30.0
        x[:, :, COORD_INDEX[b]] = 30.0
    x[1, :, COORD_INDEX["knee_angle_l"]] = 40.0  # 10 degrees asymmetry on one of three pairs
    sym = L.symmetry(x)
    assert sym[0] == 0 and sym[1].item() == pytest.approx(math.radians(10) ** 2 / 3)
    x[0, :, COORD_INDEX["pelvis_tilt"]] = -20.0
    assert L.pelvis_tilt(x)[0].item() == pytest.approx(math.radians(20) ** 2)
    deep = x.clone()
    deep[:, T // 2, COORD_INDEX["knee_angle_r"]] = 90.0
    depth = L.depth_reward(deep)
    expected0 = -math.radians((30 * 5 + 90) / 6)
    assert depth[0].item() == pytest.approx(expected0)
    assert (L.depth_reward(deep) < L.depth_reward(x)).all()  # deeper squat, larger reward


# ----------------------------------------------------------------------------- feet


def _feet(heights: torch.Tensor, xs: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, P) heights (m) -> (B, T, P, 3) points, x from ``xs``."""
    pts = torch.zeros(*heights.shape, 3, dtype=torch.float64)
    pts[..., 1] = heights
    if xs is not None:
        pts[..., 0] = xs
    return pts


def test_foot_penetration_and_float_in_centimetres() -> None:
    h = torch.zeros(2, T, 4, dtype=torch.float64)
    h[0, :, 0] = -0.01            # one of four points 1 cm below the floor
    h[1] += 0.03                  # whole foot 3 cm above the floor
    pen, flo = L.foot_penetration(_feet(h), 0.0), L.foot_float(_feet(h), 0.0)
    assert pen[0].item() == pytest.approx(0.25) and pen[1] == 0
    assert flo[0] == 0 and flo[1].item() == pytest.approx(9.0)
    # the floor height is respected
    assert L.foot_float(_feet(h), 0.03)[1].item() == pytest.approx(0.0, abs=1e-9)


def test_foot_sliding_counts_only_points_in_contact() -> None:
    h = torch.zeros(2, T, 1, dtype=torch.float64)
    h[1] += 0.10                                                  # foot in the air
    xs = (torch.arange(T, dtype=torch.float64) * 0.01).reshape(1, T, 1).expand(2, T, 1)  # 1 cm per frame
    slide = L.foot_sliding(_feet(h, xs), 0.0, tol=0.02)
    w = torch.sigmoid(torch.tensor(0.02 / 0.005)).item() ** 2    # soft contact weight on the floor
    assert slide[0].item() == pytest.approx(w * 1.0, rel=1e-6)    # 1 cm^2 per frame
    assert slide[1].item() == pytest.approx(0.0, abs=1e-6)
    assert L.foot_sliding(_feet(h, torch.zeros_like(xs)), 0.0)[0] == 0


# ----------------------------------------------------------------------------- band


def test_band_hinge_is_zero_inside_and_linear_outside() -> None:
    act = torch.zeros(3, T, 2, dtype=torch.float64)
    act[0, 10] = 0.40           # inside [0.35, 0.45] for both muscles
    act[1, 10] = torch.tensor([0.25, 0.40], dtype=torch.float64)   # one muscle 0.10 below
    act[2, 10] = torch.tensor([0.55, 0.65], dtype=torch.float64)   # 0.10 and 0.20 above
    act.requires_grad_(True)
    hinge = L.band_hinge(act, 0.35, 0.45)
    assert hinge.detach().tolist() == pytest.approx([0.0, 0.05, 0.15])
    assert L.in_band(act, 0.35, 0.45).tolist() == [True, False, False]
    hinge.sum().backward()
    assert act.grad[0].abs().sum() == 0                     # no push inside the band
    assert act.grad[1, 10, 0] < 0 and act.grad[2, 10, 1] > 0  # raise the low one, lower the high one
    assert act.grad[1, :10].abs().sum() == 0               # only the peak frame


def test_band_margin_aims_inside_the_band() -> None:
    act = torch.zeros(2, T, 1, dtype=torch.float64)
    act[0, 5] = 0.36   # inside [0.35, 0.45] but within the 0.025 margin of its edge
    act[1, 5] = 0.40
    assert L.band_hinge(act, 0.35, 0.45).tolist() == [0.0, 0.0]
    assert L.band_hinge(act, 0.35, 0.45, margin=0.025).tolist() == pytest.approx([0.015, 0.0])
    assert L.in_band(act, 0.35, 0.45).tolist() == [True, True]  # judged on the true band
    with pytest.raises(ValueError, match="margin"):
        L.band_hinge(act, 0.35, 0.45, margin=0.06)


def test_windowed_peak_holds_a_sustained_activation_not_a_spike() -> None:
    act = torch.zeros(2, T, 1, dtype=torch.float64)
    act[0, 10:14] = 0.40          # a 4-frame spike
    act[1, 10:30] = 0.40          # 20 frames held
    assert L.peak_activation(act).flatten().tolist() == [0.40, 0.40]
    assert L.peak_activation(act, 8).flatten().tolist() == pytest.approx([0.20, 0.40])
    assert L.in_band(act, 0.35, 0.45, frames=8).tolist() == [False, True]
    assert L.band_hinge(act, 0.35, 0.45, frames=8).tolist() == pytest.approx([0.15, 0.0])
    assert L.peak_activation(act, 10_000).flatten().tolist() == pytest.approx([1.6 / T, 8.0 / T])  # clipped to T
    act.requires_grad_(True)
    L.band_hinge(act, 0.35, 0.45, frames=8).sum().backward()
    g = act.grad[0, :, 0]
    # every frame of the best windows (starting at 6..10, tied) is pushed up, nothing outside them
    assert (g[6:18] < 0).all() and g[:6].abs().sum() == 0 and g[18:].abs().sum() == 0
    assert L.window_frames(0.1, 2.0 / 195) == 10 and L.window_frames(0.0, 0.02) == 1


def test_lowpass_matches_scipy_filtfilt_and_keeps_slow_motion() -> None:
    from scipy.signal import butter, sosfiltfilt

    fs, t = 60.0, torch.arange(196, dtype=torch.float64) / 60.0
    slow = torch.sin(2 * math.pi * 0.4 * t)       # the squat itself
    fast = 0.2 * torch.sin(2 * math.pi * 15.0 * t)  # decoder jitter
    x = (slow + fast)[None, :, None].repeat(1, 1, 2)
    x.requires_grad_(True)
    y = L.lowpass(x, fs, 6.0)
    assert (y - slow[None, :, None]).abs()[0, 20:-20].max() < 0.01  # jitter gone, squat kept
    ref = sosfiltfilt(butter(4, 6.0 / 30.0, output="sos"), x.detach().numpy()[0, :, 0], padtype="even")
    assert np.abs(y.detach().numpy()[0, 30:-30, 0] - ref[30:-30]).max() < 0.01
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert L.lowpass(x, fs, 0.0) is x and L.lowpass(x, fs, 30.0) is x  # off, or at Nyquist


def test_data_range_penalises_only_excursions_beyond_training_range() -> None:
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])
    x = torch.zeros(2, 4, 2)
    x[1, 0, 0] = 3.0  # 2 std beyond the top of coordinate 0, one frame of 4 x 2 values
    assert L.data_range(x, low, high).tolist() == pytest.approx([0.0, 0.5])


# ----------------------------------------------------------------------------- schedule, weights, init, ranking


def test_published_schedule_and_its_scaling() -> None:
    s = Schedule.published(3000)
    assert (s.proximity_only, s.ramp, s.final_proximity) == (500, 500, 1000)
    assert s.factor(0) == s.factor(499) == 0.0
    assert s.factor(500) == pytest.approx(1 / 500) and s.factor(749) == pytest.approx(0.5)
    assert s.factor(999) == 1.0 and s.factor(1999) == 1.0
    assert s.factor(2000) == 0.0 and s.factor(2999) == 0.0
    small = Schedule.published(120)
    assert (small.proximity_only, small.ramp, small.final_proximity) == (20, 20, 40)
    custom = Schedule.published(120, proximity_only=0, final_proximity=0)
    assert custom.factor(0) == pytest.approx(1 / 20) and custom.factor(119) == 1.0
    with pytest.raises(GuidanceError, match="add up to more"):
        Schedule.published(100, proximity_only=60, ramp=60)


def test_weighted_total_scales_non_proximity_terms_by_the_schedule() -> None:
    terms = {k: torch.ones(2) for k in TERMS}
    w = {k: 0.0 for k in TERMS}
    w.update(proximity=2.0, band=3.0, symmetry=1.0)
    assert weighted_total(terms, w, 0.0).tolist() == [2.0, 2.0]
    assert weighted_total(terms, w, 0.5).tolist() == [4.0, 4.0]


def test_initial_latents_are_subject_mean_plus_scaled_noise() -> None:
    g = torch.Generator().manual_seed(0)
    sub = torch.randn(5, 16, 10, generator=g) + 3.0
    z = initial_latents(sub, 400, (10.0, 200.0), unit_scale=0.01, generator=g)
    assert z.shape == (400, 16, 10)
    dev = (z - sub.mean(0)).reshape(400, -1).std(1)
    assert 0.08 < float(dev.min()) and float(dev.max()) < 2.2   # scales from U(0.1, 2.0)
    assert float(dev.mean()) == pytest.approx(1.05, abs=0.1)
    with pytest.raises(GuidanceError):
        initial_latents(sub, 2, (5.0, 1.0))


def _result(peaks: list[float], proximity: list[float]) -> GuidanceResult:
    r = len(peaks)
    act = np.zeros((r, 10, 1), dtype=np.float32)
    act[:, 3, 0] = peaks
    terms = {k: np.zeros(r) for k in TERMS}
    terms["proximity"] = np.asarray(proximity)
    return GuidanceResult(latents=np.zeros((r, 1, 1)), motions=np.zeros((r, 10, 33), dtype=np.float32),
                          activations=act, terms=terms)


def test_ranking_prefers_band_then_realism_and_orders_by_peak() -> None:
    res = _result(peaks=[0.10, 0.40, 0.42, 0.36, 0.60, 0.44],
                  proximity=[0.0, 5.0, 1.0, 2.0, 0.0, 3.0])
    keep = rank_samples(res, 3, 0.35, 0.45)
    # in band: runs 1, 2, 3, 5; most realistic three: 2, 3, 5; ordered by peak
    assert keep.tolist() == [3, 2, 5]
    # with the surrogate weight at 0 the band plays no part: realism only
    keep0 = rank_samples(res, 3, 0.35, 0.45, {**DEFAULT_WEIGHTS, "band": 0.0})
    assert sorted(keep0.tolist()) == [0, 2, 4]
    assert keep0.tolist() == [0, 2, 4]  # by peak 0.10 < 0.42 < 0.60
