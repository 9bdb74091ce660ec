"""The loss terms of guidance, each a small function on batched tensors.

Every term returns one value per sample, shape ``(B,)``, so that guidance can
weight, schedule, log and rank samples by each term separately. Batches of
latents are optimised independently: no term mixes samples.

Conventions (see also ``docs/guidance.md``):

* ``z``: continuous latents ``(B, C, L)`` (C = code dimension, L = latent steps).
* ``x``: motions ``(B, T, 33)`` in canonical coordinate order
  (:data:`utils.constants.COORDINATES`), rotations in **degrees**, pelvis
  translations in **metres**, sampled at ``fs`` Hz (guidance passes the
  subject's real rate, 195 frames over its mean repetition duration).
* ``points``: forward-kinematics positions ``(B, T, P, 3)`` in metres, y up.
* ``act``: surrogate activations ``(B, T, M)`` in [0, 1].

Angles inside the terms are converted to radians so that weights do not depend
on the unit convention; foot terms are in centimetres (a 1 cm error costs 1).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from models.latent_search import NearestSearch
from utils.constants import COORD_INDEX, FRAME_RATE, SYMMETRIC_PAIRS

DEG = math.pi / 180.0
PELVIS_T = [COORD_INDEX[n] for n in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
DEPTH_COORDS: tuple[str, ...] = ("hip_flexion_l", "hip_flexion_r", "knee_angle_l", "knee_angle_r",
                                 "ankle_angle_l", "ankle_angle_r")
"""Coordinates whose peak flexion the squat-depth reward increases (flexion positive)."""

PROXIMITY_UNITS = ("frame", "sequence")
SEARCHES = ("exact", "matmul")
"""Nearest-latent searches of :class:`LatentBank` (``exact`` is the default)."""


# ----------------------------------------------------------------------------- proximity


class LatentBank:
    """Precomputed training latents for nearest-neighbour search.

    ``latents`` (N, C, L): encoder outputs (pre-quantisation) of training clips.
    ``unit="frame"``: each latent step (a C-vector) of a query is matched to the
    nearest of the N*L training latent steps; ``unit="sequence"``: each whole
    query (C*L values) is matched to the nearest of the N training sequences.

    ``search="exact"`` (default): :class:`models.latent_search.NearestSearch`,
    the exact nearest entry (float64 distances, lowest index among ties) from a
    tiled fp32 scan with a proven error margin, reusing the previous call's
    candidates whenever a triangle-inequality check proves they still hold the
    nearest entry (guidance moves latents little per step), so most steps scan
    nothing. ``search="matmul"``: the earlier search, one fp32 distance
    product ``|q|^2 - 2 q.b + |b|^2`` against the whole bank per call (chunked
    only above ``max_chunk_bytes``), kept as the benchmarks' baseline; it can
    differ from the exact answer on near-ties within fp32 rounding.
    """

    def __init__(self, latents: Tensor, unit: str = "frame", max_chunk_bytes: int = 256 * 2**20,
                 search: str = "exact", candidates: int = 32, reuse: bool = True):
        if unit not in PROXIMITY_UNITS:
            raise ValueError(f"unknown proximity unit {unit!r}; expected one of {PROXIMITY_UNITS}")
        if search not in SEARCHES:
            raise ValueError(f"unknown latent search {search!r}; expected one of {SEARCHES}")
        if latents.ndim != 3 or latents.shape[0] == 0:
            raise ValueError(f"latent bank must be (N, C, L) with N > 0, got shape {tuple(latents.shape)}")
        self.unit, self.search = unit, search
        self.code_dim, self.seq_len = int(latents.shape[1]), int(latents.shape[2])
        lat = latents.detach().float()
        if unit == "frame":
            self.vectors = lat.transpose(1, 2).reshape(-1, self.code_dim).contiguous()  # (N*L, C)
        else:
            self.vectors = lat.reshape(lat.shape[0], -1).contiguous()  # (N, C*L)
        self.sqnorm = (self.vectors ** 2).sum(1)  # (N',)
        self.max_chunk_bytes = int(max_chunk_bytes)
        self.std = float(lat.std())
        self.searcher = NearestSearch(self.vectors, candidates=candidates, reuse=reuse)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def to(self, device: torch.device | str) -> "LatentBank":
        self.vectors = self.vectors.to(device)
        self.sqnorm = self.sqnorm.to(device)
        self.searcher.to(device)
        return self

    def _queries(self, z: Tensor) -> Tensor:
        if z.ndim != 3 or z.shape[1] != self.code_dim:
            raise ValueError(f"latents must be (B, {self.code_dim}, L), got shape {tuple(z.shape)}")
        if self.unit == "frame":
            return z.transpose(1, 2).reshape(-1, self.code_dim)
        if z.shape[2] != self.seq_len:
            raise ValueError(f"sequence proximity needs {self.seq_len} latent steps, got {z.shape[2]}")
        return z.reshape(z.shape[0], -1)

    @torch.no_grad()
    def nearest_index(self, z: Tensor) -> Tensor:
        """Index into ``self.vectors`` of the nearest bank entry of each query:
        (B, L) for ``frame``, (B,) for ``sequence``."""
        q = self._queries(z.detach()).float()
        with torch.autocast(device_type=q.device.type, enabled=False):
            if self.search == "exact":
                idx = self.searcher(q)
            else:
                idx = _batched_argmin(q, self.vectors, self.sqnorm, self.max_chunk_bytes)
        return idx if self.unit == "sequence" else idx.reshape(z.shape[0], z.shape[2])

    def nearest(self, z: Tensor) -> Tensor:
        """The nearest training latents, shaped like ``z`` (B, C, L); no gradient."""
        idx = self.nearest_index(z)
        if self.unit == "frame":
            return self.vectors[idx].transpose(1, 2)  # (B, L, C) -> (B, C, L)
        return self.vectors[idx].reshape(z.shape)


def _batched_argmin(q: Tensor, bank: Tensor, bank_sqnorm: Tensor, max_chunk_bytes: int) -> Tensor:
    """argmin_j |q_i - b_j|^2 for all i at once. (Q, D), (N, D), (N,) -> (Q,) long."""
    n = bank.shape[0]
    chunk = max(1, min(n, max_chunk_bytes // max(1, 4 * q.shape[0])))
    if chunk >= n:  # one matrix product against the whole bank
        return torch.addmm(bank_sqnorm.unsqueeze(0), q, bank.T, alpha=-2.0).argmin(1)
    best_d = torch.full((q.shape[0],), float("inf"), device=q.device)
    best_i = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, n, chunk):  # loop over bank chunks only, never over queries
        d = torch.addmm(bank_sqnorm[start:start + chunk].unsqueeze(0), q, bank[start:start + chunk].T, alpha=-2.0)
        val, idx = d.min(1)
        better = val < best_d
        best_d = torch.where(better, val, best_d)
        best_i = torch.where(better, idx + start, best_i)
    return best_i


def proximity(z: Tensor, bank: LatentBank) -> Tensor:
    """Mean squared distance of each latent to its nearest training latent,
    per latent element (latent units^2). (B, C, L) -> (B,)

    The nearest entry is found without gradient (one batched search); the
    gradient ``2 (z - nearest) / (C L)`` pulls ``z`` towards it.
    """
    target = bank.nearest(z)
    return ((z.float() - target) ** 2).mean(dim=(1, 2))


# ----------------------------------------------------------------------------- kinematic terms


def temporal_smoothness(x: Tensor) -> Tensor:
    """Mean squared first difference over time, in the units of ``x`` per frame,
    squared. (B, T, C) -> (B,). Guidance applies it to normalised coordinates so
    all 33 weigh alike."""
    return (x[:, 1:] - x[:, :-1]).pow(2).mean(dim=(1, 2))


def pelvis_smoothness(x: Tensor, fs: float = FRAME_RATE) -> Tensor:
    """Mean squared pelvis translation velocity, (m/s)^2. (B, T, 33) -> (B,)"""
    p = x[..., PELVIS_T]
    return ((p[:, 1:] - p[:, :-1]) * fs).pow(2).sum(-1).mean(1)


def pelvis_acceleration(x: Tensor, fs: float = FRAME_RATE, beta: float = 1.0) -> Tensor:
    """Smooth-L1 (Huber, ``beta`` m/s^2) of the pelvis translation's second
    difference, a centre-of-mass proxy, m/s^2. (B, T, 33) -> (B,)"""
    p = x[..., PELVIS_T]
    acc = (p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]) * fs * fs
    return F.smooth_l1_loss(acc, torch.zeros_like(acc), beta=beta, reduction="none").mean(dim=(1, 2))


def symmetry(x: Tensor, pairs: Sequence[tuple[str, str]] = SYMMETRIC_PAIRS) -> Tensor:
    """Mean squared left-right difference of hip flexion, knee and ankle angle,
    rad^2. (B, T, 33) -> (B,)"""
    left = x[..., [COORD_INDEX[a] for a, _ in pairs]]
    right = x[..., [COORD_INDEX[b] for _, b in pairs]]
    return ((left - right) * DEG).pow(2).mean(dim=(1, 2))


def pelvis_tilt(x: Tensor) -> Tensor:
    """Mean squared pelvis tilt (forward/backward lean of the pelvis), rad^2.
    (B, T, 33) -> (B,)"""
    return (x[..., COORD_INDEX["pelvis_tilt"]] * DEG).pow(2).mean(1)


def depth_reward(x: Tensor, coords: Sequence[str] = DEPTH_COORDS) -> Tensor:
    """Squat-depth reward: minus the mean over hip, knee and ankle (both sides)
    of the peak flexion over time, rad (more negative = deeper). (B, T, 33) -> (B,)"""
    peaks = x[..., [COORD_INDEX[c] for c in coords]].amax(1)  # (B, K)
    return -(peaks * DEG).mean(1)


def squat_depth(pelvis_ty: Tensor) -> Tensor:
    """Drop of the pelvis from its standing (highest) height, metres. (B, T) -> (B,)"""
    return pelvis_ty.amax(-1) - pelvis_ty.amin(-1)


# ----------------------------------------------------------------------------- foot contact


def foot_penetration(points: Tensor, floor: float | Tensor) -> Tensor:
    """Mean squared depth of foot points below the floor, cm^2.
    (B, T, P, 3) metres, y up -> (B,)"""
    below = F.relu(floor - points[..., 1]) * 100.0
    return below.pow(2).mean(dim=(1, 2))


def foot_float(points: Tensor, floor: float | Tensor) -> Tensor:
    """Mean squared height of the lowest foot point above the floor, cm^2: in a
    squat some part of each foot stays on the ground. (B, T, P, 3) -> (B,)"""
    lowest = points[..., 1].amin(-1)  # (B, T)
    return (F.relu(lowest - floor) * 100.0).pow(2).mean(1)


def contact_weight(points: Tensor, floor: float | Tensor, tol: float = 0.02, width: float = 0.005) -> Tensor:
    """Soft, gradient-free contact indicator of each foot point: ~1 within
    ``tol`` metres of the floor, ~0 above. (B, T, P, 3) -> (B, T, P)"""
    return torch.sigmoid((floor + tol - points[..., 1].detach()) / width)


def foot_sliding(points: Tensor, floor: float | Tensor, tol: float = 0.02) -> Tensor:
    """Mean squared horizontal (x, z) displacement per frame of foot points that
    are in contact at both frames, cm^2. (B, T, P, 3) -> (B,)"""
    c = contact_weight(points, floor, tol)
    both = c[:, 1:] * c[:, :-1]  # (B, T-1, P)
    step = (points[:, 1:][..., [0, 2]] - points[:, :-1][..., [0, 2]]) * 100.0
    return (both * step.pow(2).sum(-1)).mean(dim=(1, 2))


def lowpass(x: Tensor, fs: float, cutoff: float, order: int = 4) -> Tensor:
    """Zero-lag low-pass filter along time, differentiable: the magnitude of a
    ``order``-th order Butterworth filter applied forwards and backwards
    (``1 / (1 + (f / cutoff)^(2 order))``, what ``scipy.signal.filtfilt`` of
    that filter does to each frequency), in the frequency domain after
    even-symmetric padding by the whole clip on each side.
    ``cutoff`` <= 0 or at or above the Nyquist rate returns ``x``. (B, T, C) -> (B, T, C)"""
    if cutoff <= 0 or cutoff >= fs / 2:
        return x
    t = x.shape[1]
    padded = torch.cat([x.flip(1), x, x.flip(1)], dim=1)  # even extension: no jump at the edges
    freqs = torch.fft.rfftfreq(3 * t, d=1.0 / fs).to(x.device)
    gain = 1.0 / (1.0 + (freqs / cutoff) ** (2 * order))
    out = torch.fft.irfft(torch.fft.rfft(padded.float(), dim=1) * gain[None, :, None], n=3 * t, dim=1)
    return out[:, t:2 * t].to(x.dtype)


def data_range(x_norm: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Trust region of the surrogate in motion space: mean squared excursion
    of the normalised coordinates beyond the range ``[low, high]`` (C,) they
    take in the training data, (std)^2. (B, T, C) -> (B,)"""
    return (F.relu(x_norm - high) + F.relu(low - x_norm)).pow(2).mean(dim=(1, 2))


