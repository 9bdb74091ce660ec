"""Differentiable surrogate: squat kinematics -> per-frame muscle activations.

One interface, two architectures:

* ``mlp`` (default): a multilayer perceptron applied at every frame to a
  centred temporal window of ``window`` frames (implemented as a temporal
  convolution of width ``window`` followed by point-wise layers, i.e. the same
  MLP slid along time). Small, fast and with smooth (SiLU) gradients, which is
  what guidance wants when it back-propagates through the surrogate thousands
  of times.
* ``transformer``: the published surrogate, a 3-layer transformer encoder
  (3 heads, feed-forward 128) with a learned positional encoding.

Inputs are canonical-order coordinates exactly as dataset arrays hold them
(rotations in degrees, pelvis translations in metres); the normalisation
statistics live in the model as buffers, so callers never normalise. Where the
subject stands and faces in the laboratory does not change which muscles work,
so by default the horizontal pelvis position (``pelvis_tx``, ``pelvis_tz``) and
the heading (``pelvis_rotation``) enter relative to their mean over the clip
(:func:`centre_horizontal`); everything else enters as is. Outputs are
activations in [0, 1] (sigmoid).

A surrogate trained with the subjects' body mass (``body_mass`` given: the
mean and standard deviation, kg, of the training subjects' masses) takes it
as one more input channel, constant over the clip: the same squat asks more
of a heavier subject's muscles, and kinematics do not show mass
(:mod:`dataset.body_mass`). Give the mass per call (``body_mass=``) or bind
one subject's once with :meth:`SurrogateModel.for_subject`.

A checkpoint written by ``surrogate_training.py`` holds the weights, the
architecture options (``model_config``), the coordinate order and the muscle
names; :func:`load_surrogate` checks both before building the model.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from dataset.normalization import CENTRED, centre_horizontal  # noqa: F401 (re-exported)
from utils.checkpoint import CheckpointError, check_compatible, load_checkpoint
from utils.constants import CLIP_LENGTH, COORDINATES, MUSCLES
from utils.device import autocast, resolve_device

ARCHS = ("mlp", "transformer")

DEFAULT_CONFIG: dict[str, dict[str, Any]] = {
    "mlp": {"window": 9, "hidden": 64, "layers": 3, "stride": 4, "dropout": 0.1},
    "transformer": {"d_model": 96, "heads": 3, "layers": 3, "ff": 128, "dropout": 0.1, "max_len": CLIP_LENGTH},
}
"""Architecture options and their defaults; ``model_config`` in a checkpoint holds one of these."""


class WindowMLP(nn.Module):
    """MLP over a centred window of frames, slid along time.

    (B, T, C) normalised coordinates -> (B, T, M) logits. The first layer sees
    frames ``t - window//2 .. t + window//2`` (edges padded by repeating the
    first/last frame); the following layers act on one time step at a time.
    With ``stride`` s > 1 the MLP is evaluated only at frames 0, s, 2s, ...
    (and the last frame) and its logits are interpolated linearly in between:
    s times cheaper, and harmless for activations that vary smoothly over a
    repetition.
    """

    def __init__(self, n_in: int, n_out: int, window: int = 9, hidden: int = 128, layers: int = 3,
                 stride: int = 2, dropout: float = 0.0):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number of frames, got {window}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.window = window
        self.stride = stride
        blocks: list[nn.Module] = [nn.Conv1d(n_in, hidden, kernel_size=window, stride=stride), nn.SiLU()]
        for _ in range(layers - 1):
            blocks += [nn.Dropout(dropout), nn.Conv1d(hidden, hidden, kernel_size=1), nn.SiLU()]
        blocks += [nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv1d(hidden, n_out, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        h = x.transpose(1, 2)  # (B, C, T)
        half = self.window // 2
        extra = (-(t - 1)) % self.stride  # pad so that the last evaluated frame is >= T - 1
        if half or extra:
            h = F.pad(h, (half, half + extra), mode="replicate")
        out = self.head(self.body(h))  # (B, M, ceil(T / s)) at frames 0, s, 2s, ...
        if self.stride > 1:
            steps = out.shape[-1]
            out = F.interpolate(out, size=(steps - 1) * self.stride + 1, mode="linear", align_corners=True)
            out = out[..., :t]
        return out.transpose(1, 2)

    def restrict_outputs(self, rows: Sequence[int]) -> None:
        """Keep only output channels ``rows`` (in that order)."""
        keep = torch.as_tensor(list(rows), dtype=torch.long)
        head = nn.Conv1d(self.head.in_channels, len(keep), kernel_size=1).to(self.head.weight)
        with torch.no_grad():
            head.weight.copy_(self.head.weight[keep])
            head.bias.copy_(self.head.bias[keep])
        self.head = head


class TransformerNet(nn.Module):
    """Transformer encoder with a learned positional encoding.

    (B, T, C) normalised coordinates -> (B, T, M) logits; T <= ``max_len``.
    """

    def __init__(self, n_in: int, n_out: int, d_model: int = 96, heads: int = 3, layers: int = 3,
                 ff: int = 128, dropout: float = 0.1, max_len: int = CLIP_LENGTH):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.max_len = max_len
        self.embed = nn.Linear(n_in, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_out)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        if t > self.max_len:
            raise ValueError(f"transformer surrogate takes at most {self.max_len} frames, got {t}")
        h = self.embed(x) + self.pos[:t]
        return self.head(self.norm(self.encoder(h)))

    def restrict_outputs(self, rows: Sequence[int]) -> None:
        """Keep only output channels ``rows`` (in that order)."""
        keep = torch.as_tensor(list(rows), dtype=torch.long)
        head = nn.Linear(self.head.in_features, len(keep)).to(self.head.weight)
        with torch.no_grad():
            head.weight.copy_(self.head.weight[keep])
            head.bias.copy_(self.head.bias[keep])
        self.head = head


class SurrogateModel(nn.Module):
    """Kinematics (B, T, 33) in degrees / metres -> activations (B, T, M) in [0, 1].

    ``muscles`` names the M outputs in order; ``coordinates`` is the input
    order (always :data:`utils.constants.COORDINATES`). ``x_mean`` / ``x_std``
    (33,) are buffers: the model normalises its input itself, after
    :func:`centre_horizontal` when ``centre`` is true (the statistics must then
    be fitted on centred motions). ``x_active`` (33,) is 0 for coordinates
    that never moved in the training data (``static``, e.g. a locked joint):
    the model ignores them, so noise or a generator's error there cannot
    change its prediction.
    """

    def __init__(self, arch: str = "mlp", muscles: Sequence[str] = MUSCLES,
                 mean: Sequence[float] | Tensor | None = None, std: Sequence[float] | Tensor | None = None,
                 coordinates: Sequence[str] = COORDINATES, centre: bool = True,
                 static: Sequence[bool] | Tensor | None = None,
                 body_mass: Sequence[float] | None = None, **config: Any):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown surrogate architecture {arch!r}; expected one of {ARCHS}")
        unknown_opts = set(config) - set(DEFAULT_CONFIG[arch])
        if unknown_opts:
            raise ValueError(f"options {sorted(unknown_opts)} do not apply to the {arch} surrogate; "
                             f"known: {sorted(DEFAULT_CONFIG[arch])}")
        muscles = tuple(muscles)
        if not muscles:
            raise ValueError("a surrogate must predict at least one muscle")
        bad = [m for m in muscles if m not in MUSCLES]
        if bad:
            raise ValueError(f"unknown muscle name(s) {bad}; see utils.constants.MUSCLES")
        if len(set(muscles)) != len(muscles):
            raise ValueError(f"muscle names repeat: {list(muscles)}")
        self.arch = arch
        self.muscles: tuple[str, ...] = muscles
        self.coordinates: tuple[str, ...] = tuple(coordinates)
        self.centre = bool(centre)
        self.config: dict[str, Any] = {**DEFAULT_CONFIG[arch], **config}
        n_in = len(self.coordinates)
        self.register_buffer("x_mean", _vector(mean, n_in, 0.0, "mean"))
        self.register_buffer("x_std", _vector(std, n_in, 1.0, "std"))
        if (self.x_std <= 0).any():
            raise ValueError("normalisation std must be positive")
        active = _vector(None, n_in, 1.0, "mask") if static is None else \
            1.0 - _vector(torch.as_tensor(static, dtype=torch.float32), n_in, 0.0, "static mask")
        self.register_buffer("x_active", active)
        self.body_mass: tuple[float, float] | None = None
        if body_mass is not None:
            mass_mean, mass_std = (float(v) for v in body_mass)
            if not (np.isfinite(mass_mean) and np.isfinite(mass_std) and mass_std > 0):
                raise ValueError(f"body-mass normalisation must be (mean, std > 0) in kg, got {list(body_mass)}")
            self.body_mass = (mass_mean, mass_std)
            n_in += 1
        self.subject_mass: float | None = None
        """The body mass (kg) bound by :meth:`for_subject`, used when a call gives none."""
        if arch == "mlp":
            self.net: nn.Module = WindowMLP(n_in, len(muscles), **self.config)
        else:
            self.net = TransformerNet(n_in, len(muscles), **self.config)

    def model_config(self) -> dict[str, Any]:
        """Constructor arguments (without statistics) that rebuild this architecture."""
        return {"arch": self.arch, "muscles": list(self.muscles), "coordinates": list(self.coordinates),
                "centre": self.centre, "body_mass": None if self.body_mass is None else list(self.body_mass),
                **self.config}

    @property
    def uses_body_mass(self) -> bool:
        """True when the model takes the subject's body mass as an input."""
        return self.body_mass is not None

    def for_subject(self, mass_kg: float | None) -> "SurrogateModel":
        """This model with one subject's body mass bound (kg): a shallow copy
        sharing every weight, buffer and submodule (so also ``.eval()`` /
        ``.train()`` of the network), so calls without ``body_mass=`` use it.
        A model that does not take body mass is returned as it is."""
        if not self.uses_body_mass:
            return self
        if mass_kg is None or not np.isfinite(mass_kg) or mass_kg <= 0:
            raise ValueError(f"body mass must be a positive number of kg, got {mass_kg}")
        bound = copy.copy(self)
        bound.subject_mass = float(mass_kg)
        return bound

    def mass_z(self, mass_kg):
        """Body mass in standard deviations of the training subjects' masses
        (what the model sees); works on floats, arrays and tensors."""
        mean, std = self.body_mass
        return (mass_kg - mean) / std

    def _mass_channel(self, x: Tensor, body_mass: Tensor | float | None) -> Tensor:
        """The normalised body mass as a (B, T, 1) channel beside ``x`` (B, T, C)."""
        mass = self.subject_mass if body_mass is None else body_mass
        if mass is None:
            raise ValueError("this surrogate was trained with the subjects' body mass: give body_mass= (kg) or "
                             "bind a subject with for_subject(kg)")
        mass = torch.as_tensor(mass, dtype=x.dtype, device=x.device).reshape(-1)
        if mass.numel() not in (1, x.shape[0]):
            raise ValueError(f"body_mass has {mass.numel()} values for a batch of {x.shape[0]} motions")
        return self.mass_z(mass).reshape(-1, 1, 1).expand(x.shape[0], x.shape[1], 1)

    def logits(self, x_deg: Tensor, body_mass: Tensor | float | None = None) -> Tensor:
        """Pre-sigmoid outputs. (B, T, 33) degrees / metres -> (B, T, M);
        ``body_mass`` (B,) or one value, kg, for a model that takes it."""
        if x_deg.ndim != 3 or x_deg.shape[-1] != len(self.coordinates):
            raise ValueError(f"surrogate expects (batch, frames, {len(self.coordinates)}) coordinates, "
                             f"got shape {tuple(x_deg.shape)}")
        if self.centre:
            x_deg = centre_horizontal(x_deg, self.coordinates)
        x = (x_deg - self.x_mean) / self.x_std * self.x_active
        if self.body_mass is not None:
            x = torch.cat([x, self._mass_channel(x, body_mass)], dim=-1)
        return self.net(x)

    def forward(self, x_deg: Tensor, body_mass: Tensor | float | None = None) -> Tensor:
        """Activations in [0, 1]. (B, T, 33) degrees / metres -> (B, T, M)."""
        return torch.sigmoid(self.logits(x_deg, body_mass))

    def restrict_to(self, names: Sequence[str]) -> "SurrogateModel":
        """Drop every output but ``names`` (in that order), in place; returns self.

        The remaining outputs are computed exactly as before; only the last
        layer shrinks, which makes forward and backward cheaper.
        """
        if self.subject_mass is not None:
            raise ValueError("restrict_to on a model bound by for_subject would change the weights it shares with "
                             "the unbound model; restrict first, then bind")
        rows = self.muscle_indices(names)
        self.net.restrict_outputs(rows)
        self.muscles = tuple(names)
        return self

    def muscle_indices(self, names: Sequence[str] | str) -> list[int]:
        """Output channels of ``names`` (a name or a list of names)."""
        if isinstance(names, str):
            names = [names]
        missing = [n for n in names if n not in self.muscles]
        if missing:
            raise KeyError(f"surrogate does not predict {missing}; it predicts {list(self.muscles)}")
        return [self.muscles.index(n) for n in names]

    @torch.no_grad()
    def predict(self, motions: np.ndarray | Tensor, muscles: Sequence[str] | None = None, batch_size: int = 64,
                precision: str = "fp32", progress: bool = False,
                body_mass: np.ndarray | Sequence[float] | float | None = None) -> np.ndarray:
        """Batched inference: activations of ``muscles`` (default: all) for
        (N, T, 33) motions in degrees / metres -> (N, T, M) float32 numpy, on
        the model's device, in eval mode (the training mode is given back).
        ``body_mass``: (N,) or one value, kg (default: the bound subject's)."""
        cols = None if muscles is None else self.muscle_indices(list(muscles))
        device = next(self.buffers()).device
        x = torch.as_tensor(np.asarray(motions) if not torch.is_tensor(motions) else motions, dtype=torch.float32)
        masses = None if body_mass is None else torch.as_tensor(np.asarray(body_mass, dtype=np.float32)).reshape(-1)
        if masses is not None and masses.numel() not in (1, len(x)):
            raise ValueError(f"body_mass has {masses.numel()} values for {len(x)} motions")
        starts = range(0, len(x), batch_size)
        if progress and len(x) > 4 * batch_size:
            starts = tqdm(starts, desc="surrogate", unit="batch", leave=False)
        was_training = self.training
        self.eval()
        out = []
        try:
            for i in starts:
                mass = None if masses is None else masses if masses.numel() == 1 else masses[i:i + batch_size]
                with autocast(device, precision):
                    y = self(x[i:i + batch_size].to(device), mass).float()
                out.append((y if cols is None else y[..., cols]).cpu())
        finally:
            self.train(was_training)
        return torch.cat(out).numpy()


