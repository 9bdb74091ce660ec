"""The motion VQ-VAE: encoder -> quantiser -> decoder, and checkpoint loading.

Motion tensors are ``(B, T, C)`` normalised features (C = 33 coordinates for
MCS, normalised with the training split's statistics); latents are
channels-first ``(B, code_dim, T')`` with ``T' = T / stride_t**down_t``
(196 frames -> 49 steps with the defaults).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dataset.normalization import Normalizer
from models.encdec import Decoder, Encoder
from models.quantizer import Quantizer, QuantizerOutput, build_quantizer
from utils.checkpoint import CheckpointError, check_compatible, load_checkpoint
from utils.constants import COORDINATES
from utils.device import autocast

CONFIG_KEYS = ("n_features", "nb_code", "code_dim", "width", "down_t", "stride_t", "depth",
               "dilation_growth_rate", "activation", "norm", "quantizer", "mu")


class VQVAE(nn.Module):
    """Temporal-convolution VQ-VAE over motion features.

    ``config`` holds the constructor arguments, so ``VQVAE(**model.config)``
    rebuilds the architecture.
    """

    def __init__(self, n_features: int = len(COORDINATES), nb_code: int = 512, code_dim: int = 512,
                 width: int = 512, down_t: int = 2, stride_t: int = 2, depth: int = 3,
                 dilation_growth_rate: int = 3, activation: str = "relu", norm: str | None = None,
                 quantizer: str = "ema_reset", mu: float = 0.99):
        super().__init__()
        self.config: dict[str, Any] = dict(
            n_features=n_features, nb_code=nb_code, code_dim=code_dim, width=width, down_t=down_t,
            stride_t=stride_t, depth=depth, dilation_growth_rate=dilation_growth_rate,
            activation=activation, norm=norm, quantizer=quantizer, mu=mu)
        arch = dict(width=width, down_t=down_t, stride_t=stride_t, depth=depth,
                    dilation_growth_rate=dilation_growth_rate, activation=activation, norm=norm)
        self.encoder = Encoder(n_features, code_dim, **arch)
        self.quantizer: Quantizer = build_quantizer(quantizer, nb_code, code_dim, mu)
        self.decoder = Decoder(n_features, code_dim, **arch)

    @property
    def downsample(self) -> int:
        """Frames per latent step (``stride_t ** down_t``)."""
        return self.config["stride_t"] ** self.config["down_t"]

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors, (nb_code, code_dim)."""
        return self.quantizer.codebook

    def _check_motion(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.config["n_features"]:
            raise ValueError(f"expected motion of shape (B, T, {self.config['n_features']}), got {tuple(x.shape)}")
        if x.shape[1] % self.downsample:
            raise ValueError(f"sequence length {x.shape[1]} is not a multiple of {self.downsample} "
                             f"(stride_t ** down_t)")

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous pre-quantisation latents: (B, T, C) -> (B, code_dim, T')."""
        self._check_motion(x)
        return self.encoder(x.permute(0, 2, 1))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes with straight-through gradient, without updating the
        codebook: (B, code_dim, T') -> (z_q (B, code_dim, T'), indices (B, T'))."""
        out = self.quantizer(z, update=False)
        return out.z_q, out.indices

    def quantize_relaxed(self, z: torch.Tensor, temperature: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes in the forward pass, a soft assignment's gradient in the backward pass.

        Forward: exactly :meth:`quantize` (the decoder sees real codes). Backward:
        the gradient of ``sum_k w_k c_k`` with ``w = softmax(-d / (temperature *
        mean_k d))``, ``d`` the squared distances of ``z`` to the codes: it moves
        ``z`` towards the codes whose use would lower the loss, where the
        straight-through gradient moves it in a straight line that may never
        reach another code's cell. ``temperature`` is relative to the mean
        distance (scale-free). (B, code_dim, T') -> (z_q, indices (B, T'))."""
        if temperature <= 0:
            raise ValueError(f"relaxation temperature must be positive, got {temperature}")
        if z.dim() != 3 or z.shape[1] != self.quantizer.code_dim:
            raise ValueError(f"expected latents of shape (B, {self.quantizer.code_dim}, T), got {tuple(z.shape)}")
        codes = self.quantizer.codebook.detach().float()
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 1)                                   # (B, T', D)
            dist = (flat.pow(2).sum(-1, keepdim=True) - 2.0 * flat @ codes.t()
                    + codes.pow(2).sum(-1))                                     # (B, T', K)
            indices = dist.detach().argmin(-1)                                  # the nearest codes
            scale = temperature * dist.detach().mean(-1, keepdim=True).clamp_min(1e-12)
            soft = torch.softmax(-dist / scale, dim=-1) @ codes                 # (B, T', D)
            hard = codes[indices]
        return (hard + (soft - soft.detach())).permute(0, 2, 1).contiguous(), indices

    def decode_latent(self, z_q: torch.Tensor) -> torch.Tensor:
        """(B, code_dim, T') -> reconstructed motion (B, T, C)."""
        return self.decoder(z_q).permute(0, 2, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices of a motion: (B, T, C) -> (B, T') int64."""
        return self.quantize(self.encode_latent(x))[1]

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Motion from code indices: (B, T') -> (B, T, C)."""
        return self.decode_latent(self.quantizer.lookup(indices))

    def forward(self, x: torch.Tensor, return_usage: bool = False):
        """Reconstruct ``x`` (B, T, C).

        Returns ``(x_hat (B, T, C), commit_loss, perplexity)``, plus the
        fraction of codes used in the batch when ``return_usage``. In training
        mode the codebook learns from the batch.
        """
        z = self.encode_latent(x)
        q: QuantizerOutput = self.quantizer(z)
        x_hat = self.decode_latent(q.z_q)
        if return_usage:
            return x_hat, q.commit_loss, q.perplexity, q.usage
        return x_hat, q.commit_loss, q.perplexity

    @torch.no_grad()
    def encode_motions(self, motions: np.ndarray, normalizer: Normalizer, batch_size: int = 64) -> torch.Tensor:
        """Encoder latents (before quantisation) of motions in physical units,
        in batches. (N, T, C) degrees / metres -> (N, code_dim, T') on the CPU."""
        device = next(self.parameters()).device
        out = []
        for i in range(0, len(motions), batch_size):
            x = torch.as_tensor(normalizer.normalize(np.asarray(motions[i:i + batch_size], dtype=np.float64)),
                                dtype=torch.float32, device=device)
            out.append(self.encode_latent(x).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def reconstruct(self, motions: np.ndarray, normalizer: Normalizer, batch_size: int = 64,
                    precision: str = "fp32", progress: bool = False) -> np.ndarray:
        """Encode, quantise and decode ``motions`` (N, T, C) in physical units,
        in batches, on the model's device, without touching the codebook.
        Returns (N, T, C) float32 in the same units; what the normaliser
        centres (the clip mean of the laboratory position and heading) is
        added back, so the result compares with ``motions``."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        out = np.empty_like(np.asarray(motions, dtype=np.float32))
        starts = range(0, len(motions), batch_size)
        if progress:
            starts = tqdm(starts, desc="reconstruct", unit="batch")
        try:
            for start in starts:
                chunk = np.asarray(motions[start:start + batch_size])
                x = torch.as_tensor(normalizer.normalize(chunk), dtype=torch.float32, device=device)
                with autocast(device, precision):
                    z_q, _ = self.quantize(self.encode_latent(x))
                    x_hat = self.decode_latent(z_q)
                out[start:start + batch_size] = (normalizer.denormalize(x_hat.float()).cpu().numpy()
                                                 + normalizer.clip_offset(chunk))
        finally:
            self.train(was_training)
        return out


def load_vqvae(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a VQ-VAE checkpoint written by ``train_vq.py``.

    Returns ``(model, normalizer, ckpt)``: the model in eval mode on
    ``device``, its :class:`~dataset.normalization.Normalizer` and the whole
    checkpoint dict (``ckpt['model_config']`` is the model configuration). Raises
    :class:`~utils.checkpoint.CheckpointError` naming the file when it is not
    a VQ-VAE checkpoint or its coordinate order differs from
    :data:`utils.constants.COORDINATES`.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a BIGE checkpoint (found {type(ckpt).__name__})")
    if "model_config" not in ckpt and "config" in ckpt:  # written before the one checkpoint schema
        ckpt["model_config"] = ckpt.pop("config")
    missing = [k for k in ("model", "model_config", "coordinates", "normalizer") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a VQ-VAE checkpoint (missing {', '.join(missing)})")
    check_compatible(ckpt, path, "coordinates", COORDINATES)
    unknown = set(ckpt["model_config"]) - set(CONFIG_KEYS)
    if unknown:
        raise CheckpointError(f"{path}: unknown model options {sorted(unknown)}")
    model = VQVAE(**ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the stored configuration ({err})") from None
    model.to(device).eval()
    return model, Normalizer.from_state_dict(ckpt["normalizer"]), ckpt