# ----------------------------------------------------------------------------- surrogate band


def window_frames(window_s: float, dt: float) -> int:
    """Frames of a moving window of ``window_s`` seconds at ``dt`` seconds per
    frame (real time), at least 1 (``window_s`` 0: the raw peak)."""
    if window_s < 0 or dt <= 0:
        raise ValueError(f"window {window_s} s and time step {dt} s must be >= 0 and > 0")
    return max(1, int(round(window_s / dt)))


def moving_average(act: Tensor, frames: int) -> Tensor:
    """Mean over every run of ``frames`` consecutive frames (valid windows only;
    ``frames`` beyond T is clipped to T). (B, T, M) -> (B, T - frames + 1, M)"""
    frames = min(int(frames), act.shape[1])
    if frames <= 1:
        return act
    return F.avg_pool1d(act.transpose(1, 2), frames, stride=1).transpose(1, 2)


def peak_activation(act: Tensor, frames: int = 1) -> Tensor:
    """Peak over time of each muscle's activation averaged over ``frames``
    consecutive frames (1: the raw peak). (B, T, M) -> (B, M)"""
    return moving_average(act, frames).amax(1)


def band_hinge(act: Tensor, low: float, high: float, margin: float = 0.0, frames: int = 1) -> Tensor:
    """Hinge ``max(a - (high - m), (low + m) - a, 0)`` on the peak activation
    ``a`` of each muscle, averaged over muscles; 0 inside the band narrowed by
    ``margin`` m on both sides (activation units, ``0 <= 2 m < high - low``).
    The margin makes the optimiser aim inside the band rather than stop at its
    edge, where the proximity term would pull it back out. ``frames`` > 1
    holds the peak of the activation's moving average over that many frames
    to the band (a sustained activation, not a spike). (B, T, M) -> (B,)"""
    if not 0.0 <= 2 * margin < high - low:
        raise ValueError(f"band margin {margin} must be >= 0 and leave part of the band [{low}, {high}]")
    a = peak_activation(act, frames)
    return (F.relu(a - (high - margin)) + F.relu((low + margin) - a)).mean(-1)


def in_band(act: Tensor, low: float, high: float, frames: int = 1) -> Tensor:
    """True where every muscle's peak activation (moving average over
    ``frames``) lies in [low, high]. (B, T, M) -> (B,) bool"""
    a = peak_activation(act, frames)
    return ((a >= low) & (a <= high)).all(-1)
