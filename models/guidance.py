"""Guidance ("LIMO" with a surrogate): optimise VQ-VAE latents so that the
decoded squats meet a band of peak muscle activation while staying realistic.

Read top to bottom:

1. :class:`Schedule` — the published schedule (proximity alone, linear ramp of
   the other terms, all terms, proximity alone at the end), scaled to any
   number of iterations, every phase overridable.
2. :class:`GuidanceObjective` — the frozen pieces (VQ-VAE quantiser and
   decoder, normaliser, surrogate, forward kinematics, latent bank, floor,
   band) and :meth:`GuidanceObjective.terms`, every loss term of a batch of
   latents, one value per sample.
3. :func:`initial_latents` and :func:`guide` — the batched Adam optimisation of
   ``(runs, code_dim, seq_len)`` latents, ``batch_size`` runs at a time.
4. :func:`rank_samples` — the best samples by constraint satisfaction, then
   realism, ordered by peak activation.
5. helpers a driver needs (:func:`estimate_floor`,
   :func:`subject_frame_rate`, :func:`latent_unit_scale`). The driver itself
   (checks, per-subject loop, verification, outputs) is ``LIMO_Surrogate.py``.

Units: latents in the VQ-VAE's latent units; motions (B, T, 33) canonical
order, degrees / metres; activations in [0, 1]. See ``docs/guidance.md``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from models import guidance_losses as L
from utils.constants import COORD_INDEX, FRAME_RATE
from utils.device import autocast
from utils.errors import BigeError

PELVIS_TY = COORD_INDEX["pelvis_ty"]

TERMS: tuple[str, ...] = (
    "proximity", "smoothness", "pelvis_smoothness", "pelvis_acceleration", "symmetry", "pelvis_tilt",
    "depth", "foot_penetration", "foot_float", "foot_sliding", "data_range", "band",
)
"""Loss terms in the order they are logged and written."""

DEFAULT_WEIGHTS: dict[str, float] = {
    "proximity": 1.0,
    "smoothness": 1.0,
    "pelvis_smoothness": 0.1,
    "pelvis_acceleration": 1.0,  # published 0.1; 1 and foot_sliding 10 measured smoother, closer to simulation
    "symmetry": 10.0,
    "pelvis_tilt": 1.0,
    "depth": 0.0,  # published 0.5: the unbounded reward drives squats deeper than the surrogate knows (docs/guidance.md)
    "foot_penetration": 0.1,
    "foot_float": 0.1,
    "foot_sliding": 10.0,  # published 0.1 (docs/guidance.md, "Smooth and planted motion")
    "data_range": 0.0,
    "band": 100.0,
}
"""Default weight of each term (the weighted sum of a sample is its loss)."""

TERM_HELP: dict[str, str] = {
    "proximity": "weight of the mean squared distance (latent units^2, per element) of each latent to its nearest "
                 "training latent; always on",
    "smoothness": "weight of the mean squared frame-to-frame change of all 33 normalised coordinates",
    "pelvis_smoothness": "weight of the mean squared pelvis translation velocity, (m/s)^2",
    "pelvis_acceleration": "weight of the smooth-L1 pelvis acceleration (second difference), m/s^2",
    "symmetry": "weight of the mean squared left-right difference of hip flexion, knee and ankle angle, rad^2",
    "pelvis_tilt": "weight of the mean squared pelvis tilt, rad^2",
    "depth": "weight of the squat-depth reward: minus the mean peak hip/knee/ankle flexion, rad (published: 0.5; "
             "off by default because it pushes squats past the depths the surrogate was trained on, where its "
             "activations fall far below the simulation's; see docs/guidance.md)",
    "foot_penetration": "weight of the mean squared depth of foot points below the floor, cm^2",
    "foot_float": "weight of the mean squared height of the lowest foot point above the floor, cm^2",
    "foot_sliding": "weight of the mean squared horizontal displacement per frame of foot points in contact, cm^2",
    "data_range": "weight of the surrogate's trust region: mean squared excursion (std^2) of the normalised "
                  "coordinates beyond the range they take in the training data, where the surrogate was never "
                  "trained (0 = off, the published objective)",
    "band": "weight of the surrogate hinge max(a - high, low - a, 0) on the peak activation a of --muscles "
            "(0 = unguided by the surrogate)",
}

INIT_UNITS = ("percent-std", "absolute")
QUANTIZER_GRADS = ("straight-through", "relaxed")
"""How the gradient passes the quantiser: the published straight-through
estimator, or a soft assignment's gradient (:meth:`models.vqvae.VQVAE.quantize_relaxed`)."""
FLOOR_ALIGN = ("frame", "clip", "none")
PUBLISHED_TOTAL = 3000
PUBLISHED_PHASES = (500, 500, 1000)
"""Proximity-only, ramp and final proximity-only iterations of the published 3000-iteration schedule."""


