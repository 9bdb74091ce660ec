"""A motion diffusion model (after MDM, Tevet et al. 2023) for squat clips.

* :class:`MotionDenoiser`: a transformer encoder over the frames of a noisy,
  normalised clip ``x_t`` (B, T, 33), one token per frame as in MDM (or per
  ``frames_per_token`` consecutive frames, a cheaper option for CPU demos). A
  first token carries the diffusion step (sinusoidal embedding -> MLP) plus,
  optionally, a projected subject descriptor; the network predicts the clean
  clip ``x0`` (MDM's choice), not the noise. An optional learned temporal
  filter on the prediction (``output_filter``, initialised as a binomial
  smoother) removes most of the frame-to-frame jitter a briefly trained model
  leaves (5x less at demo size); 0 gives MDM's plain linear read-out.
* :class:`GaussianDiffusion`: the forward process with a cosine (default) or
  linear noise schedule, the training loss (x0 regression, optional velocity
  term), and DDPM (ancestral, every step) and DDIM (a subset of steps, ``eta``)
  samplers, both with optional classifier-free guidance (``guidance`` > 1 mixes
  conditional and unconditional predictions; the condition is dropped with
  probability ``cond_mask_prob`` during training so the same network does both).

Everything works on normalised features; the caller de-normalises with the
:class:`~dataset.normalization.Normalizer` stored in the checkpoint
(:func:`load_mdm`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dataset.normalization import Normalizer
from models.float32_layers import Float32Conv1d, Float32Linear
from models.transformer import TransformerStack
from utils.checkpoint import CheckpointError, check_compatible, check_kind, load_checkpoint
from utils.constants import CLIP_LENGTH, COORDINATES, N_COORDS

NOISE_SCHEDULES = ("cosine", "linear")
SAMPLERS = ("ddpm", "ddim")


@dataclass
class MDMConfig:
    """Architecture and diffusion settings; stored in checkpoints."""

    n_features: int = N_COORDS
    n_frames: int = CLIP_LENGTH
    latent_dim: int = 256
    layers: int = 8
    heads: int = 4
    ff_size: int = 1024
    dropout: float = 0.1
    cond_dim: int = 0
    """Length of the subject descriptor; 0 = unconditional model."""
    cond_mask_prob: float = 0.1
    frames_per_token: int = 1
    """Consecutive frames one transformer token holds (1 = one token per frame as in MDM)."""
    output_filter: int = 5
    """Width (odd) of a learned per-coordinate temporal filter on the predicted
    clip, initialised as a binomial smoother; 0 = MDM's plain linear read-out."""
    diffusion_steps: int = 1000
    noise_schedule: str = "cosine"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MDMConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def sinusoidal_embedding(positions: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of (possibly fractional) positions. (N,) -> (N, dim)"""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class MotionDenoiser(nn.Module):
    """Predicts the clean clip from a noisy one.

    ``forward(x_t (B, T, C), t (B,) int, cond (B, cond_dim) or None,
    cond_mask (B,) bool or None) -> x0_hat (B, T, C)``; ``cond_mask`` True
    drops the condition of that sample (MDM zeroes the condition embedding).
    """

    def __init__(self, config: MDMConfig):
        super().__init__()
        p = config.frames_per_token
        if p < 1 or config.n_frames % p:
            raise ValueError(f"frames_per_token {p} must be >= 1 and divide the clip length {config.n_frames}")
        self.config = config
        d = config.latent_dim
        self.input_proj = nn.Linear(config.n_features * p, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_proj = nn.Linear(config.cond_dim, d) if config.cond_dim > 0 else None
        self.register_buffer("pos", sinusoidal_embedding(torch.arange(config.n_frames // p + 1), d),
                             persistent=False)
        self.encoder = TransformerStack(d, config.layers, config.heads, config.ff_size, config.dropout)
        self.output_proj = Float32Linear(d, config.n_features * p)
        self.output_filter = None
        k = config.output_filter
        if k:
            if k < 0 or k % 2 == 0:
                raise ValueError(f"output_filter must be 0 or an odd width, got {k}")
            self.output_filter = Float32Conv1d(config.n_features, config.n_features, k, padding=k // 2,
                                                groups=config.n_features, padding_mode="replicate")
            with torch.no_grad():
                binomial = torch.tensor([math.comb(k - 1, i) for i in range(k)], dtype=torch.float32)
                self.output_filter.weight.copy_((binomial / binomial.sum()).expand_as(self.output_filter.weight))
                self.output_filter.bias.zero_()

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None,
                cond_mask: Tensor | None = None) -> Tensor:
        b, n, c = x_t.shape
        p = self.config.frames_per_token
        if n % p or n // p + 1 > self.pos.shape[0]:
            raise ValueError(f"clip of {n} frames does not fit the model ({self.config.n_frames} frames, "
                             f"{p} per token)")
        token = self.time_mlp(sinusoidal_embedding(t, self.config.latent_dim))
        if self.cond_proj is not None and cond is not None:
            cond_emb = self.cond_proj(cond)
            if cond_mask is not None:
                cond_emb = cond_emb * (~cond_mask).to(cond_emb.dtype)[:, None]
            token = token + cond_emb
        frames = self.input_proj(x_t.reshape(b, n // p, p * c))
        h = torch.cat([token[:, None], frames], dim=1) + self.pos[: n // p + 1]
        h = self.encoder(h)
        out = self.output_proj(h[:, 1:]).reshape(b, n, c)
        if self.output_filter is not None:
            out = self.output_filter(out.transpose(1, 2)).transpose(1, 2)
        return out


def cosine_betas(steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule. (steps,) float64"""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return np.array([min(1 - f((i + 1) / steps) / f(i / steps), max_beta) for i in range(steps)])


def linear_betas(steps: int) -> np.ndarray:
    """Ho et al.'s linear schedule, rescaled to ``steps``. (steps,) float64"""
    scale = 1000.0 / steps
    return np.linspace(scale * 1e-4, scale * 0.02, steps)


class GaussianDiffusion:
    """Forward process, loss and samplers for an x0-predicting denoiser.

    ``x`` arguments are normalised clips (B, T, C); ``t`` integer steps in
    ``[0, steps)`` with 0 the least noisy.
    """

    def __init__(self, steps: int = 1000, schedule: str = "cosine", device: torch.device | str = "cpu"):
        if schedule not in NOISE_SCHEDULES:
            raise ValueError(f"unknown noise schedule {schedule!r}; expected one of {NOISE_SCHEDULES}")
        if steps < 2:
            raise ValueError(f"diffusion needs at least 2 steps, got {steps}")
        betas = cosine_betas(steps) if schedule == "cosine" else linear_betas(steps)
        alphas_cumprod = np.cumprod(1.0 - betas)
        prev = np.append(1.0, alphas_cumprod[:-1])
        self.steps = steps
        self.schedule = schedule
        self.device = torch.device(device)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.betas = t(betas)
        self.alphas_cumprod = t(alphas_cumprod)
        self.sqrt_ab = t(np.sqrt(alphas_cumprod))
        self.sqrt_1m_ab = t(np.sqrt(1.0 - alphas_cumprod))
        # posterior q(x_{t-1} | x_t, x0); log variance clipped at step 0 as in DDPM
        post_var = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
        self.post_logvar = t(np.log(np.append(post_var[1], post_var[1:])))
        self.post_c0 = t(betas * np.sqrt(prev) / (1.0 - alphas_cumprod))
        self.post_ct = t((1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - alphas_cumprod))

    @staticmethod
    def _at(a: Tensor, t: Tensor) -> Tensor:
        return a[t][:, None, None]

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Noisy clip at step ``t``: sqrt(ab_t) x0 + sqrt(1 - ab_t) noise."""
        return self._at(self.sqrt_ab, t) * x0 + self._at(self.sqrt_1m_ab, t) * noise

    def training_losses(self, model: nn.Module, x0: Tensor, cond: Tensor | None = None,
                        cond_mask_prob: float = 0.0, lambda_vel: float = 0.0,
                        t: Tensor | None = None, noise: Tensor | None = None) -> dict[str, Tensor]:
        """MSE between predicted and true x0 (plus ``lambda_vel`` x MSE of frame
        differences). Returns ``loss``, ``mse``, ``vel`` (scalars)."""
        b = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.steps, (b,), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        cond_mask = None
        if cond is not None and cond_mask_prob > 0:
            cond_mask = torch.rand(b, device=x0.device) < cond_mask_prob
        x0_hat = model(self.q_sample(x0, t, noise), t, cond, cond_mask).float()
        mse = F.mse_loss(x0_hat, x0)
        vel = F.mse_loss(x0_hat[:, 1:] - x0_hat[:, :-1], x0[:, 1:] - x0[:, :-1])
        return {"loss": mse + lambda_vel * vel, "mse": mse, "vel": vel}

    def _predict_x0(self, model: nn.Module, x: Tensor, t: Tensor, cond: Tensor | None, guidance: float) -> Tensor:
        if cond is None or guidance == 1.0:
            return model(x, t, cond).float()
        b = x.shape[0]
        mask = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, cond]), mask).float()
        cond_out, uncond_out = both[:b], both[b:]
        return uncond_out + guidance * (cond_out - uncond_out)

    @torch.no_grad()
    def sample(self, model: nn.Module, shape: tuple[int, int, int], cond: Tensor | None = None,
               sampler: str = "ddpm", ddim_steps: int = 50, eta: float = 0.0, guidance: float = 1.0,
               generator: torch.Generator | None = None,
               progress: Callable[[int], None] | None = None) -> Tensor:
        """Draw clips of ``shape`` (B, T, C), normalised units.

        ``sampler="ddpm"``: ancestral sampling through all steps.
        ``sampler="ddim"``: ``ddim_steps`` evenly spaced steps, stochasticity
        ``eta`` (0 = deterministic). ``progress(n)`` is called after each step.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
        dev = self.device

        def randn() -> Tensor:
            return torch.randn(shape, generator=generator, device=dev)

        x = randn()
        if sampler == "ddpm":
            for i in reversed(range(self.steps)):
                t = torch.full((shape[0],), i, device=dev, dtype=torch.long)
                x0 = self._predict_x0(model, x, t, cond, guidance)
                mean = self._at(self.post_c0, t) * x0 + self._at(self.post_ct, t) * x
                x = mean + (torch.exp(0.5 * self._at(self.post_logvar, t)) * randn() if i > 0 else 0.0)
                if progress:
                    progress(1)
            return x
        n = max(1, min(ddim_steps, self.steps))
        times = np.unique(np.linspace(0, self.steps - 1, n).round().astype(int))[::-1]
        for j, i in enumerate(times):
            t = torch.full((shape[0],), int(i), device=dev, dtype=torch.long)
            x0 = self._predict_x0(model, x, t, cond, guidance)
            ab = self.alphas_cumprod[i]
            ab_prev = self.alphas_cumprod[times[j + 1]] if j + 1 < len(times) else torch.tensor(1.0, device=dev)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
            if j + 1 < len(times) and eta > 0:
                x = x + sigma * randn()
            if progress:
                progress(1)
        return x


def build_mdm(config: MDMConfig, device: torch.device | str = "cpu") -> tuple[MotionDenoiser, GaussianDiffusion]:
    """A fresh denoiser and its diffusion process on ``device``."""
    model = MotionDenoiser(config).to(device)
    return model, GaussianDiffusion(config.diffusion_steps, config.noise_schedule, device)


def load_mdm(path: str | os.PathLike, device: torch.device | str = "cpu"
             ) -> tuple[MotionDenoiser, GaussianDiffusion, Normalizer, dict]:
    """Load a ``train_mdm.py`` checkpoint: (denoiser in eval mode, diffusion,
    normaliser, checkpoint dict). Checks the coordinate order."""
    ckpt = load_checkpoint(path, map_location="cpu")
    check_kind(ckpt, path, "mdm", "train_mdm.py")
    for key in ("model_config", "model", "normalizer"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: not a train_mdm.py checkpoint (no {key!r})")
    check_compatible(ckpt, path, "coordinates", COORDINATES)
    config = MDMConfig.from_dict(ckpt["model_config"])
    model, diffusion = build_mdm(config, device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, diffusion, Normalizer.from_state_dict(ckpt["normalizer"]), ckpt

