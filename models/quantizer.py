"""Vector quantisers for the VQ-VAE.

Four variants, chosen by name with :func:`build_quantizer`:

``ema_reset`` (default, as published)
    Codebook initialised from the first batch of encoder outputs, updated as
    the exponential moving average (``mu``) of the vectors assigned to each
    code; codes whose EMA count drops below 1 are replaced by current encoder
    outputs.
``ema``
    The same EMA update without resets.
``reset``
    Codebook learned by gradient (codebook loss), with dead codes reset as in
    ``ema_reset``.
``orig``
    The original VQ-VAE: codebook learned by gradient, uniform initialisation,
    no resets.

All state (codebook, EMA sums, EMA counts, initialised flag) lives in
registered buffers (the codebook is a parameter for the gradient-learned
variants), so ``state_dict()`` saves and restores a quantiser exactly.

Under ``torch.distributed`` the per-batch code counts and sums are all-reduced
across ranks and the random replacement vectors are broadcast from rank 0, so
every rank keeps the same codebook without buffer broadcasting.

Inputs are channels-first latents ``z`` of shape ``(B, D, T)``; the quantiser
always computes in float32, also under bf16 autocast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import all_reduce_sum_

QUANTIZERS = ("ema_reset", "ema", "reset", "orig")


def _dist_active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _broadcast_(t: torch.Tensor) -> torch.Tensor:
    """Overwrite ``t`` with rank 0's value (identity in a single process)."""
    if _dist_active():
        torch.distributed.broadcast(t, src=0)
    return t


@dataclass
class QuantizerOutput:
    """Result of :meth:`Quantizer.forward`.

    ``z_q`` (B, D, T) quantised latents with straight-through gradient to ``z``;
    ``indices`` (B, T) int64; ``commit_loss`` scalar (MSE between ``z`` and its
    codes; for gradient-learned codebooks the codebook loss is added);
    ``perplexity`` scalar, exp of the entropy of code use in the batch;
    ``usage`` scalar, fraction of codes used in the batch.
    """

    z_q: torch.Tensor
    indices: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class Quantizer(nn.Module):
    """Nearest-code quantiser; subclasses define how the codebook learns."""

    learnable_codebook = False
    data_init = True

    def __init__(self, nb_code: int, code_dim: int, mu: float = 0.99):
        super().__init__()
        if nb_code < 1 or code_dim < 1:
            raise ValueError(f"nb_code and code_dim must be positive, got {nb_code}, {code_dim}")
        self.nb_code = nb_code
        self.code_dim = code_dim
        self.mu = mu
        if self.learnable_codebook:
            init = torch.empty(nb_code, code_dim).uniform_(-1.0 / nb_code, 1.0 / nb_code)
            self.codebook = nn.Parameter(init)
        else:
            self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_count", torch.zeros(nb_code))
        self.register_buffer("initialized", torch.tensor(not self.data_init))

    def extra_repr(self) -> str:
        return f"nb_code={self.nb_code}, code_dim={self.code_dim}, mu={self.mu}"

    # -- lookup ---------------------------------------------------------
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (Euclidean) for each row of ``flat`` (N, D) -> (N,)."""
        code = self.codebook.detach().float()
        dist = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ code.t()
                + code.pow(2).sum(1)[None, :])
        return dist.argmin(dim=1)

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors for ``indices`` (...,) -> (..., D)."""
        return F.embedding(indices, self.codebook)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Channels-first latents for code indices: (B, T) -> (B, D, T)."""
        return self.dequantize(indices).permute(0, 2, 1).contiguous()

    # -- statistics -----------------------------------------------------
    def _random_rows(self, flat: torch.Tensor) -> torch.Tensor:
        """``nb_code`` encoder outputs picked at random (tiled with a little
        noise when the batch has fewer rows), the same on every rank. (K, D)"""
        n = flat.shape[0]
        if n < self.nb_code:
            reps = math.ceil(self.nb_code / n)
            std = 0.01 / math.sqrt(self.code_dim)
            flat = flat.repeat(reps, 1)
            flat = flat + torch.randn_like(flat) * std
        pick = torch.randperm(flat.shape[0], device=flat.device)[: self.nb_code]
        return _broadcast_(flat[pick].contiguous())

    @torch.no_grad()
    def _initialize(self, flat: torch.Tensor) -> None:
        rows = self._random_rows(flat)
        self.codebook.data.copy_(rows)
        self.code_sum.copy_(rows)
        self.code_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _batch_stats(self, flat: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-code sums (K, D) and counts (K,) of this batch, summed over ranks."""
        packed = torch.zeros(self.nb_code, self.code_dim + 1, device=flat.device, dtype=torch.float32)
        packed[:, :-1].index_add_(0, indices, flat)
        packed[:, -1].index_add_(0, indices, torch.ones_like(indices, dtype=torch.float32))
        if _dist_active():
            all_reduce_sum_(packed)
        return packed[:, :-1], packed[:, -1]

    def _update(self, flat: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor) -> None:
        """Learn from one batch (training only)."""

    @staticmethod
    def _perplexity(counts: torch.Tensor) -> torch.Tensor:
        prob = counts / counts.sum().clamp_min(1e-10)
        return torch.exp(-(prob * torch.log(prob + 1e-10)).sum())

    def code_usage(self) -> float:
        """Fraction of codes whose EMA count is at least 1 (alive codes)."""
        return float((self.code_count >= 1.0).float().mean())

    # -- forward --------------------------------------------------------
    def forward(self, z: torch.Tensor, update: bool | None = None) -> QuantizerOutput:
        """Quantise ``z`` (B, D, T). ``update`` (default: ``self.training``)
        lets the codebook learn from this batch."""
        if z.dim() != 3 or z.shape[1] != self.code_dim:
            raise ValueError(f"expected latents of shape (B, {self.code_dim}, T), got {tuple(z.shape)}")
        update = self.training if update is None else update
        b, d, t = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 1).reshape(-1, d)
            if update and not bool(self.initialized):
                self._initialize(flat.detach())
            indices = self.nearest(flat.detach())
            if update:
                sums, counts = self._batch_stats(flat.detach(), indices)
                self._update(flat.detach(), sums, counts)
            else:
                counts = torch.bincount(indices, minlength=self.nb_code).float()
            codes = self.dequantize(indices)
            commit = F.mse_loss(flat, codes.detach())
            if self.learnable_codebook:
                commit = commit + F.mse_loss(flat.detach(), codes)
            z_q = flat + (codes - flat).detach()
            z_q = z_q.view(b, t, d).permute(0, 2, 1).contiguous()
        return QuantizerOutput(z_q, indices.view(b, t), commit, self._perplexity(counts),
                               (counts > 0).float().mean())