class GuidanceError(BigeError, ValueError):
    """Guidance cannot run with the given inputs; the message says why."""


# ----------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """Weight factor of the non-proximity terms per iteration.

    Iterations ``[0, proximity_only)``: 0 (proximity alone); the next ``ramp``:
    rising linearly from ``1/ramp`` to 1; then 1; the last ``final_proximity``:
    0 again. The proximity term always has factor 1.
    """

    total: int
    proximity_only: int
    ramp: int
    final_proximity: int

    def __post_init__(self) -> None:
        phases = (self.proximity_only, self.ramp, self.final_proximity)
        if self.total < 1 or min(phases) < 0:
            raise GuidanceError(f"schedule needs total >= 1 and phases >= 0, got total {self.total}, phases {phases}")
        if sum(phases) > self.total:
            raise GuidanceError(f"schedule phases {phases} (proximity-only, ramp, final proximity-only) add up to "
                                f"more than the {self.total} iterations")

    @classmethod
    def published(cls, total: int, proximity_only: int | None = None, ramp: int | None = None,
                  final_proximity: int | None = None) -> "Schedule":
        """The published 500 / 500 / 1000 of 3000 phases scaled to ``total``;
        any phase given explicitly overrides its scaled value."""
        scaled = [int(round(p * total / PUBLISHED_TOTAL)) for p in PUBLISHED_PHASES]
        given = (proximity_only, ramp, final_proximity)
        return cls(total, *[s if g is None else int(g) for s, g in zip(scaled, given)])

    def factor(self, it: int) -> float:
        """Factor of the non-proximity terms at iteration ``it`` (0-based)."""
        if it < self.proximity_only or it >= self.total - self.final_proximity:
            return 0.0
        if it < self.proximity_only + self.ramp:
            return (it - self.proximity_only + 1) / self.ramp
        return 1.0


# ----------------------------------------------------------------------------- objective


class GuidanceObjective:
    """The frozen models and constants the loss terms need.

    ``vqvae`` provides ``quantize`` (straight-through) and ``decode_latent``;
    ``normalizer`` maps its normalised output to degrees / metres; ``surrogate``
    maps (B, T, 33) degrees / metres to (B, T, M) activations; ``fk`` maps
    (..., 33) to (..., P, 3) metres (y up); ``foot_points`` are the indices of
    the foot points among ``fk``'s points; ``floor`` is the floor height (m);
    ``bank`` the training latents. Foot terms are evaluated on every
    ``contact_stride``-th frame (forward kinematics is the costliest term after
    the decoder); sliding is then divided by ``contact_stride**2`` so that it
    stays a per-frame displacement for smooth motion.

    ``floor_align`` retargets the decoded pelvis height to this subject's
    model: the VQ-VAE's ``pelvis_ty`` carries the leg length of whichever
    training subjects its codes came from, so on another model the feet float
    or sink. ``frame`` shifts ``pelvis_ty`` at every frame so that the lowest
    foot point touches the floor (feet on the floor by construction; the
    penetration and float terms are then 0 and only sliding remains);
    ``clip`` shifts the whole clip by one height (median over frames), leaving
    per-frame contact to the foot terms; ``none`` decodes as is. ``frame``
    needs forward kinematics on every frame (``contact_stride`` is ignored).

    ``quantizer_grad`` (:data:`QUANTIZER_GRADS`) says how the gradient passes
    the quantiser (``relaxed``: a soft assignment's gradient with temperature
    ``relax_temperature``; ``straight-through``: the published estimator);
    ``band_margin`` (a fraction of the band width) narrows the band the hinge
    aims at on both sides; samples are still judged on ``[low, high]``.

    ``fs`` is the subject's real frame rate (Hz: frames - 1 over its mean
    repetition duration), used by the pelvis rate terms and to turn
    ``peak_window`` (s) into frames: the band holds the peak of the
    activation's moving average over that window (0: the raw peak).
    """

    def __init__(self, vqvae, normalizer, surrogate, muscles: Sequence[str], fk, bank: L.LatentBank,
                 low: float, high: float, floor: float, foot_points: Sequence[int] | None = None,
                 precision: str = "fp32", contact_tol: float = 0.02, contact_stride: int = 1,
                 floor_align: str = "frame", fs: float = FRAME_RATE, band_margin: float = 0.25,
                 quantizer_grad: str = "relaxed", relax_temperature: float = 0.05,
                 peak_window: float = 0.0, surrogate_lowpass: float = 0.0,
                 data_range: tuple[np.ndarray, np.ndarray] | None = None):
        self.device = next(vqvae.parameters()).device
        self.vqvae = vqvae.eval().requires_grad_(False)
        self.surrogate = surrogate.eval().requires_grad_(False)
        self.fk = fk.to(self.device)
        self.muscles = tuple(muscles)
        self.muscle_idx = surrogate.muscle_indices(list(muscles))
        self.foot_idx = list(foot_points) if foot_points is not None else list(fk.foot_contact_indices())
        if not self.foot_idx:
            raise GuidanceError("the kinematic model defines no foot contact points (heel/toe stations)")
        self.bank = bank.to(self.device)
        self.low, self.high, self.floor = float(low), float(high), float(floor)
        self.band_margin = float(band_margin) * (self.high - self.low)
        if quantizer_grad not in QUANTIZER_GRADS:
            raise GuidanceError(f"unknown quantiser gradient {quantizer_grad!r}; expected one of {QUANTIZER_GRADS}")
        self.quantizer_grad, self.relax_temperature = quantizer_grad, float(relax_temperature)
        if not 0.0 <= band_margin < 0.5:
            raise GuidanceError(f"band margin {band_margin} must be in [0, 0.5) of the band width")
        self.contact_tol, self.fs = float(contact_tol), float(fs)
        if peak_window < 0 or not self.fs > 0:
            raise GuidanceError(f"peak window {peak_window} s must be >= 0 and frame rate {fs} Hz > 0")
        self.peak_window = float(peak_window)
        self.window = L.window_frames(self.peak_window, 1.0 / self.fs)
        if surrogate_lowpass < 0:
            raise GuidanceError(f"surrogate low-pass cut-off must be >= 0 Hz, got {surrogate_lowpass}")
        self.surrogate_lowpass = float(surrogate_lowpass)
        self.range = None if data_range is None else tuple(
            torch.as_tensor(np.asarray(r), dtype=torch.float32, device=self.device) for r in data_range)
        if contact_stride < 1:
            raise GuidanceError(f"contact stride must be >= 1 frame, got {contact_stride}")
        self.contact_stride = int(contact_stride)
        if floor_align not in FLOOR_ALIGN:
            raise GuidanceError(f"unknown floor alignment {floor_align!r}; expected one of {FLOOR_ALIGN}")
        self.floor_align = floor_align
        self.precision = precision
        self._autocast = lambda: autocast(self.device, precision)
        self.mean = torch.as_tensor(np.asarray(normalizer.mean), dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(np.asarray(normalizer.std), dtype=torch.float32, device=self.device)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latents (B, C, L) -> (normalised (B, T, 33), degrees / metres (B, T, 33)), fp32,
        before floor alignment; gradient flows to ``z`` through the quantiser as ``quantizer_grad`` says."""
        with self._autocast():
            if self.quantizer_grad == "relaxed":
                z_q, _ = self.vqvae.quantize_relaxed(z, self.relax_temperature)
            else:
                z_q, _ = self.vqvae.quantize(z)
            x_norm = self.vqvae.decode_latent(z_q).float()
        return x_norm, x_norm * self.std + self.mean

    def surrogate_input(self, x_deg: Tensor) -> Tensor:
        """What the surrogate sees of a motion: low-pass filtered at
        ``surrogate_lowpass`` Hz when set (what a simulation's own kinematics
        filter leaves of it). (B, T, 33) -> (B, T, 33)"""
        return L.lowpass(x_deg, self.fs, self.surrogate_lowpass)

    def activations(self, x_deg: Tensor) -> Tensor:
        """Surrogate activations of the guided muscles of the motion as
        :meth:`surrogate_input` gives it. (B, T, 33) -> (B, T, M)"""
        x_deg = self.surrogate_input(x_deg)
        with self._autocast():
            act = self.surrogate(x_deg)
        return act[..., self.muscle_idx].float()

    def with_surrogate(self, surrogate) -> "GuidanceObjective":
        """The same objective with another surrogate (e.g. one refined on
        simulated runs, :mod:`models.surrogate_refine`) predicting the same
        muscles; ``self`` is unchanged."""
        other = copy.copy(self)
        other.surrogate = surrogate.eval().requires_grad_(False)
        other.muscle_idx = surrogate.muscle_indices(list(self.muscles))
        return other

    @torch.no_grad()
    def predict(self, motions: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Surrogate activations of decoded motions as guidance computes them
        (:meth:`activations`). (N, T, 33) degrees / metres -> (N, T, M) float32"""
        out = [self.activations(torch.as_tensor(motions[i:i + batch_size], dtype=torch.float32,
                                                device=self.device)).cpu()
               for i in range(0, len(motions), batch_size)]
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, *motions.shape[1:2],
                                                                                len(self.muscles)), np.float32)

    def foot_positions(self, x_deg: Tensor, stride: int | None = None) -> Tensor:
        """Foot contact points at every ``stride``-th frame (default ``contact_stride``).
        (B, T, 33) -> (B, ceil(T / stride), F, 3) metres"""
        stride = self.contact_stride if stride is None else stride
        return self.fk(x_deg[:, ::stride], points=self.foot_idx)

    def motion(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoded and floor-aligned motion with its foot points:
        (B, C, L) -> (normalised (B, T, 33), degrees / metres (B, T, 33), feet (B, T', F, 3))."""
        x_norm, x = self.decode(z)
        if self.floor_align == "none":
            return x_norm, x, self.foot_positions(x)
        stride = 1 if self.floor_align == "frame" else self.contact_stride
        feet = self.foot_positions(x, stride)
        lift = feet[..., 1].amin(-1) - self.floor  # (B, T') lowest foot point above the floor
        if self.floor_align == "clip":
            lift = lift.median(1, keepdim=True).values.expand(-1, x.shape[1])
        shift = torch.zeros_like(x)
        shift[..., PELVIS_TY] = lift
        x = x - shift
        lift_feet = lift[:, :feet.shape[1], None]  # the same vertical shift moves every foot point
        feet = torch.cat([feet[..., :1], feet[..., 1:2] - lift_feet[..., None], feet[..., 2:]], -1)
        return x_norm - shift / self.std, x, feet

    def terms(self, z: Tensor, proximity_only: bool = False) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Every loss term of latents ``z`` (B, C, L), each (B,) unweighted.

        With ``proximity_only`` only ``proximity`` is computed (nothing is decoded).
        Returns ``(terms, extras)``; ``extras`` holds ``motion`` (B, T, 33) degrees /
        metres (floor-aligned) and ``activation`` (B, T, M) when decoded.
        """
        out = {"proximity": L.proximity(z, self.bank)}
        if proximity_only:
            return out, {}
        x_norm, x, feet = self.motion(z)
        act = self.activations(x)
        stride = -(-x.shape[1] // feet.shape[1])  # frames between evaluated foot positions
        out.update(
            smoothness=L.temporal_smoothness(x_norm),
            pelvis_smoothness=L.pelvis_smoothness(x, self.fs),
            pelvis_acceleration=L.pelvis_acceleration(x, self.fs),
            symmetry=L.symmetry(x),
            pelvis_tilt=L.pelvis_tilt(x),
            depth=L.depth_reward(x),
            foot_penetration=L.foot_penetration(feet, self.floor),
            foot_float=L.foot_float(feet, self.floor),
            foot_sliding=L.foot_sliding(feet, self.floor, self.contact_tol) / stride ** 2,
            data_range=(L.data_range(x_norm, *self.range) if self.range is not None
                        else torch.zeros(x.shape[0], device=x.device)),
            band=L.band_hinge(act, self.low, self.high, self.band_margin, self.window),
        )
        return out, {"motion": x, "activation": act}


def weighted_total(terms: Mapping[str, Tensor], weights: Mapping[str, float], factor: float) -> Tensor:
    """Per-sample loss: ``w_prox * proximity + factor * sum(w_k * term_k)``. -> (B,)"""
    total = weights["proximity"] * terms["proximity"]
    if factor > 0:
        for name, value in terms.items():
            if name != "proximity" and weights.get(name, 0.0) != 0.0:
                total = total + factor * weights[name] * value
    return total


# ----------------------------------------------------------------------------- optimisation


def initial_latents(subject_latents: Tensor, runs: int, noise: tuple[float, float], unit_scale: float = 1.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """Starting latents: the mean of the subject's encoder latents plus Gaussian
    noise whose scale, drawn per run from U(noise), is multiplied by ``unit_scale``.
    (n, C, L) -> (runs, C, L)"""
    lo, hi = noise
    if not 0 <= lo <= hi:
        raise GuidanceError(f"initial noise range must satisfy 0 <= low <= high, got {noise}")
    mean = subject_latents.float().mean(0)
    scale = torch.empty(runs, 1, 1).uniform_(lo, hi, generator=generator) * unit_scale
    eps = torch.randn((runs, *mean.shape), generator=generator)
    return mean.cpu() + scale * eps


@dataclass
class GuidanceResult:
    """Outcome of :func:`guide` for ``R`` runs."""

    latents: np.ndarray            # (R, C, L) final latents
    motions: np.ndarray            # (R, T, 33) float32 degrees / metres
    activations: np.ndarray        # (R, T, M) surrogate activations of the guided muscles
    terms: dict[str, np.ndarray]   # name -> (R,) final unweighted terms
    history: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (K,) mean over runs
    history_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    seconds: float = 0.0
    window: int = 1                # frames of the moving average whose peak the band holds

    @property
    def peaks(self) -> np.ndarray:
        """Peak of each guided muscle's activation averaged over ``window``
        frames: what the band judges. (R, M)"""
        return L.peak_activation(torch.as_tensor(self.activations), self.window).numpy()

    @property
    def raw_peaks(self) -> np.ndarray:
        """Peak activation of each guided muscle, frame by frame. (R, M)"""
        return self.activations.max(1)


def guide(objective: GuidanceObjective, z0: Tensor, weights: Mapping[str, float], schedule: Schedule,
          lr: float = 0.5, batch_size: int = 256, log_every: int = 10, progress: bool = True,
          desc: str = "guidance", on_log: Callable[[int, dict[str, float]], None] | None = None,
          reset_for_final: bool = True, position: int | None = None) -> GuidanceResult:
    """Optimise the latents ``z0`` (R, C, L), ``batch_size`` runs at a time.

    Each batch is one tensor optimised by Adam for ``schedule.total``
    iterations; the loss is the sum over samples of :func:`weighted_total`, so
    samples do not interact. With ``reset_for_final`` Adam's moment estimates
    are reset when the final proximity-only phase begins: the second moments
    of the guided phase (large band and contact gradients) would otherwise
    shrink the steps back towards the training latents for hundreds of
    iterations. Iterations whose factor is 0 compute the
    proximity term only (no decoding). Every ``log_every`` iterations the mean
    of every term over the batch is recorded (and averaged over batches, weighted
    by batch size, into ``history``). The final latents are decoded and every
    term evaluated once more. ``position``: the terminal line of the progress
    bar (tqdm's; processes guiding in parallel use one line each).
    """
    from tqdm.auto import tqdm

    unknown = set(weights) - set(TERMS)
    if unknown:
        raise GuidanceError(f"unknown loss term(s) {sorted(unknown)}; known: {TERMS}")
    weights = {**{k: 0.0 for k in TERMS}, **dict(weights)}
    device = objective.device
    runs = z0.shape[0]
    batch_size = max(1, min(batch_size, runs))
    n_batches = math.ceil(runs / batch_size)
    log_steps = sorted(set(range(0, schedule.total, max(1, log_every))) | {schedule.total - 1})
    hist_sum = {k: np.zeros(len(log_steps)) for k in (*TERMS, "total", "in_band")}
    finals: list[tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]] = []
    start = time.perf_counter()
    bar = tqdm(total=n_batches * schedule.total, desc=desc, disable=not progress, unit="it", leave=False,
               position=position)
    for b in range(n_batches):
        z = z0[b * batch_size:(b + 1) * batch_size].to(device=device, dtype=torch.float32).clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        k_log = 0
        for it in range(schedule.total):
            factor = schedule.factor(it)
            if reset_for_final and it == schedule.total - schedule.final_proximity and it > 0:
                opt = torch.optim.Adam([z], lr=lr)  # forget the moments of the guided phase
            terms, extras = objective.terms(z, proximity_only=factor == 0.0)
            loss = weighted_total(terms, weights, factor).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if k_log < len(log_steps) and it == log_steps[k_log]:
                if factor == 0.0:  # record every term even when only proximity is optimised
                    with torch.no_grad():
                        terms, extras = objective.terms(z.detach())
                stats = {k: float(v.detach().mean()) for k, v in terms.items()}
                stats["total"] = float(weighted_total(terms, weights, factor).detach().mean())
                stats["in_band"] = float(L.in_band(extras["activation"], objective.low, objective.high,
                                                   objective.window).float().mean())
                for k, v in stats.items():
                    hist_sum[k][k_log] += v * z.shape[0]
                if on_log is not None:
                    on_log(it, stats)
                bar.set_postfix(loss=f"{stats['total']:.3g}", band=f"{stats['in_band']:.2f}", refresh=False)
                k_log += 1
            opt.step()
            bar.update(1)
        with torch.no_grad():
            terms, extras = objective.terms(z.detach())
        finals.append((z.detach().cpu(), {k: v.cpu() for k, v in terms.items()},
                       {k: v.cpu() for k, v in extras.items()}))
    bar.close()
    return GuidanceResult(
        latents=torch.cat([f[0] for f in finals]).numpy(),
        motions=torch.cat([f[2]["motion"] for f in finals]).numpy().astype(np.float32),
        activations=torch.cat([f[2]["activation"] for f in finals]).numpy().astype(np.float32),
        terms={k: torch.cat([f[1][k] for f in finals]).numpy() for k in TERMS},
        history={k: v / runs for k, v in hist_sum.items()},
        history_steps=np.asarray(log_steps),
        seconds=time.perf_counter() - start,
        window=objective.window,
    )


# ----------------------------------------------------------------------------- ranking


def peaks_in_band(peaks: np.ndarray, low: float, high: float) -> np.ndarray:
    """True where every muscle's peak lies in ``[low, high]``. (R, M) -> (R,) bool"""
    peaks = np.asarray(peaks)
    return ((peaks >= low) & (peaks <= high)).all(1)


def candidate_order(result: GuidanceResult, low: float, high: float,
                    weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Every run, best first: smallest band violation (mean over muscles of
    the hinge on the final windowed peaks; 0 inside the band), then most
    realistic (smallest ``w_prox * proximity + w_smooth * smoothness``,
    ``weights`` or the defaults). With a band weight of 0 (unguided by the
    surrogate) the band plays no part: realism alone. -> (R,) indices"""
    w = {**DEFAULT_WEIGHTS, **dict(weights or {})}
    peaks = result.peaks
    violation = (np.maximum(peaks - high, 0) + np.maximum(low - peaks, 0)).mean(1)
    if w["band"] == 0:
        violation = np.zeros_like(violation)
    realism = w["proximity"] * result.terms["proximity"] + w["smoothness"] * result.terms["smoothness"]
    return np.lexsort((realism, violation))


def order_by_peak(result: GuidanceResult, runs: np.ndarray) -> np.ndarray:
    """``runs`` ordered by their mean windowed peak activation, lowest first."""
    runs = np.asarray(runs, dtype=int)
    return runs[np.argsort(result.peaks[runs].mean(1), kind="stable")]


def rank_samples(result: GuidanceResult, n: int, low: float, high: float,
                 weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Indices of the ``n`` best runs (:func:`candidate_order`), ordered by
    peak activation (ascending)."""
    return order_by_peak(result, candidate_order(result, low, high, weights)[: max(0, n)])


def rescore(result: GuidanceResult, objective: GuidanceObjective) -> GuidanceResult:
    """``result`` with the activations of its motions as ``objective``'s
    surrogate predicts them (e.g. a refined one), to rank with
    :func:`candidate_order`; latents, motions and terms are shared, not copied."""
    return GuidanceResult(latents=result.latents, motions=result.motions,
                          activations=objective.predict(result.motions), terms=result.terms,
                          history=result.history, history_steps=result.history_steps, seconds=result.seconds,
                          window=result.window)


def merge_results(a: GuidanceResult, b: GuidanceResult) -> GuidanceResult:
    """The runs of ``a`` followed by those of ``b`` (history and window of ``a``, times added)."""
    return GuidanceResult(
        latents=np.concatenate([a.latents, b.latents]), motions=np.concatenate([a.motions, b.motions]),
        activations=np.concatenate([a.activations, b.activations]),
        terms={k: np.concatenate([a.terms[k], b.terms[k]]) for k in a.terms},
        history=a.history, history_steps=a.history_steps, seconds=a.seconds + b.seconds, window=a.window)


# ----------------------------------------------------------------------------- helpers for the driver


@torch.no_grad()
def estimate_floor(fk, motions: np.ndarray, foot_points: Sequence[int] | None = None) -> float:
    """Floor height (m): median over all frames of the lowest foot point of
    ``motions`` (N, T, 33) degrees / metres (in a squat the feet stay down)."""
    idx = list(foot_points) if foot_points is not None else list(fk.foot_contact_indices())
    pts = fk(torch.as_tensor(np.asarray(motions), dtype=torch.float64))[..., idx, 1]
    return float(pts.amin(-1).median())


def subject_frame_rate(duration: float | None, frames: int) -> float:
    """Real frame rate (Hz) of a ``frames``-frame clip spanning a subject's mean
    repetition ``duration`` (s); :data:`FRAME_RATE` when the duration is unknown."""
    if duration is None or not np.isfinite(duration) or duration <= 0:
        return FRAME_RATE
    return (frames - 1) / float(duration)


def latent_unit_scale(unit: str, bank: L.LatentBank) -> float:
    """Latent units per unit of ``--lr`` / ``--init-noise``: 1 for ``absolute``,
    1 % of the bank's standard deviation for ``percent-std``."""
    if unit not in INIT_UNITS:
        raise GuidanceError(f"unknown latent unit {unit!r}; expected one of {INIT_UNITS}")
    return bank.std / 100.0 if unit == "percent-std" else 1.0


