"""Differentiable forward kinematics of an OpenSim model in PyTorch.

:class:`ForwardKinematics` reads the joint frames of an ``.osim`` model once
(with the OpenSim API) and then maps batches of coordinates to positions in the
ground frame with plain tensor operations: batched, on any device, in float32
or float64, differentiable with respect to the coordinates.

Input: (..., 33) coordinates in the canonical order of
:data:`utils.constants.COORDINATES`, rotations in degrees and
``pelvis_tx/ty/tz`` in metres, exactly as dataset arrays hold them.
Output: (..., P, 3) positions in metres, ground frame (y up), of the points in
:attr:`ForwardKinematics.point_names`: joint centres (``pelvis``, ``hip_r``,
``knee_r``, ``ankle_r``, ``subtalar_r``, ``mtp_r``, ``torso``, ``shoulder_r``,
``elbow_r``, ``wrist_r`` ... and left likewise), the model's top-level
``Station``\\ s (``neck``, ``head`` and the foot contact points ``heel_r``,
``met1_r``, ``met5_r``, ``toe_r`` ...) and optionally its markers.

Joint semantics follow OpenSim's ``CustomJoint``: the child body's pose is
``X_G_child = X_G_parent * X_parent_F * X_FM(q) * inv(X_child_M)`` with
``X_FM`` rotating about the three rotation axes in order (body-fixed), then
translating along the three translation axes expressed in F.

Supported (everything OpenCap's generic and scaled models contain, see
``docs/kinematics.md``): ``CustomJoint``, ``PinJoint`` (rotation about Z),
``SliderJoint`` (translation along X), ``UniversalJoint`` (X then Y),
``GimbalJoint`` (X, Y, Z body-fixed) and ``WeldJoint``; transform-axis
functions ``LinearFunction``, ``Constant`` and ``PolynomialFunction``
(evaluated exactly), ``MultiplierFunction`` around any of them (with or
without a coordinate), and any other smooth function of one coordinate
(``SimmSpline``, ``NaturalCubicSpline``, ``GCVSpline`` ...) tabulated with
its derivative and interpolated by cubic Hermite splines (linear beyond the
table). Coordinates driven by an enforced ``CoordinateCouplerConstraint``
(OpenCap's ``knee_angle_*_beta``) are computed from the independent
coordinate through the coupler function times its scale factor, as OpenSim
does; other model coordinates outside the 33 stay at their default value.
Every converted function is checked against OpenSim's own evaluation when the
model is read. Anything else raises :class:`ModelError` (a ``ValueError``)
naming the model file, the joint or constraint and the function.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from utils.constants import COORDINATES, TRANSLATIONS
from utils.errors import BigeError
from utils.osim_log import opensim_quiet

__all__ = [
    "ForwardKinematics", "ModelError", "STICK_SEGMENTS", "FOOT_CONTACT_POINTS", "JOINT_POINT_NAMES",
    "rotation_about_axis", "AxisRotation", "coordinate_axis",
]

JOINT_POINT_NAMES: dict[str, str] = {
    "ground_pelvis": "pelvis",
    "back": "torso",
    "walker_knee_r": "knee_r", "walker_knee_l": "knee_l",
    "acromial_r": "shoulder_r", "acromial_l": "shoulder_l",
    "radius_hand_r": "wrist_r", "radius_hand_l": "wrist_l",
}
"""Point name of the centre of a joint whose name differs from the point's."""

FOOT_CONTACT_POINTS: tuple[str, ...] = (
    "heel_r", "met1_r", "met5_r", "toe_r", "heel_l", "met1_l", "met5_l", "toe_l",
)
"""Points on the soles that touch the floor; present when the model defines them."""

STICK_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("pelvis", "hip_r"), ("pelvis", "hip_l"), ("pelvis", "torso"),
    ("hip_r", "knee_r"), ("knee_r", "ankle_r"), ("ankle_r", "heel_r"), ("heel_r", "met5_r"),
    ("heel_r", "met1_r"), ("met1_r", "met5_r"), ("ankle_r", "mtp_r"), ("mtp_r", "toe_r"),
    ("hip_l", "knee_l"), ("knee_l", "ankle_l"), ("ankle_l", "heel_l"), ("heel_l", "met5_l"),
    ("heel_l", "met1_l"), ("met1_l", "met5_l"), ("ankle_l", "mtp_l"), ("mtp_l", "toe_l"),
    ("torso", "neck"), ("neck", "head"),
    ("neck", "shoulder_r"), ("shoulder_r", "elbow_r"), ("elbow_r", "wrist_r"),
    ("neck", "shoulder_l"), ("shoulder_l", "elbow_l"), ("elbow_l", "wrist_l"),
)
"""Pairs of point names to draw as a stick figure."""

_TABLE_SAMPLES = 1001
"""Samples of a tabulated joint function over its (padded) coordinate range."""

_TABLE_PAD = 0.5
"""Tabulate a function over its coordinate's range widened by this fraction of
the range on each side; beyond that it is extended linearly."""

_TABLE_TOL = 1e-7
"""Largest allowed difference (m or rad) between a tabulated function and
OpenSim's evaluation, checked halfway between the table's samples."""


class ModelError(BigeError, ValueError):
    """An OpenSim model that :class:`ForwardKinematics` cannot read or represent.
    The message names the model file, the joint (or constraint) and the function."""


