"""Refine a surrogate on simulated activations of one subject's guided motions.

Guidance games the surrogate: motions optimised against it land in its band
where the OpenSim simulation often does not (docs/guidance.md, "Surrogate
refinement between verification rounds"). Every simulated run is a labelled
example exactly where the surrogate is wrong, so between verification rounds
a per-subject copy is fine-tuned on them (:func:`refine_surrogate`) and the
next runs are ranked and optimised against the copy.

The fine-tune is deliberately small: full-batch Adam for a few hundred steps
at a small learning rate, from the original weights every time, with an
L2-SP penalty ``anchor * sum((theta - theta_0)^2)`` (Li, Grandvalet and
Davoine 2018, "Explicit inductive bias for transfer learning with
convolutional networks") that keeps the copy near the original wherever the
few simulated runs say nothing. Rehearsal on training data is the
alternative; it is not used because a test subject's own activations must
never be seen and other subjects' data would pull the copy back to the
population average this refinement exists to correct. Dropout is off
(eval mode): with tens of examples the noise is larger than the signal.

The loss is the training loss of ``surrogate_training.py`` (smooth L1,
``beta`` activation units) on every frame of the guided muscles, plus the
same loss on their windowed peak (what the band judges), both only on the
guided muscles' outputs.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models import guidance_losses as L
from models.surrogate import SurrogateModel


@dataclass(frozen=True)
class RefineConfig:
    """Options of :func:`refine_surrogate` (defaults: ``--refine-*`` of ``LIMO_Surrogate.py``)."""

    steps: int = 300
    lr: float = 1e-3
    anchor: float = 1e-2
    """L2-SP weight on the summed squared change of every weight from the original."""
    beta: float = 0.05
    """Smooth-L1 threshold, activation units (``surrogate_training.py --loss-beta``)."""
    peak_weight: float = 1.0
    """Weight of the windowed-peak loss relative to the per-frame loss."""

    def __post_init__(self) -> None:
        if self.steps < 1 or not self.lr > 0 or self.anchor < 0 or not self.beta > 0 or self.peak_weight < 0:
            raise ValueError(f"refinement needs steps >= 1, lr > 0, anchor >= 0, beta > 0 and peak weight >= 0; "
                             f"got {self}")


@dataclass
class RefineStats:
    """What one :func:`refine_surrogate` did."""

    examples: int
    loss_before: float       # data loss (without the penalty) at the original weights
    loss_after: float        # data loss at the refined weights
    peak_mad_before: float   # mean |windowed peak - simulated| (mean over muscles) at the original weights
    peak_mad_after: float
    drift: float             # sqrt(sum (theta - theta_0)^2)
    seconds: float


def peak_mad(pred: np.ndarray | Tensor, target: np.ndarray | Tensor, window: int) -> float:
    """Mean absolute difference of the windowed peak (mean over muscles) of two
    sets of activations. (N, T, M), (N, T, M) -> scalar; NaN for N = 0."""
    if len(pred) == 0:
        return float("nan")
    a = L.peak_activation(torch.as_tensor(np.asarray(pred), dtype=torch.float32), window).mean(1)
    b = L.peak_activation(torch.as_tensor(np.asarray(target), dtype=torch.float32), window).mean(1)
    return float((a - b).abs().mean())


def _data_loss(pred: Tensor, target: Tensor, window: int, config: RefineConfig) -> Tensor:
    frames = F.smooth_l1_loss(pred, target, beta=config.beta)
    peaks = F.smooth_l1_loss(L.peak_activation(pred, window), L.peak_activation(target, window), beta=config.beta)
    return frames + config.peak_weight * peaks


def refine_surrogate(base: SurrogateModel, inputs: np.ndarray | Tensor, targets: np.ndarray | Tensor,
                     outputs: list[int], window: int, config: RefineConfig = RefineConfig()
                     ) -> tuple[SurrogateModel, RefineStats]:
    """A fine-tuned copy of ``base`` (``base`` is not changed).

    ``inputs`` (N, T, 33) degrees / metres, exactly what the surrogate sees
    in guidance (after any low-pass); ``targets`` (N, T, M) simulated
    activations of the outputs ``outputs`` (M channel indices of ``base``),
    in that order, all finite; ``window`` frames of the moving average whose
    peak the band holds. The loss touches only those outputs. Returns the copy
    (eval mode, frozen, on ``base``'s device) and :class:`RefineStats`.
    """
    start = time.perf_counter()
    device = next(base.buffers()).device
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float32, device=device)
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2] or y.shape[2] != len(outputs):
        raise ValueError(f"refinement needs inputs (N, T, 33) and targets (N, T, {len(outputs)}) of the same N, T; "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) == 0 or not torch.isfinite(y).all():
        raise ValueError(f"refinement needs at least one example and finite targets; got {len(x)} examples")
    model = copy.deepcopy(base).eval().requires_grad_(True)
    params = [p for p in model.parameters()]
    origin = [p.detach().clone() for p in params]
    cols = list(outputs)

    def data_loss() -> Tensor:
        return _data_loss(model(x)[..., cols], y, window, config)

    with torch.no_grad():
        pred0 = model(x)[..., cols]
        loss0 = float(_data_loss(pred0, y, window, config))
    opt = torch.optim.Adam(params, lr=config.lr)
    for _ in range(config.steps):
        loss = data_loss()
        if config.anchor > 0:
            loss = loss + config.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, origin))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    with torch.no_grad():
        pred1 = model(x)[..., cols]
        loss1 = float(_data_loss(pred1, y, window, config))
        drift = float(torch.sqrt(sum(((p - p0) ** 2).sum() for p, p0 in zip(params, origin))))
    stats = RefineStats(len(x), loss0, loss1, peak_mad(pred0.cpu(), y.cpu(), window),
                        peak_mad(pred1.cpu(), y.cpu(), window), drift, time.perf_counter() - start)
    return model, stats