def _vector(value, n: int, fill: float, what: str) -> Tensor:
    if value is None:
        return torch.full((n,), fill, dtype=torch.float32)
    out = torch.as_tensor(value, dtype=torch.float32).reshape(-1).clone()
    if out.numel() != n:
        raise ValueError(f"normalisation {what} has {out.numel()} values, expected {n}")
    return out


def build_from_checkpoint(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> SurrogateModel:
    """Rebuild the model stored in a loaded surrogate checkpoint dict (train mode, on CPU)."""
    for key in ("model", "model_config", "coordinates", "muscles"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: not a surrogate checkpoint (no '{key}' entry)")
    check_compatible(ckpt, path, "coordinates", COORDINATES)
    config = dict(ckpt["model_config"])
    config.pop("muscles", None)
    config.pop("coordinates", None)
    arch = config.pop("arch", "mlp")
    state = dict(ckpt["model"])
    if "x_active" not in state and "x_mean" in state:  # written before static coordinates were masked
        state["x_active"] = torch.ones_like(state["x_mean"])
    try:
        model = SurrogateModel(arch, muscles=ckpt["muscles"], coordinates=ckpt["coordinates"], **config)
        model.load_state_dict(state)
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: surrogate weights do not fit their stored configuration ({err})") from None
    return model


def load_surrogate(path: str | os.PathLike, device: str | torch.device = "cpu",
                   muscles: Sequence[str] | None = None) -> SurrogateModel:
    """Load a trained surrogate, frozen (``requires_grad=False``) and in eval mode.

    Gradients still flow to the *input* kinematics. With ``muscles`` given, the
    model predicts exactly those muscles, in that order (its ``muscles``
    attribute says so; the other output channels are dropped, which makes it
    cheaper); without, every muscle of the checkpoint. Either way pick channels
    with :meth:`SurrogateModel.muscle_indices`. Raises :class:`CheckpointError`
    naming the file if the checkpoint's coordinate order differs from
    :data:`utils.constants.COORDINATES` or a requested muscle is missing.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a surrogate checkpoint")
    model = build_from_checkpoint(ckpt, path)
    if muscles is not None:
        missing = [m for m in muscles if m not in model.muscles]
        if missing:
            raise CheckpointError(f"{path}: surrogate does not predict {', '.join(missing)}; "
                                  f"it predicts {', '.join(model.muscles)}")
        model.restrict_to(list(muscles))
    if isinstance(device, str):
        device = resolve_device(device)
    model.to(device).eval().requires_grad_(False)
    return model
