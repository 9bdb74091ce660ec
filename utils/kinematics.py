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
translating along the three translation axes expressed in F. Supported:
``CustomJoint`` whose transform-axis functions are ``LinearFunction`` or
``Constant`` (or any function of one coordinate, tabulated and interpolated
with cubic Hermite splines), and ``WeldJoint``.
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

__all__ = [
    "ForwardKinematics", "STICK_SEGMENTS", "FOOT_CONTACT_POINTS", "JOINT_POINT_NAMES",
    "rotation_about_axis",
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

_TABLE_SAMPLES = 721


def rotation_about_axis(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation matrices about a unit ``axis`` (3,) by ``angle`` (N,) radians. (N, 3, 3)"""
    x, y, z = axis[0], axis[1], axis[2]
    c, s = torch.cos(angle), torch.sin(angle)
    t = 1.0 - c
    row0 = torch.stack([t * x * x + c, t * x * y - s * z, t * x * z + s * y], dim=-1)
    row1 = torch.stack([t * x * y + s * z, t * y * y + c, t * y * z - s * x], dim=-1)
    row2 = torch.stack([t * x * z - s * y, t * y * z + s * x, t * z * z + c], dim=-1)
    return torch.stack([row0, row1, row2], dim=-2)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """3x3 matrix product with broadcasting. (..., 3, 3), (..., 3, 3) -> (..., 3, 3)"""
    return torch.matmul(a, b)


def _mv(a: Tensor, v: Tensor) -> Tensor:
    """3x3 matrix times 3-vector with broadcasting. (..., 3, 3), (..., 3) -> (..., 3)"""
    return torch.matmul(a, v.unsqueeze(-1)).squeeze(-1)


def _hermite(x: Tensor, grid_lo: float, step: float, values: Tensor, slopes: Tensor) -> Tensor:
    """Evaluate a cubic Hermite spline tabulated on a uniform grid. x (N,) -> (N,)"""
    n = values.shape[0]
    u = (x - grid_lo) / step
    i = torch.clamp(torch.floor(u).long(), 0, n - 2)
    t = u - i.to(u.dtype)
    y0, y1 = values[i], values[i + 1]
    m0, m1 = slopes[i] * step, slopes[i + 1] * step
    t2, t3 = t * t, t * t * t
    return (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1


class ForwardKinematics(nn.Module):
    """Forward kinematics of one OpenSim model; see the module docstring.

    Build with :meth:`from_osim`. ``forward(coords)`` maps (..., 33) canonical
    coordinates (degrees / metres) to (..., P, 3) ground positions (metres).
    """

    point_names: tuple[str, ...]
    body_names: tuple[str, ...]

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.body_names = tuple(spec["bodies"])
        self.point_names = tuple(p[0] for p in spec["points"])
        self._point_lookup = {n: i for i, n in enumerate(self.point_names)}
        self.coordinate_names = tuple(COORDINATES)
        self._joints = spec["joints"]  # python-side structure (indices, kinds)
        # numeric data in buffers so .to(device, dtype) moves it
        self.register_buffer("coord_scale", torch.tensor(spec["coord_scale"], dtype=torch.float64))
        self.register_buffer("coord_default", torch.tensor(spec["coord_default"], dtype=torch.float64))
        for j, joint in enumerate(spec["joints"]):
            self.register_buffer(f"j{j}_R_PF", torch.tensor(joint["R_PF"], dtype=torch.float64))
            self.register_buffer(f"j{j}_p_PF", torch.tensor(joint["p_PF"], dtype=torch.float64))
            self.register_buffer(f"j{j}_R_MB", torch.tensor(joint["R_MB"], dtype=torch.float64))
            self.register_buffer(f"j{j}_p_MB", torch.tensor(joint["p_MB"], dtype=torch.float64))
            self.register_buffer(f"j{j}_p_BM", torch.tensor(joint["p_BM"], dtype=torch.float64))
            for k, axis in enumerate(joint["axes"]):
                self.register_buffer(f"j{j}_a{k}", torch.tensor(axis["axis"], dtype=torch.float64))
                if axis["kind"] == "table":
                    self.register_buffer(f"j{j}_a{k}_values", torch.tensor(axis["values"], dtype=torch.float64))
                    self.register_buffer(f"j{j}_a{k}_slopes", torch.tensor(axis["slopes"], dtype=torch.float64))
        self._point_body = [p[1] for p in spec["points"]]
        self.register_buffer("point_local", torch.tensor(np.array([p[2] for p in spec["points"]]),
                                                         dtype=torch.float64).reshape(-1, 3))
        self.register_buffer("body_mass", torch.tensor(spec["body_mass"], dtype=torch.float64))
        self.register_buffer("body_com", torch.tensor(np.array(spec["body_com"]), dtype=torch.float64).reshape(-1, 3))
        self.joint_names = tuple(j["name"] for j in spec["joints"])

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_osim(cls, path: str | os.PathLike, include_markers: bool = False) -> "ForwardKinematics":
        """Read the joint frames, stations (and with ``include_markers`` the
        markers) of the ``.osim`` model at ``path``."""
        import opensim as osim

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such OpenSim model file")
        if osim.Logger.shouldLog(osim.Logger.Level_Info):
            osim.Logger.setLevelString("warn")  # one '[info] Loaded model' line per subject is noise here
        try:
            model = osim.Model(str(path))
            model.initSystem()
        except RuntimeError as err:  # OpenSim reports a bad file as a RuntimeError from C++
            from utils.errors import UserError

            detail = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err))[:160]
            raise UserError(f"{path}: not a loadable OpenSim model ({detail})") from None
        return cls(_spec_from_model(model, include_markers, source=str(path)))

    @classmethod
    def from_model(cls, model, include_markers: bool = False) -> "ForwardKinematics":
        """Like :meth:`from_osim` for an in-memory ``opensim.Model`` (initialised)."""
        return cls(_spec_from_model(model, include_markers, source=model.getName()))

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
        eye = torch.eye(3, dtype=dtype, device=q.device).expand(n, 3, 3)
        zero = torch.zeros(n, 3, dtype=dtype, device=q.device)
        default = self.coord_default.to(dtype)
        for j, joint in enumerate(self._joints):
            if needed is not None and joint["child"] not in needed:
                continue
            R_PF = getattr(self, f"j{j}_R_PF").to(dtype)
            p_PF = getattr(self, f"j{j}_p_PF").to(dtype)
            if joint["parent"] < 0:
                R_GP, o_GP = eye, zero
            else:
                R_GP, o_GP = rots[joint["parent"]], origins[joint["parent"]]
            R_GF = _mm(R_GP, R_PF)
            o_GF = o_GP + _mv(R_GP, p_PF)
            R_FM, p_FM = eye, zero
            if joint["kind"] == "custom":
                for k, axis in enumerate(joint["axes"]):
                    a = getattr(self, f"j{j}_a{k}").to(dtype)
                    value = self._axis_value(j, k, axis, q, default)
                    if value is None:
                        continue
                    if axis["rotation"]:
                        R_FM = _mm(R_FM, rotation_about_axis(a, value))
                    else:
                        p_FM = p_FM + value[:, None] * a
            R_GM = _mm(R_GF, R_FM)
            o_GM = o_GF + _mv(R_GF, p_FM)
            R_MB = getattr(self, f"j{j}_R_MB").to(dtype)
            p_MB = getattr(self, f"j{j}_p_MB").to(dtype)
            child = joint["child"]
            rots[child] = _mm(R_GM, R_MB)
            origins[child] = o_GM + _mv(R_GM, p_MB)
        return rots, origins, lead

    def _axis_value(self, j: int, k: int, axis: dict, q: Tensor, default: Tensor) -> Tensor | None:
        kind = axis["kind"]
        if kind == "constant":
            if axis["value"] == 0.0:
                return None
            return torch.full((q.shape[0],), axis["value"], dtype=q.dtype, device=q.device)
        x = q[:, axis["coord"]] if axis["coord"] >= 0 else default[axis["model_coord"]].expand(q.shape[0])
        if kind == "linear":
            return axis["slope"] * x + axis["intercept"]
        values = getattr(self, f"j{j}_a{k}_values").to(q.dtype)
        slopes = getattr(self, f"j{j}_a{k}_slopes").to(q.dtype)
        return _hermite(x, axis["lo"], axis["step"], values, slopes)

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


def _transform(t) -> tuple[np.ndarray, np.ndarray]:
    R = t.R()
    rot = np.array([[R.get(i, j) for j in range(3)] for i in range(3)])
    p = t.p()
    return rot, np.array([p.get(0), p.get(1), p.get(2)])


def _vec(v) -> np.ndarray:
    return np.array([v.get(0), v.get(1), v.get(2)], dtype=float)


def _spec_from_model(model, include_markers: bool, source: str) -> dict:
    import opensim as osim

    bodies = [model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())]
    body_index = {n: i for i, n in enumerate(bodies)}
    coords = model.getCoordinateSet()
    model_coords = [coords.get(i).getName() for i in range(coords.getSize())]
    coord_default = [coords.get(i).getDefaultValue() for i in range(coords.getSize())]
    coord_scale = [1.0 if name in TRANSLATIONS else math.pi / 180.0 for name in COORDINATES]
    for name in COORDINATES:
        if name in model_coords:
            motion = coords.get(name).getMotionType()
            is_trans = motion == osim.Coordinate.Translational
            if is_trans != (name in TRANSLATIONS):
                raise ValueError(f"{source}: coordinate {name} has an unexpected motion type")

    def frame_body(frame) -> tuple[int, np.ndarray, np.ndarray]:
        base = frame.findBaseFrame()
        name = base.getName()
        X = frame.findTransformInBaseFrame()
        R, p = _transform(X)
        if name == model.getGround().getName() and base.getAbsolutePathString() == "/ground":
            return -1, R, p
        if name not in body_index:
            raise ValueError(f"{source}: frame {frame.getAbsolutePathString()} is not fixed to a body")
        return body_index[name], R, p

    joints_raw = []
    js = model.getJointSet()
    for i in range(js.getSize()):
        joint = js.get(i)
        parent, R_PF, p_PF = frame_body(joint.getParentFrame())
        child, R_BM, p_BM = frame_body(joint.getChildFrame())
        if child < 0:
            raise ValueError(f"{source}: joint {joint.getName()} has the ground as child; not supported")
        kind = joint.getConcreteClassName()
        entry = {
            "name": joint.getName(), "parent": parent, "child": child,
            "R_PF": R_PF, "p_PF": p_PF,
            "R_MB": R_BM.T, "p_MB": -R_BM.T @ p_BM, "p_BM": p_BM, "axes": [],
        }
        if kind == "WeldJoint":
            entry["kind"] = "weld"
        elif kind == "CustomJoint":
            entry["kind"] = "custom"
            st = osim.CustomJoint.safeDownCast(joint).getSpatialTransform()
            for k in range(6):
                ta = st.getTransformAxis(k)
                entry["axes"].append(_axis_spec(ta, k < 3, model_coords, coords, joint.getName(), source))
        else:
            raise ValueError(f"{source}: joint {joint.getName()} is a {kind}; ForwardKinematics supports "
                             "CustomJoint and WeldJoint")
        joints_raw.append(entry)

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
            raise ValueError(f"{source}: joints {[e['name'] for e in pending]} do not connect to the ground")

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
    if include_markers:
        ms = model.getMarkerSet()
        for i in range(ms.getSize()):
            marker = ms.get(i)
            b, R, p = frame_body(marker.getParentFrame())
            points.append((marker.getName(), b, R @ _vec(marker.get_location()) + p))
    names = [p[0] for p in points]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{source}: duplicate point names {dup}")
    if any(p[1] < 0 for p in points):
        raise ValueError(f"{source}: points fixed to the ground are not supported")

    bs = model.getBodySet()
    return {
        "bodies": bodies,
        "joints": ordered,
        "points": points,
        "coord_scale": coord_scale,
        "coord_default": coord_default,
        "body_mass": [bs.get(i).getMass() for i in range(bs.getSize())],
        "body_com": [_vec(bs.get(i).getMassCenter()) for i in range(bs.getSize())],
    }


def _axis_spec(ta, rotation: bool, model_coords: list[str], coords, joint: str, source: str) -> dict:
    axis = _vec(ta.getAxis())
    norm = np.linalg.norm(axis)
    axis = axis / norm if norm > 0 else axis
    cn = ta.getCoordinateNames()
    names = [cn.getValue(i) for i in range(cn.size())]
    func = ta.getFunction()
    fkind = func.getConcreteClassName()
    spec = {"axis": axis, "rotation": rotation}
    if not names:
        if fkind != "Constant":
            raise ValueError(f"{source}: joint {joint}: a {fkind} without a coordinate is not supported")
        import opensim as osim

        spec.update(kind="constant", value=float(osim.Constant.safeDownCast(func).getValue()))
        return spec
    if len(names) != 1:
        raise ValueError(f"{source}: joint {joint}: transform axis of {len(names)} coordinates is not supported")
    name = names[0]
    spec["coord"] = COORDINATES.index(name) if name in COORDINATES else -1
    spec["model_coord"] = model_coords.index(name)
    import opensim as osim

    if fkind == "LinearFunction":
        lf = osim.LinearFunction.safeDownCast(func)
        spec.update(kind="linear", slope=float(lf.getSlope()), intercept=float(lf.getIntercept()))
    elif fkind == "Constant":
        spec.update(kind="constant", value=float(osim.Constant.safeDownCast(func).getValue()))
    else:
        # any smooth function of one coordinate: tabulate it over the coordinate's range
        c = coords.get(name)
        lo, hi = c.getRangeMin(), c.getRangeMax()
        pad = 0.1 * (hi - lo)
        grid = np.linspace(lo - pad, hi + pad, _TABLE_SAMPLES)
        x = osim.Vector(1, 0.0)
        values, slopes = [], []
        deriv = osim.StdVectorInt()
        deriv.append(0)
        for g in grid:
            x.set(0, float(g))
            values.append(func.calcValue(x))
            slopes.append(func.calcDerivative(deriv, x))
        spec.update(kind="table", lo=float(grid[0]), step=float(grid[1] - grid[0]),
                    values=np.array(values), slopes=np.array(slopes))
    return spec
