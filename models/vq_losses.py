"""The VQ-VAE's training loss (``train_vq.py``): reconstruction, velocity,
acceleration matching, smoothness, depth, pelvis acceleration, foot sliding
and commitment, each weighted by its ``--loss-*`` flag. See ``docs/vqvae.md``.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
import torch.nn.functional as F

from models.guidance_losses import foot_sliding, pelvis_acceleration
from utils.constants import COORD_INDEX, FRAME_RATE
from utils.errors import UserError


def recons_loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``l1`` | ``l2`` | ``l1_smooth`` (Huber, beta 1) on normalised features."""
    fns = {"l1": F.l1_loss, "l2": F.mse_loss, "l1_smooth": F.smooth_l1_loss}
    if name not in fns:
        raise UserError(f"unknown reconstruction loss {name!r}; expected one of {sorted(fns)}")
    return fns[name]


def second_difference(x: torch.Tensor) -> torch.Tensor:
    """``x[t+1] - 2 x[t] + x[t-1]`` along time. (B, T, C) -> (B, T-2, C)"""
    return x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]


ACC_DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss, "l2": F.mse_loss}
"""``--acc-loss`` name -> the distance :func:`acceleration_loss` takes between second differences."""


def acceleration_loss(x_hat: torch.Tensor, x: torch.Tensor, distance: str = "l1") -> torch.Tensor:
    """Mean distance between the second differences of ``x_hat`` and ``x``
    (B, T, C), in their units per frame squared: zero when the reconstruction
    accelerates as the target does; offsets and linear drifts cost nothing.

    ``distance`` "l1" (mean absolute difference): the best prediction is the
    median of the target's acceleration given the code, so zero-mean jitter
    that the code does not predict is not learnt, but the gradient keeps a
    constant size however well the accelerations match, and at demo size the
    decoded clip edges stay flexed. "l2" (mean squared difference,
    ``--acc-loss l2``, the default): the gradient vanishes as the
    accelerations match, so the reconstruction term can still correct levels
    (docs/guidance.md, "Smooth and planted motion")."""
    return ACC_DISTANCES[distance](second_difference(x_hat), second_difference(x))


def depth_loss(x_hat: torch.Tensor, x: torch.Tensor, index: int) -> torch.Tensor:
    """Mean absolute difference between the per-clip minima over time of
    feature ``index`` (pelvis_ty: the bottom of the squat) of ``x_hat`` and
    ``x`` (B, T, C): zero when the reconstruction goes exactly as deep as its
    target, whatever happens elsewhere in the clip."""
    return F.l1_loss(x_hat[..., index].amin(dim=1), x[..., index].amin(dim=1))


def vq_loss(x_hat: torch.Tensor, x: torch.Tensor, commit: torch.Tensor, args: argparse.Namespace,
            loss_fn: Callable, std: torch.Tensor | None = None, fs: float = FRAME_RATE,
            foot: Callable | None = None,
            x_acc: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total training loss and its parts. ``x_hat``, ``x``: (B, T, C) normalised.

    recons + loss_vel * recons(frame differences) + loss_smooth * mean squared
    second difference of ``x_hat`` + loss_acc * :func:`acceleration_loss`
    + loss_pelvis_acc * smooth-L1 of the pelvis acceleration of ``x_hat`` in
    m/s^2 (needs ``std`` (C,), the normaliser's scale, and ``fs`` Hz)
    + loss_foot_slide * ``foot(x_hat, x)`` (a :class:`FootSlideTerm`)
    + loss_depth * :func:`depth_loss` of pelvis_ty
    + commit * commitment. ``x_acc`` (B, T, C), normalised: what the
    acceleration term matches instead of ``x`` (``--acc-target dynamics``).
    """
    x_hat = x_hat.float()
    parts = {"recons": loss_fn(x_hat, x), "commit": commit}
    loss = parts["recons"] + args.commit * commit
    if args.loss_vel:
        parts["vel"] = loss_fn(x_hat[:, 1:] - x_hat[:, :-1], x[:, 1:] - x[:, :-1])
        loss = loss + args.loss_vel * parts["vel"]
    if args.loss_smooth:
        parts["smooth"] = second_difference(x_hat).pow(2).mean()
        loss = loss + args.loss_smooth * parts["smooth"]
    if args.loss_acc:
        parts["acc"] = acceleration_loss(x_hat, x if x_acc is None else x_acc, args.acc_loss)
        loss = loss + args.loss_acc * parts["acc"]
    if args.loss_depth:
        parts["depth"] = depth_loss(x_hat, x, COORD_INDEX["pelvis_ty"])
        loss = loss + args.loss_depth * parts["depth"]
    if args.loss_pelvis_acc:
        if std is None:
            raise ValueError("--loss-pelvis-acc needs the normaliser's scale")
        # the clip-mean offsets the normaliser removes vanish in second differences
        parts["pelvis_acc"] = pelvis_acceleration(x_hat * std, fs).mean()
        loss = loss + args.loss_pelvis_acc * parts["pelvis_acc"]
    if args.loss_foot_slide:
        parts["foot_slide"] = foot(x_hat, x)
        loss = loss + args.loss_foot_slide * parts["foot_slide"]
    return loss, parts


class FootSlideTerm:
    """Foot sliding of a normalised reconstruction ``x_hat`` (B, T, C), cm^2
    per frame: :func:`models.guidance_losses.foot_sliding` of the foot points
    given by the forward kinematics ``fk`` of one model, with each clip's floor
    at the lowest foot point of its target ``x``. ``mean``, ``std`` (C,): the
    normaliser's; the clip means it removes (laboratory position, heading)
    are not restored, which moves and turns the feet as a whole but leaves
    their sliding (nearly) unchanged."""

    def __init__(self, fk, mean: torch.Tensor, std: torch.Tensor, tol: float = 0.02):
        self.fk, self.mean, self.std, self.tol = fk, mean, std, tol
        self.idx = list(fk.foot_contact_indices())

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            floor = self.fk(x * self.std + self.mean, points=self.idx)[..., 1].amin(dim=(1, 2), keepdim=True)
        feet = self.fk(x_hat * self.std + self.mean, points=self.idx)
        return foot_sliding(feet, floor, self.tol).mean()