class QuantizerEMAReset(Quantizer):
    """EMA codebook with reset of codes whose EMA count falls below 1."""

    reset_dead = True

    @torch.no_grad()
    def _update(self, flat, sums, counts):
        self.code_sum.mul_(self.mu).add_(sums, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(counts, alpha=1 - self.mu)
        alive = self.code_count >= 1.0
        updated = self.code_sum / self.code_count.clamp_min(1e-10)[:, None]
        if self.reset_dead:
            rows = self._random_rows(flat)
            self.codebook.copy_(torch.where(alive[:, None], updated, rows))
            self.code_sum.copy_(torch.where(alive[:, None], self.code_sum, rows))
            self.code_count.copy_(torch.where(alive, self.code_count, torch.ones_like(self.code_count)))
        else:
            keep = self.code_count > 1e-6
            self.codebook.copy_(torch.where(keep[:, None], updated, self.codebook))


class QuantizerEMA(QuantizerEMAReset):
    """EMA codebook without resets (dead codes keep their last vector)."""

    reset_dead = False


class QuantizerReset(Quantizer):
    """Gradient-learned codebook; codes whose EMA count falls below 1 are reset."""

    learnable_codebook = True

    @torch.no_grad()
    def _update(self, flat, sums, counts):
        self.code_count.mul_(self.mu).add_(counts, alpha=1 - self.mu)
        alive = self.code_count >= 1.0
        rows = self._random_rows(flat)
        self.codebook.data.copy_(torch.where(alive[:, None], self.codebook.data, rows))
        self.code_count.copy_(torch.where(alive, self.code_count, torch.ones_like(self.code_count)))


class QuantizerOrig(Quantizer):
    """The original VQ-VAE quantiser: gradient-learned codebook, uniform init."""

    learnable_codebook = True
    data_init = False

    @torch.no_grad()
    def _update(self, flat, sums, counts):
        self.code_count.mul_(self.mu).add_(counts, alpha=1 - self.mu)


def build_quantizer(name: str, nb_code: int, code_dim: int, mu: float = 0.99) -> Quantizer:
    """Quantiser by name: ``ema_reset`` | ``ema`` | ``reset`` | ``orig``."""
    classes = {"ema_reset": QuantizerEMAReset, "ema": QuantizerEMA,
               "reset": QuantizerReset, "orig": QuantizerOrig}
    if name not in classes:
        raise ValueError(f"unknown quantizer {name!r}; expected one of {QUANTIZERS}")
    return classes[name](nb_code, code_dim, mu)