def rotation_about_axis(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation matrices about a unit ``axis`` (3,) by ``angle`` (N,) radians. (N, 3, 3)"""
    x, y, z = axis[0], axis[1], axis[2]
    c, s = torch.cos(angle), torch.sin(angle)
    t = 1.0 - c
    row0 = torch.stack([t * x * x + c, t * x * y - s * z, t * x * z + s * y], dim=-1)
    row1 = torch.stack([t * x * y + s * z, t * y * y + c, t * y * z - s * x], dim=-1)
    row2 = torch.stack([t * x * z - s * y, t * y * z + s * x, t * z * z + c], dim=-1)
    return torch.stack([row0, row1, row2], dim=-2)


_OTHER_AXES: dict[int, tuple[int, int]] = {0: (1, 2), 1: (2, 0), 2: (0, 1)}
"""For a coordinate axis k, the other two (i, j) in cyclic order (x -> y, z; y -> z, x; z -> x, y)."""


def coordinate_axis(axis: np.ndarray | Sequence[float]) -> tuple[int, float] | None:
    """``(k, sign)`` when ``axis`` is exactly ``sign * e_k`` (a coordinate axis
    or its opposite), else None."""
    a = np.asarray(axis, dtype=np.float64)
    nonzero = np.flatnonzero(a)
    if len(nonzero) != 1 or abs(a[nonzero[0]]) != 1.0:
        return None
    return int(nonzero[0]), float(a[nonzero[0]])


class AxisRotation:
    """Rotation about the coordinate axis ``sign * e_k`` by angles (N,)
    radians, kept as its cosine, signed sine and diagonal entry: what
    :func:`rotation_about_axis` computes for that axis entry by entry
    (``(1 - c) + c`` on the axis, ``c`` and ``+-s`` beside it, exact zeros
    elsewhere), in a few operations."""

    def __init__(self, k: int, sign: float, angle: Tensor) -> None:
        self.k, (self.i, self.j) = k, _OTHER_AXES[k]
        self.c = torch.cos(angle)
        s = torch.sin(angle)
        self.s = s if sign > 0 else -s            # entry (j, i); entry (i, j) is -s
        self.w = (1.0 - self.c) + self.c          # entry (k, k), as Rodrigues' formula rounds it

    def matrix(self) -> Tensor:
        """The rotation matrices. (N, 3, 3)"""
        entries = [torch.zeros_like(self.c)] * 9
        entries[4 * self.k], entries[4 * self.i], entries[4 * self.j] = self.w, self.c, self.c
        entries[3 * self.i + self.j], entries[3 * self.j + self.i] = -self.s, self.s
        return torch.stack(entries, -1).unflatten(-1, (3, 3))

    def right_of(self, a: Tensor) -> Tensor:
        """``a @ R`` for ``a`` (N, 3, 3), column by column without the zero
        terms; equal to ``torch.matmul``'s small-matrix product on the CPU
        (same products, summed in the same order; zeros may differ in sign)."""
        c, s = self.c[:, None], self.s[:, None]
        cols = [a[..., 0], a[..., 1], a[..., 2]]
        ai, aj = cols[self.i], cols[self.j]
        cols[self.i], cols[self.j], cols[self.k] = ai * c + aj * s, aj * c - ai * s, cols[self.k] * self.w[:, None]
        return torch.stack(cols, -1)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """3x3 matrix product with broadcasting. (..., 3, 3), (..., 3, 3) -> (..., 3, 3)"""
    return torch.matmul(a, b)


def _mv(a: Tensor, v: Tensor) -> Tensor:
    """3x3 matrix times 3-vector with broadcasting. (..., 3, 3), (..., 3) -> (..., 3)"""
    return torch.matmul(a, v.unsqueeze(-1)).squeeze(-1)


def _rotation(axis: Tensor | tuple[int, float], angle: Tensor) -> Tensor | AxisRotation:
    """Rotation about ``axis`` (a unit (3,) tensor, or ``(k, sign)`` for a coordinate axis) by ``angle`` (N,)."""
    return AxisRotation(*axis, angle) if isinstance(axis, tuple) else rotation_about_axis(axis, angle)


def _as_matrix(rot: Tensor | AxisRotation) -> Tensor:
    """Rotation matrices (N, 3, 3) of either form of :func:`_rotation`."""
    return rot.matrix() if isinstance(rot, AxisRotation) else rot


def _hermite(x: Tensor, grid_lo: float, step: float, values: Tensor, slopes: Tensor) -> Tensor:
    """Evaluate a cubic Hermite spline tabulated on a uniform grid, extended
    linearly (with the end slopes) beyond the grid. x (N,) -> (N,)"""
    n = values.shape[0]
    grid_hi = grid_lo + step * (n - 1)
    xc = x.clamp(grid_lo, grid_hi)
    u = (xc - grid_lo) / step
    i = torch.clamp(torch.floor(u).long(), 0, n - 2)
    t = u - i.to(u.dtype)
    y0, y1 = values[i], values[i + 1]
    m0, m1 = slopes[i] * step, slopes[i + 1] * step
    t2, t3 = t * t, t * t * t
    y = (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1
    return y + (x - xc) * torch.where(x < grid_lo, slopes[0], slopes[-1])


def _hermite_array(x: np.ndarray, grid_lo: float, step: float, values: np.ndarray, slopes: np.ndarray
                   ) -> np.ndarray:
    """:func:`_hermite` on float64 arrays, to check tables when they are built."""
    with torch.no_grad():
        return _hermite(torch.as_tensor(x, dtype=torch.float64), grid_lo, step,
                        torch.as_tensor(values), torch.as_tensor(slopes)).numpy()


class ForwardKinematics(nn.Module):
    """Forward kinematics of one OpenSim model; see the module docstring.

    Build with :meth:`from_osim`. ``forward(coords)`` maps (..., 33) canonical
    coordinates (degrees / metres) to (..., P, 3) ground positions (metres).
    """

    point_names: tuple[str, ...]
    """Names of the output points, in output order."""
    body_names: tuple[str, ...]
    """Names of the bodies, in the order of :meth:`body_transforms`."""
    coupled_names: tuple[str, ...]
    """Model coordinates computed from a coupler constraint (not inputs)."""
    source: str
    """The model file (or model name) the kinematics were read from."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.body_names = tuple(spec["bodies"])
        self.point_names = tuple(p[0] for p in spec["points"])
        self._point_lookup = {n: i for i, n in enumerate(self.point_names)}
        self.coordinate_names = tuple(COORDINATES)
        self._joints = spec["joints"]  # python-side structure (indices, kinds)
        # numeric data in buffers so .to(device, dtype) moves it
        self.register_buffer("coord_scale", torch.tensor(spec["coord_scale"], dtype=torch.float64))
        self._couplers = spec["couplers"]  # coordinates computed from a coupler constraint
        self.coupled_names = tuple(c["name"] for c in spec["couplers"])
        for c, coupler in enumerate(spec["couplers"]):
            self._register_function(f"c{c}", coupler["fn"])
        for j, joint in enumerate(spec["joints"]):
            self.register_buffer(f"j{j}_R_PF", torch.tensor(joint["R_PF"], dtype=torch.float64))
            self.register_buffer(f"j{j}_p_PF", torch.tensor(joint["p_PF"], dtype=torch.float64))
            self.register_buffer(f"j{j}_R_MB", torch.tensor(joint["R_MB"], dtype=torch.float64))
            self.register_buffer(f"j{j}_p_MB", torch.tensor(joint["p_MB"], dtype=torch.float64))
            self.register_buffer(f"j{j}_p_BM", torch.tensor(joint["p_BM"], dtype=torch.float64))
            for k, axis in enumerate(joint["axes"]):
                self.register_buffer(f"j{j}_a{k}", torch.tensor(axis["axis"], dtype=torch.float64))
                self._register_function(f"j{j}_a{k}", axis["fn"])
        self._point_body = [p[1] for p in spec["points"]]
        self.register_buffer("point_local", torch.tensor(np.array([p[2] for p in spec["points"]]),
                                                         dtype=torch.float64).reshape(-1, 3))
        self.register_buffer("body_mass", torch.tensor(spec["body_mass"], dtype=torch.float64))
        self.register_buffer("body_com", torch.tensor(np.array(spec["body_com"]), dtype=torch.float64).reshape(-1, 3))
        self.joint_names = tuple(j["name"] for j in spec["joints"])
        self.source = spec["source"]
        self._constant_cache: dict[tuple[torch.dtype, torch.device], list[dict]] = {}

    def _constants(self, dtype: torch.dtype, device: torch.device) -> list[dict]:
        """Per joint, its constant frames in ``dtype`` on ``device`` (None for
        an identity rotation or a zero offset) and its axes (a tensor, or
        ``(k, sign)`` for a coordinate axis); converted once per dtype and device."""
        key = (dtype, device)
        if key not in self._constant_cache:
            identity = torch.eye(3, dtype=torch.float64, device=device)
            out = []
            for j, joint in enumerate(self._joints):
                const = {}
                for name in ("R_PF", "R_MB"):
                    R = getattr(self, f"j{j}_{name}")
                    const[name] = None if torch.equal(R, identity.to(R.device)) else R.to(device, dtype)
                for name in ("p_PF", "p_MB"):
                    p = getattr(self, f"j{j}_{name}")
                    const[name] = None if not bool(p.any()) else p.to(device, dtype)
                const["axes"] = [coordinate_axis(axis["axis"]) if axis["rotation"] else None
                                 for axis in joint["axes"]]
                const["axes"] = [ca if ca is not None else getattr(self, f"j{j}_a{k}").to(device, dtype)
                                 for k, ca in enumerate(const["axes"])]
                out.append(const)
            self._constant_cache[key] = out
        return self._constant_cache[key]

    def _apply(self, fn, *args, **kwargs):
        """Forget the converted constants when the buffers move or change type (``.to``, ``.double`` ...)."""
        self._constant_cache = {}
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        """Forget the converted constants when a state dict overwrites the buffers in place."""
        self._constant_cache = {}
        return super()._load_from_state_dict(*args, **kwargs)

    def _register_function(self, prefix: str, fn: dict) -> None:
        """Keep a tabulated function's samples in buffers (moved by ``.to``)."""
        if fn["kind"] == "table":
            self.register_buffer(f"{prefix}_values", torch.tensor(fn["values"], dtype=torch.float64))
            self.register_buffer(f"{prefix}_slopes", torch.tensor(fn["slopes"], dtype=torch.float64))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_osim(cls, path: str | os.PathLike, include_markers: bool = False) -> "ForwardKinematics":
        """Read the joint frames, stations (and with ``include_markers`` the
        markers) of the ``.osim`` model at ``path``. Raises
        ``FileNotFoundError`` if there is no such file and :class:`ModelError`
        if OpenSim cannot load it or it holds a joint, function or constraint
        this class cannot represent."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such OpenSim model file")
        with opensim_quiet():
            import opensim as osim

            try:
                model = osim.Model(str(path))
                model.initSystem()
            except RuntimeError as exc:  # OpenSim reports a bad file as a RuntimeError from C++
                raise ModelError(f"{path}: OpenSim could not load the model ({_detail(exc)})") from None
        return cls(_spec_from_model(model, include_markers, source=str(path)))

    @classmethod
    def from_model(cls, model, include_markers: bool = False) -> "ForwardKinematics":
        """Like :meth:`from_osim` for an in-memory ``opensim.Model`` (initialised)."""
        source = model.getInputFileName() or model.getName()
        return cls(_spec_from_model(model, include_markers, source=source))

    # ------------------------------------------------------------------ queries

    def point_index(self, name: str) -> int:
        """Index of point ``name`` in :attr:`point_names`."""
        try:
            return self._point_lookup[name]
        except KeyError:
            raise KeyError(f"no point named {name!r}; known points: {', '.join(self.point_names)}") from None

    def point_indices(self, names: Sequence[str]) -> list[int]:
        return [self.point_index(n) for n in names]

    def foot_contact_indices(self) -> list[int]:
        """Indices of the foot contact points (heel, metatarsal heads, toe tip)."""
        return [self._point_lookup[n] for n in FOOT_CONTACT_POINTS if n in self._point_lookup]

    def point_frame(self, name: str) -> tuple[str, np.ndarray]:
        """Where point ``name`` is fixed: its body's name and its position in
        that body's frame (metres), as OpenSim places a station."""
        i = self.point_index(name)
        return self.body_names[self._point_body[i]], self.point_local[i].cpu().numpy().copy()

    def stick_segments(self) -> list[tuple[int, int]]:
        """:data:`STICK_SEGMENTS` as index pairs, for the points this model has."""
        return [(self._point_lookup[a], self._point_lookup[b]) for a, b in STICK_SEGMENTS
                if a in self._point_lookup and b in self._point_lookup]

    @property
    def total_mass(self) -> float:
        return float(self.body_mass.sum())

    # ------------------------------------------------------------------ kinematics

    def _generalized(self, coords: Tensor) -> Tensor:
        """(N, 33) dataset units -> (N, n_model_coords) radians / metres."""
        if coords.shape[-1] != len(COORDINATES):
            raise ValueError(f"expected (..., {len(COORDINATES)}) coordinates, got {tuple(coords.shape)}")
        return coords * self.coord_scale.to(coords.dtype)

    def bodies_of_points(self, points: Sequence[int]) -> list[int]:
        """Indices of the bodies that carry ``points`` and of all their ancestors
        (the bodies whose transforms the points need), sorted."""
        parent = {joint["child"]: joint["parent"] for joint in self._joints}
        needed: set[int] = set()
        for p in points:
            body = self._point_body[p]
            while body >= 0 and body not in needed:
                needed.add(body)
                body = parent.get(body, -1)
        return sorted(needed)

    def body_transforms(self, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Rotation (..., B, 3, 3) and origin (..., B, 3) of every body in ground."""
        rots, origins, lead = self._transforms(coords, None)
        R = torch.stack(rots, dim=1)
        o = torch.stack(origins, dim=1)
        return R.reshape(*lead, -1, 3, 3), o.reshape(*lead, -1, 3)

    def _transforms(self, coords: Tensor, needed: set[int] | None
                    ) -> tuple[list[Tensor | None], list[Tensor | None], torch.Size]:
        """Per-body rotation (N, 3, 3) and origin (N, 3) for the bodies in
        ``needed`` (every body when None; the others stay None), and the leading shape."""
        if not torch.is_floating_point(coords):
            raise TypeError("coords must be a floating-point tensor")
        lead = coords.shape[:-1]
        q = self._generalized(coords.reshape(-1, coords.shape[-1]))
        n, dtype = q.shape[0], q.dtype
        rots: list[Tensor | None] = [None] * len(self.body_names)
        origins: list[Tensor | None] = [None] * len(self.body_names)
        coupled: list[Tensor] = []
        for c, coupler in enumerate(self._couplers):
            coupled.append(self._evaluate(f"c{c}", coupler["fn"], self._source(coupler["src"], q, coupled)))
        for j, (joint, const) in enumerate(zip(self._joints, self._constants(dtype, q.device))):
            if needed is not None and joint["child"] not in needed:
                continue
            R_PF, p_PF, R_MB, p_MB = const["R_PF"], const["p_PF"], const["R_MB"], const["p_MB"]
            # None stands for an identity rotation or a zero offset: skipping it changes no bit
            if joint["parent"] < 0:
                R_GF = None if R_PF is None else R_PF.expand(n, 3, 3)
                o_GF = torch.zeros(n, 3, dtype=dtype, device=q.device) if p_PF is None else p_PF.expand(n, 3)
            else:
                R_GP, o_GP = rots[joint["parent"]], origins[joint["parent"]]
                R_GF = R_GP if R_PF is None else _mm(R_GP, R_PF)
                o_GF = o_GP if p_PF is None else o_GP + _mv(R_GP, p_PF)
            R_FM: Tensor | AxisRotation | None = None
            p_FM: Tensor | None = None
            for k, axis in enumerate(joint["axes"]):
                if axis["src"] is None:
                    value = torch.full((n,), axis["fn"]["value"], dtype=dtype, device=q.device)
                else:
                    value = self._evaluate(f"j{j}_a{k}", axis["fn"], self._source(axis["src"], q, coupled))
                if axis["rotation"]:
                    rot = _rotation(const["axes"][k], value)
                    if R_FM is None:
                        R_FM = rot
                    else:
                        R_FM = _as_matrix(R_FM)
                        R_FM = rot.right_of(R_FM) if isinstance(rot, AxisRotation) else _mm(R_FM, rot)
                else:
                    step = value[:, None] * const["axes"][k]
                    p_FM = step if p_FM is None else p_FM + step
            R_FM = None if R_FM is None else _as_matrix(R_FM)
            R_GM = R_FM if R_GF is None else R_GF if R_FM is None else _mm(R_GF, R_FM)
            if p_FM is not None:
                o_GF = o_GF + (p_FM if R_GF is None else _mv(R_GF, p_FM))
            if R_GM is None:
                R_GM = torch.eye(3, dtype=dtype, device=q.device).expand(n, 3, 3)
            child = joint["child"]
            rots[child] = R_GM if R_MB is None else _mm(R_GM, R_MB)
            origins[child] = o_GF if p_MB is None else o_GF + _mv(R_GM, p_MB)
        return rots, origins, lead

    @staticmethod
    def _source(src: tuple[str, int], q: Tensor, coupled: list[Tensor]) -> Tensor:
        """The coordinate a function reads: one of the 33 (radians / metres) or a coupled one. (N,)"""
        kind, index = src
        return q[:, index] if kind == "q" else coupled[index]

    def _evaluate(self, prefix: str, fn: dict, x: Tensor) -> Tensor:
        """Value of the joint or coupler function ``fn`` at ``x`` (N,) -> (N,)."""
        kind = fn["kind"]
        if kind == "linear":
            if fn["slope"] == 1.0 and fn["intercept"] == 0.0:
                return x
            return fn["slope"] * x + fn["intercept"]
        if kind == "poly":
            coeffs = fn["coeffs"]
            y = coeffs[0] * x + coeffs[1] if len(coeffs) > 1 else torch.full_like(x, coeffs[0])
            for c in coeffs[2:]:
                y = y * x + c
            return y
        if kind == "constant":
            return torch.full_like(x, fn["value"])
        values = getattr(self, f"{prefix}_values").to(x.dtype)
        slopes = getattr(self, f"{prefix}_slopes").to(x.dtype)
        return _hermite(x, fn["lo"], fn["step"], values, slopes)

    def forward(self, coords: Tensor, points: Sequence[int] | None = None) -> Tensor:
        """(..., 33) coordinates (deg / m) -> (..., P, 3) point positions in ground (m).

        With ``points`` (indices into :attr:`point_names`) only those points are
        returned, in that order, and only the bodies they hang from are
        computed: the feet need about half of the model's joints.
        """
        if points is None:
            R, o = self.body_transforms(coords)
            idx = torch.as_tensor(self._point_body, device=coords.device)
            local = self.point_local.to(coords.dtype)
            Rp = R.index_select(-3, idx)            # (..., P, 3, 3)
            op = o.index_select(-2, idx)            # (..., P, 3)
            return op + _mv(Rp, local)
        points = list(points)
        rots, origins, lead = self._transforms(coords, set(self.bodies_of_points(points)))
        bodies = [self._point_body[p] for p in points]
        Rp = torch.stack([rots[b] for b in bodies], dim=1)      # (N, P, 3, 3)
        op = torch.stack([origins[b] for b in bodies], dim=1)   # (N, P, 3)
        local = self.point_local[points].to(coords.dtype)
        return (op + _mv(Rp, local)).reshape(*lead, len(points), 3)

    def center_of_mass(self, coords: Tensor) -> Tensor:
        """Whole-body centre of mass in ground (m). (..., 33) -> (..., 3)"""
        R, o = self.body_transforms(coords)
        com = o + _mv(R, self.body_com.to(coords.dtype))
        m = self.body_mass.to(coords.dtype)
        return (com * m[:, None]).sum(-2) / m.sum()

    def extra_repr(self) -> str:
        return f"bodies={len(self.body_names)}, points={len(self.point_names)}"


# ----------------------------------------------------------------------------- OpenSim parsing

_AXIS_JOINTS: dict[str, tuple[tuple[bool, tuple[float, float, float]], ...]] = {
    "PinJoint": ((True, (0.0, 0.0, 1.0)),),
    "SliderJoint": ((False, (1.0, 0.0, 0.0)),),
    "UniversalJoint": ((True, (1.0, 0.0, 0.0)), (True, (0.0, 1.0, 0.0))),
    "GimbalJoint": ((True, (1.0, 0.0, 0.0)), (True, (0.0, 1.0, 0.0)), (True, (0.0, 0.0, 1.0))),
}
"""Joints with one coordinate per axis, as (is rotation, axis in F) in order."""

_SUPPORTED_JOINTS = ("CustomJoint", *_AXIS_JOINTS, "WeldJoint")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _detail(exc: BaseException) -> str:
    """The informative line of an OpenSim C++ exception (its first line only
    names the C++ function that threw), at most 160 characters."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:160]


def _transform(t) -> tuple[np.ndarray, np.ndarray]:
    R = t.R()
    rot = np.array([[R.get(i, j) for j in range(3)] for i in range(3)])
    p = t.p()
    return rot, np.array([p.get(0), p.get(1), p.get(2)])


def _vec(v) -> np.ndarray:
    return np.array([v.get(0), v.get(1), v.get(2)], dtype=float)


def _describe(func) -> str:
    """Class name of an OpenSim function, with what a MultiplierFunction wraps."""
    import opensim as osim

    kind = func.getConcreteClassName()
    if kind == "MultiplierFunction":
        return f"MultiplierFunction({_describe(osim.MultiplierFunction.safeDownCast(func).getFunction())})"
    return kind


def _exact_function(func) -> dict | None:
    """An exactly evaluable spec of an OpenSim function of (at most) one
    variable, or None when it must be tabulated."""
    import opensim as osim

    kind = func.getConcreteClassName()
    if kind == "Constant":
        return {"kind": "constant", "value": float(osim.Constant.safeDownCast(func).getValue())}
    if kind == "LinearFunction":
        lf = osim.LinearFunction.safeDownCast(func)
        return {"kind": "linear", "slope": float(lf.getSlope()), "intercept": float(lf.getIntercept())}
    if kind == "PolynomialFunction":
        c = osim.PolynomialFunction.safeDownCast(func).getCoefficients()
        coeffs = [float(c.get(i)) for i in range(c.size())]  # highest power first
        return {"kind": "poly", "coeffs": coeffs or [0.0]}
    if kind == "MultiplierFunction":
        mf = osim.MultiplierFunction.safeDownCast(func)
        inner = _exact_function(mf.getFunction())
        return None if inner is None else _scale_spec(inner, float(mf.getScale()))
    return None


def _scale_spec(fn: dict, scale: float) -> dict:
    """``scale`` times a function spec."""
    if scale == 1.0:
        return fn
    if fn["kind"] == "constant":
        return {"kind": "constant", "value": scale * fn["value"]}
    if fn["kind"] == "linear":
        return {"kind": "linear", "slope": scale * fn["slope"], "intercept": scale * fn["intercept"]}
    if fn["kind"] == "poly":
        return {"kind": "poly", "coeffs": [scale * c for c in fn["coeffs"]]}
    return {**fn, "values": scale * fn["values"], "slopes": scale * fn["slopes"]}


def _evaluate_np(fn: dict, x: np.ndarray) -> np.ndarray:
    """A function spec at ``x`` (float64 array), for checks and constant folding."""
    kind = fn["kind"]
    if kind == "constant":
        return np.full_like(x, fn["value"], dtype=float)
    if kind == "linear":
        return fn["slope"] * x + fn["intercept"]
    if kind == "poly":
        return np.polyval(fn["coeffs"], x)
    return _hermite_array(x, fn["lo"], fn["step"], fn["values"], fn["slopes"])


def _opensim_values(func, x: np.ndarray) -> np.ndarray:
    """OpenSim's own evaluation of a function of one variable at each ``x``."""
    import opensim as osim

    arg = osim.Vector(1, 0.0)
    out = np.empty(len(x))
    for i, value in enumerate(x):
        arg.set(0, float(value))
        out[i] = func.calcValue(arg)
    return out


def _function_spec(func, domain: tuple[float, float] | None, where: str) -> dict:
    """Spec of ``func``, a function of one coordinate whose useful values lie in
    ``domain`` (None: unknown), checked against OpenSim's own evaluation.
    ``where`` ('<model>: joint <name> axis <k> (<coordinate>)') starts any error."""
    import opensim as osim

    described = _describe(func)
    spec = _exact_function(func)
    try:
        if spec is not None:
            probe = np.linspace(*(domain or (-1.0, 1.0)), 9)
            tol = 1e-9
        else:
            if domain is None:
                raise ModelError(f"{where}: cannot tabulate its {described}: the coordinate has no finite range")
            span = domain[1] - domain[0]
            grid = np.linspace(domain[0] - _TABLE_PAD * span, domain[1] + _TABLE_PAD * span, _TABLE_SAMPLES)
            deriv = osim.StdVectorInt()
            deriv.append(0)
            arg = osim.Vector(1, 0.0)
            slopes = np.empty(len(grid))
            values = _opensim_values(func, grid)
            for i, g in enumerate(grid):
                arg.set(0, float(g))
                slopes[i] = func.calcDerivative(deriv, arg)
            spec = {"kind": "table", "lo": float(grid[0]), "step": float(grid[1] - grid[0]),
                    "values": values, "slopes": slopes}
            probe = 0.5 * (grid[1:] + grid[:-1])
            tol = _TABLE_TOL
        reference = _opensim_values(func, probe)
    except RuntimeError as exc:
        raise ModelError(f"{where}: OpenSim cannot evaluate its {described}: {_first_line(exc)}") from None
    error = float(np.max(np.abs(_evaluate_np(spec, probe) - reference)))
    if not error <= tol * max(1.0, float(np.max(np.abs(reference)))):
        raise ModelError(f"{where}: its {described} cannot be reproduced (differs from OpenSim by {error:.3g}); "
                         "ForwardKinematics supports LinearFunction, Constant, PolynomialFunction, "
                         "MultiplierFunction and smooth splines of one coordinate")
    return spec


class _ModelReader:
    """Reads an initialised ``opensim.Model`` into the plain spec
    :class:`ForwardKinematics` is built from; raises :class:`ModelError`."""

    def __init__(self, model, source: str) -> None:
        import opensim as osim

        self.osim = osim
        self.model = model
        self.source = source
        self.bodies = [model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())]
        self.body_index = {n: i for i, n in enumerate(self.bodies)}
        self.coords = model.getCoordinateSet()
        self.model_coords = [self.coords.get(i).getName() for i in range(self.coords.getSize())]
        for name in COORDINATES:
            if name in self.model_coords:
                motion = self.coords.get(name).getMotionType()
                if (motion == osim.Coordinate.Translational) != (name in TRANSLATIONS):
                    raise ModelError(f"{source}: coordinate {name} has an unexpected motion type "
                                     f"({'translation' if name in TRANSLATIONS else 'rotation'} expected)")
        self.couplers: list[dict] = []
        self.coupled_index: dict[str, int] = {}
        self.coupled_domain: dict[str, tuple[float, float] | None] = {}
        self._read_constraints()

    # -- coordinates

    def source_of(self, name: str) -> tuple[str, int] | None:
        """Where a coordinate's value comes from: ('q', i) for one of the 33,
        ('dep', i) for a coupled one, None for one fixed at its default."""
        if name in COORDINATES:
            return ("q", COORDINATES.index(name))
        if name in self.coupled_index:
            return ("dep", self.coupled_index[name])
        return None

    def domain_of(self, name: str) -> tuple[float, float] | None:
        """Values a coordinate takes in practice: its range, or for a coupled
        coordinate the coupler's image of its independent coordinate's range
        (OpenCap gives the knee's beta coordinates a range of +-99999.9)."""
        if name in self.coupled_domain:
            return self.coupled_domain[name]
        c = self.coords.get(name)
        lo, hi = c.getRangeMin(), c.getRangeMax()
        limit = 10.0 if c.getMotionType() == self.osim.Coordinate.Translational else 4 * math.pi
        if not (math.isfinite(lo) and math.isfinite(hi)) or not 0 < hi - lo <= 2 * limit:
            return None
        return float(lo), float(hi)

    def _read_constraints(self) -> None:
        osim = self.osim
        cs = self.model.getConstraintSet()
        pending = []
        for i in range(cs.getSize()):
            con = cs.get(i)
            if not osim.PropertyHelper.getValueBool(con.getPropertyByName("isEnforced")):
                continue
            kind = con.getConcreteClassName()
            where = f"{self.source}: constraint {con.getName()}"
            if kind != "CoordinateCouplerConstraint":
                raise ModelError(f"{where} is a {kind}; ForwardKinematics supports only "
                                 "CoordinateCouplerConstraint among enforced constraints")
            cc = osim.CoordinateCouplerConstraint.safeDownCast(con)
            names = cc.getIndependentCoordinateNames()
            independent = [names.get(k) for k in range(names.size())]
            dependent = cc.getDependentCoordinateName()
            if len(independent) != 1:
                raise ModelError(f"{where}: a {_describe(cc.getFunction())} of {len(independent)} independent "
                                 "coordinates is not supported")
            for name in (independent[0], dependent):
                if name not in self.model_coords:
                    raise ModelError(f"{where}: the model has no coordinate {name}")
            if dependent in COORDINATES:
                raise ModelError(f"{where}: coordinate {dependent} is one of the 33 inputs but is driven by "
                                 "this constraint; not supported")
            scale = float(osim.PropertyHelper.getValueDouble(cc.getPropertyByName("scale_factor")))
            pending.append((where, independent[0], dependent, cc.getFunction(), scale))
        while pending:  # couplers whose independent coordinate is known first
            ready = [p for p in pending if p[1] not in {other[2] for other in pending}]
            if not ready:
                raise ModelError(f"{pending[0][0]}: coupled coordinates form a cycle")
            for item in ready:
                pending.remove(item)
                where, independent, dependent, func, scale = item
                domain = self.domain_of(independent)
                fn = _function_spec(func, domain, f"{where} ({dependent} from {independent})")
                fn = _scale_spec(fn, scale)
                src = self.source_of(independent)
                if src is None:  # independent coordinate fixed at its default: a constant
                    default = self.coords.get(independent).getDefaultValue()
                    fn = {"kind": "constant", "value": float(_evaluate_np(fn, np.array([default]))[0])}
                    src = ("q", 0)
                self.coupled_index[dependent] = len(self.couplers)
                self.couplers.append({"name": dependent, "src": src, "fn": fn})
                image = None if domain is None else _evaluate_np(fn, np.linspace(*domain, 257))
                ok = image is not None and np.isfinite(image).all() and image.max() > image.min()
                self.coupled_domain[dependent] = (float(image.min()), float(image.max())) if ok else None

    # -- frames and joints

    def frame_body(self, frame) -> tuple[int, np.ndarray, np.ndarray]:
        """(body index or -1 for the ground, R, p) of a frame fixed to a body."""
        base = frame.findBaseFrame()
        R, p = _transform(frame.findTransformInBaseFrame())
        if base.getAbsolutePathString() == self.model.getGround().getAbsolutePathString():
            return -1, R, p
        name = base.getName()
        if name not in self.body_index:
            raise ModelError(f"{self.source}: frame {frame.getAbsolutePathString()} is not fixed to a body")
        return self.body_index[name], R, p

    def axis(self, joint: str, k: int, rotation: bool, axis: np.ndarray, names: list[str], func) -> dict | None:
        """Spec of one transform axis; None when it is constantly zero."""
        norm = np.linalg.norm(axis)
        axis = axis / norm if norm > 0 else axis
        where = f"{self.source}: joint {joint} axis {k + 1}"
        if len(names) > 1:
            raise ModelError(f"{where}: a {_describe(func)} of {len(names)} coordinates ({', '.join(names)}) "
                             "is not supported")
        if not names:
            fn = _exact_function(func)
            constant = fn is not None and (fn["kind"] == "constant" or fn["kind"] == "poly" and len(fn["coeffs"]) == 1
                                           or fn["kind"] == "linear" and fn["slope"] == 0.0)
            if not constant:
                raise ModelError(f"{where}: a {_describe(func)} without a coordinate is not supported")
            fn = {"kind": "constant", "value": float(_evaluate_np(fn, np.zeros(1))[0])}
            src = None
        else:
            name = names[0]
            if name not in self.model_coords:
                raise ModelError(f"{where}: the model has no coordinate {name}")
            src = self.source_of(name)
            if src is None:  # a coordinate outside the 33 and not coupled: fixed at its default
                default = self.coords.get(name).getDefaultValue()
                try:
                    fn = {"kind": "constant", "value": float(_opensim_values(func, np.array([default]))[0])}
                except RuntimeError as exc:
                    raise ModelError(f"{where} ({name}): OpenSim cannot evaluate its {_describe(func)}: "
                                     f"{_first_line(exc)}") from None
            else:
                fn = _function_spec(func, self.domain_of(name), f"{where} ({name})")
        if fn["kind"] == "constant":
            if fn["value"] == 0.0:
                return None
            src = None
        return {"axis": axis, "rotation": rotation, "src": src, "fn": fn}

    def joint(self, joint) -> dict:
        """Spec of one joint: frames, parent and child body, transform axes."""
        osim = self.osim
        name = joint.getName()
        kind = joint.getConcreteClassName()
        if kind not in _SUPPORTED_JOINTS:
            raise ModelError(f"{self.source}: joint {name} is a {kind}; ForwardKinematics supports "
                             f"{', '.join(_SUPPORTED_JOINTS)}")
        parent, R_PF, p_PF = self.frame_body(joint.getParentFrame())
        child, R_BM, p_BM = self.frame_body(joint.getChildFrame())
        if child < 0:
            raise ModelError(f"{self.source}: joint {name} has the ground as child; not supported")
        axes: list[dict | None] = []
        if kind == "CustomJoint":
            st = osim.CustomJoint.safeDownCast(joint).getSpatialTransform()
            for k in range(6):
                ta = st.getTransformAxis(k)
                cn = ta.getCoordinateNames()
                names = [cn.getValue(i) for i in range(cn.size())]
                axes.append(self.axis(name, k, k < 3, _vec(ta.getAxis()), names, ta.getFunction()))
        elif kind in _AXIS_JOINTS:
            expected = _AXIS_JOINTS[kind]
            if joint.numCoordinates() != len(expected):
                raise ModelError(f"{self.source}: joint {name} ({kind}) has {joint.numCoordinates()} coordinates, "
                                 f"expected {len(expected)}")
            identity = osim.LinearFunction(1.0, 0.0)
            for k, (rotation, axis) in enumerate(expected):
                coord = joint.get_coordinates(k).getName()
                axes.append(self.axis(name, k, rotation, np.array(axis), [coord], identity))
        return {
            "name": name, "parent": parent, "child": child, "type": kind,
            "R_PF": R_PF, "p_PF": p_PF, "R_MB": R_BM.T, "p_MB": -R_BM.T @ p_BM, "p_BM": p_BM,
            "axes": [a for a in axes if a is not None],
        }


FOOT_WIDTH_RATIO = 0.18
"""Half the distance between the first and fifth metatarsal heads, as a
fraction of the heel-to-MTP length (about 3.2 cm for a 1.70 m subject)."""

TOE_LENGTH_RATIO = 0.30
"""Toe tip beyond the MTP joint, as a fraction of the heel-to-MTP length."""


def _derived_foot_points(joints: list[dict], bodies: Sequence[str]) -> list[tuple[str, int, np.ndarray]]:
    """Foot contact points of a model that defines none (OpenCap's models have
    no foot stations and, generic, no markers), built from its own geometry in
    each ``calcn`` body frame, so they scale with the model:
    ``heel`` at the calcaneus origin (the bottom of the heel in the
    Rajagopal-family models OpenCap uses: 3.5 mm above the floor when
    standing), ``met1`` / ``met5`` either side of the MTP joint centre by
    :data:`FOOT_WIDTH_RATIO` of the heel-MTP length, ``toe`` beyond the MTP
    joint by :data:`TOE_LENGTH_RATIO` of it (on the calcaneus: the MTP
    coordinate is locked in OpenCap's squats)."""
    out: list[tuple[str, int, np.ndarray]] = []
    for side, lateral in (("r", 1.0), ("l", -1.0)):
        mtp = next((j for j in joints if j["name"] == f"mtp_{side}"), None)
        if mtp is None or f"calcn_{side}" not in bodies or bodies[mtp["parent"]] != f"calcn_{side}":
            continue
        calcn = mtp["parent"]
        v = np.asarray(mtp["p_PF"], dtype=np.float64)
        width = FOOT_WIDTH_RATIO * float(np.linalg.norm(v)) * np.array([0.0, 0.0, lateral])
        out += [(f"heel_{side}", calcn, np.zeros(3)), (f"met1_{side}", calcn, v - width),
                (f"met5_{side}", calcn, v + width), (f"toe_{side}", calcn, (1.0 + TOE_LENGTH_RATIO) * v)]
    return out


def _spec_from_model(model, include_markers: bool, source: str) -> dict:
    import opensim as osim

    reader = _ModelReader(model, source)
    frame_body = reader.frame_body
    js = model.getJointSet()
    joints_raw = [reader.joint(js.get(i)) for i in range(js.getSize())]

    # order joints parent-before-child
    ordered, placed = [], {-1}
    pending = list(joints_raw)
    while pending:
        progress = False
        for entry in list(pending):
            if entry["parent"] in placed:
                ordered.append(entry)
                placed.add(entry["child"])
                pending.remove(entry)
                progress = True
        if not progress:
            raise ModelError(f"{source}: joints {[e['name'] for e in pending]} do not connect to the ground")

    points: list[tuple[str, int, np.ndarray]] = []
    for entry in ordered:
        pname = JOINT_POINT_NAMES.get(entry["name"], entry["name"])
        points.append((pname, entry["child"], entry["p_BM"]))
    for comp in model.getComponentsList():
        if comp.getConcreteClassName() != "Station":
            continue
        station = osim.Station.safeDownCast(comp)
        if station.getAbsolutePathString().count("/") != 1:
            continue  # path points and other nested stations
        b, R, p = frame_body(station.getParentFrame())
        points.append((station.getName(), b, R @ _vec(station.get_location()) + p))
    if not any(p[0] in FOOT_CONTACT_POINTS for p in points):
        points.extend(_derived_foot_points(ordered, reader.bodies))
    if include_markers:
        ms = model.getMarkerSet()
        for i in range(ms.getSize()):
            marker = ms.get(i)
            b, R, p = frame_body(marker.getParentFrame())
            points.append((marker.getName(), b, R @ _vec(marker.get_location()) + p))
    names = [p[0] for p in points]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ModelError(f"{source}: duplicate point names {dup}")
    if any(p[1] < 0 for p in points):
        raise ModelError(f"{source}: points fixed to the ground are not supported")

    bs = model.getBodySet()
    return {
        "source": source,
        "bodies": reader.bodies,
        "joints": ordered,
        "couplers": reader.couplers,
        "points": points,
        "coord_scale": [1.0 if name in TRANSLATIONS else math.pi / 180.0 for name in COORDINATES],
        "body_mass": [bs.get(i).getMass() for i in range(bs.getSize())],
        "body_com": [_vec(bs.get(i).getMassCenter()) for i in range(bs.getSize())],
    }
