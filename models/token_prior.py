"""An autoregressive prior over VQ-VAE code indices (after T2M-GPT's
transformer, without text): the baseline that samples a code sequence and
decodes it with the frozen VQ-VAE.

The input sequence is ``[c, k_0, ..., k_{L-2}]`` where ``c`` is a condition
token and ``k_i`` are code embeddings; the output at position ``i`` predicts
``k_i``. The condition token is a projected subject descriptor for a
conditional model, or a learned "no condition" vector (also used when the
condition is dropped in training, ``cond_drop``). Clips have a fixed number of
codes (49 for 196 frames), so there is no end token.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.transformer import TransformerStack
from utils.checkpoint import CheckpointError, check_kind, load_checkpoint


@dataclass
class TokenPriorConfig:
    """Architecture; stored in checkpoints."""

    nb_code: int = 512
    block_size: int = 49
    """Codes per clip (clip length / VQ-VAE downsampling)."""
    embed_dim: int = 512
    num_layers: int = 9
    n_head: int = 8
    ff_rate: int = 4
    dropout: float = 0.1
    cond_dim: int = 0
    """Length of the subject descriptor; 0 = unconditional model."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TokenPriorConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class TokenPrior(nn.Module):
    """``forward(idx (B, L) int64 with L < block_size, cond (B, cond_dim) or
    None, cond_mask (B,) bool or None) -> logits (B, L + 1, nb_code)``:
    position ``i`` scores code ``i`` given the condition and codes ``< i``."""

    def __init__(self, config: TokenPriorConfig):
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.tok_emb = nn.Embedding(config.nb_code, d)
        self.pos_emb = nn.Parameter(torch.zeros(config.block_size, d))
        self.null_cond = nn.Parameter(torch.zeros(d))
        self.cond_proj = nn.Linear(config.cond_dim, d) if config.cond_dim > 0 else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = TransformerStack(d, config.num_layers, config.n_head, config.ff_rate * d, config.dropout)
        self.head = nn.Linear(d, config.nb_code, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def condition_token(self, b: int, cond: Tensor | None, cond_mask: Tensor | None) -> Tensor:
        """(B, D): the projected condition, or the learned null vector where
        there is none or it is masked."""
        null = self.null_cond.expand(b, -1)
        if self.cond_proj is None or cond is None:
            return null
        c = self.cond_proj(cond)
        if cond_mask is not None:
            c = torch.where(cond_mask[:, None], null.to(c.dtype), c)
        return c

    def forward(self, idx: Tensor, cond: Tensor | None = None, cond_mask: Tensor | None = None) -> Tensor:
        b, n = idx.shape
        if n >= self.config.block_size:
            raise ValueError(f"{n} input codes given; at most {self.config.block_size - 1} (block size - 1)")
        first = self.condition_token(b, cond, cond_mask)[:, None]
        h = torch.cat([first, self.tok_emb(idx)], dim=1) + self.pos_emb[: n + 1]
        return self.head(self.blocks(self.drop(h), causal=True))

    def loss(self, idx: Tensor, cond: Tensor | None = None, cond_drop: float = 0.0,
             pkeep: float = 1.0) -> dict[str, Tensor]:
        """Next-code cross entropy; see :func:`next_code_loss`."""
        return next_code_loss(self, self.config.nb_code, idx, cond, cond_drop, pkeep)

    @torch.no_grad()
    def sample(self, n: int, cond: Tensor | None = None, top_k: int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress: Callable[[int], None] | None = None) -> Tensor:
        """Draw ``n`` code sequences (n, block_size) int64.

        ``cond`` (n, cond_dim) or None; ``top_k`` keeps the k most likely codes
        per step (None or 0 = all); ``temperature`` divides the logits (0 =
        greedy); ``progress(n)`` is called after each code."""
        device = self.pos_emb.device
        idx = torch.zeros(n, 0, dtype=torch.long, device=device)
        for _ in range(self.config.block_size):
            logits = self(idx, cond)[:, -1].float()
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k and top_k < logits.shape[-1]:
                    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = torch.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
            if progress:
                progress(1)
        return idx


def next_code_loss(model: Callable[..., Tensor], nb_code: int, idx: Tensor, cond: Tensor | None = None,
                   cond_drop: float = 0.0, pkeep: float = 1.0) -> dict[str, Tensor]:
    """Next-code cross entropy of ``model`` (a :class:`TokenPrior`, or a DDP
    wrapper of one) on full sequences ``idx`` (B, block_size).

    ``pkeep`` < 1 replaces that fraction of the *input* codes by random codes
    (T2M-GPT's corruption); ``cond_drop`` is the probability of replacing a
    sample's condition by the null token. Returns ``loss`` (nats) and
    ``accuracy`` (of the arg-max prediction)."""
    b = idx.shape[0]
    inputs = idx[:, :-1]
    if pkeep < 1.0:
        keep = torch.rand(inputs.shape, device=idx.device) < pkeep
        inputs = torch.where(keep, inputs, torch.randint_like(inputs, nb_code))
    mask = None
    if cond is not None and cond_drop > 0:
        mask = torch.rand(b, device=idx.device) < cond_drop
    logits = model(inputs, cond, mask).float()
    if logits.shape[1] != idx.shape[1]:
        raise ValueError(f"expected sequences of {logits.shape[1]} codes, got {idx.shape[1]}")
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx.reshape(-1))
    return {"loss": loss, "accuracy": (logits.argmax(-1) == idx).float().mean()}


def load_token_prior(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[TokenPrior, dict]:
    """Load a ``train_t2m_trans.py`` checkpoint: (prior in eval mode, checkpoint dict)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    check_kind(ckpt, path, "t2m", "train_t2m_trans.py")
    for key in ("model_config", "model", "vq_name"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: not a train_t2m_trans.py checkpoint (no {key!r})")
    model = TokenPrior(TokenPriorConfig.from_dict(ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the stored configuration ({err})") from None
    return model.to(device).eval(), ckpt
