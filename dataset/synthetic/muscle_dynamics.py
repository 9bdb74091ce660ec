"""Muscle activations for synthetic squats: OpenSim inverse dynamics with
ground reaction forces, then static optimisation.

Pipeline for one trial (:func:`simulate_trial`):

1. The kinematics are low-pass filtered (4 Hz, 4th-order Butterworth, zero
   lag) and differentiated (speeds, accelerations).
2. **Whole-body dynamics** (OpenSim): centre of mass and central angular
   momentum of every frame (``Model.calcMassCenterPosition``,
   ``SimbodyMatterSubsystem.calcSystemCentralMomentum``) give the total ground
   reaction force ``F = m (a_com - g)``, its centre of pressure on the floor and
   the free moment about the vertical.
3. The force is **shared between the feet** (by a weight-bearing fraction) and
   applied under each foot on ``calcn_r`` / ``calcn_l`` at a centre of
   pressure inside that foot's contact area: added to the body forces OpenSim
   applies (gravity) as an ``ExternalForce`` would add it, on the same loaded
   model (:class:`DynamicsModel`).
4. **Inverse dynamics** with OpenSim's ``InverseDynamicsSolver`` (muscles
   and reserve actuators removed; the coupled knee_angle_<s>_beta set from
   the knee by its coupler) gives the net moment of every coordinate; the six pelvis
   residuals left after the ground reaction forces are reported.
5. **Static optimisation** for every frame of a repetition: minimise the sum
   of squared activations plus weighted squared reserve moments subject to
   ``sum_m a_m F0_m f_L f_V cos(alpha) r_jm + reserve_j = tau_j`` for the 14
   lower-limb coordinates, ``0.05 <= a <= 1`` (OpenCap's activation floor).
   Moment arms ``r_jm`` are ``-dL/dq`` of OpenSim's muscle path lengths
   (finite differences, wrapping included); ``f_L``, ``f_V`` and pennation
   come from De Groote et al.'s (2016) curves and each muscle's parameters
   (rigid tendon, then tendons stretched by the previous pass's forces);
   passive fibre forces and hip rotation are treated as OpenCap's squat
   simulations treat them (ignored; left to nearly free reserves). The
   reserves are the residual moments reported with the activations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import opensim as osim
from scipy.optimize import lsq_linear
from scipy.signal import butter, sosfiltfilt

from utils.constants import COORDINATES, FRAME_RATE, ROTATION_MASK
from utils.kinematics import ForwardKinematics

__all__ = [
    "SO_COORDINATES", "PELVIS_DOFS", "DynamicsResult", "RepetitionActivations", "DynamicsModel",
    "filter_kinematics", "ground_reaction_forces", "grf_columns", "grf_storage", "foot_ground_force",
    "inverse_dynamics", "static_optimization",
    "simulate_trial", "solve_so_qp", "MuscleModel", "StateSetter", "find_crossing", "coordinate_groups",
]

SO_COORDINATES: tuple[str, ...] = tuple(
    f"{base}_{side}" for side in ("r", "l")
    for base in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle",
                 "subtalar_angle", "mtp_angle")
)
"""The 14 coordinates whose moments the muscles must produce."""

PELVIS_DOFS: tuple[str, ...] = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")

FILTER_CUTOFF_HZ = 4.0  # Hz, as OpenCap's squat simulations filter the tracked coordinates
RESERVE_OPTIMAL_MOMENT = 1.0  # N m; a reserve of 1 N m costs as much as one fully active muscle
HIP_ROTATION_RESERVE = 30.0 * (100.0 / 0.001) ** 0.5  # N m, see below
# OpenCap's squat simulations add hip-rotation reserve actuators (optimal
# force 30 N m) whose cost term weighs 0.001 against 100 for the squared
# activations: a reserve of 30 N m x sqrt(1e5) costs as much as one fully
# active muscle, i.e. hip rotation is left to the reserves
_FD_STEP = 1e-6               # rad, finite-difference step for moment arms
_MAX_ARM_DISAGREEMENT = 0.005 # m, forward vs backward difference beyond which the path jumped
_MOMENT_ARM_STRIDE = 5        # moment arms and lengths every 5th frame (1/12 s), interpolated in between
_CROSSING_PROBE = 0.1         # rad, move of a coordinate pair that shows which muscles span it
_CROSSING_TOL = 1e-9          # m, length change beyond rounding (~1e-15 m) that marks a spanning muscle
_PAIR_COLUMNS: tuple[tuple[int, int], ...] = tuple(
    (COORDINATES.index(SO_COORDINATES[j]), COORDINATES.index(SO_COORDINATES[j + len(SO_COORDINATES) // 2]))
    for j in range(len(SO_COORDINATES) // 2))
"""Canonical columns of the right and left coordinate of each pair of :data:`SO_COORDINATES`."""
GRAVITY = np.array([0.0, -9.80665, 0.0])


@dataclass
class DynamicsResult:
    """Inverse dynamics of a trial: ``moments`` (T, 33) net generalised forces in
    canonical coordinate order (N m for rotations, N for translations; pelvis
    entries are residuals), the ground reaction forces and the filtered kinematics."""

    moments: np.ndarray
    grf: dict[str, np.ndarray]
    coords_filtered: np.ndarray  # (T, 33) degrees / metres
    speeds: np.ndarray           # (T, 33) rad/s, m/s
    accelerations: np.ndarray    # (T, 33) rad/s^2, m/s^2


@dataclass
class RepetitionActivations:
    """Static optimisation of one repetition ``frames = range(start, end)``:
    ``activations`` (n, 80) in the order of ``muscles``; ``reserves`` (n, 14)
    residual moments (N m) of :data:`SO_COORDINATES`; ``moments`` (n, 14) the
    inverse-dynamics moments; ``pelvis_residuals`` (n, 6)."""

    start: int
    end: int
    muscles: tuple[str, ...]
    activations: np.ndarray
    reserves: np.ndarray
    moments: np.ndarray
    pelvis_residuals: np.ndarray
    summary: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def filter_kinematics(coords: np.ndarray, fs: float = FRAME_RATE, cutoff: float = FILTER_CUTOFF_HZ
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-pass filter (T, 33) coordinates (degrees / metres) and differentiate.

    Returns (filtered coordinates in degrees / metres, speeds, accelerations in
    rad / m based units)."""
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != len(COORDINATES):
        raise ValueError(f"coords must be (T, {len(COORDINATES)}), got {coords.shape}")
    if coords.shape[0] < 16:
        raise ValueError(f"need at least 16 frames for inverse dynamics, got {coords.shape[0]}")
    sos = butter(4, cutoff / (fs / 2.0), output="sos")
    pad = min(3 * 60, coords.shape[0] - 1)
    filtered = np.ascontiguousarray(sosfiltfilt(sos, coords, axis=0, padtype="even", padlen=pad))
    si = _to_si(filtered)
    dt = 1.0 / fs
    speeds = np.gradient(si, dt, axis=0, edge_order=2)
    accels = np.gradient(speeds, dt, axis=0, edge_order=2)
    return filtered, speeds, accels


def _to_si(coords_deg: np.ndarray) -> np.ndarray:
    out = np.array(coords_deg, dtype=float, copy=True)
    rot = [i for i, is_rot in enumerate(ROTATION_MASK) if is_rot]
    out[..., rot] = np.deg2rad(out[..., rot])
    return out


class StateSetter:
    """Sets q and u of a model's state from canonical-order arrays (SI units).

    Coordinates outside the canonical 33 that a ``CoordinateCouplerConstraint``
    drives from one of them (LaiUhlrich2022's ``knee_angle_<s>_beta``) are set
    from the coupler's function: value f(q), speed f'(q) u, acceleration
    f'(q) udot + f''(q) u^2; their generalised forces are mapped back onto the
    independent coordinate (tau_q += f'(q) tau_beta)."""

    def __init__(self, model: osim.Model, state: osim.State) -> None:
        cs = model.getCoordinateSet()
        nq = state.getNQ()
        self.nq = nq
        if state.getNU() != nq:
            raise RuntimeError("the model has joints with nq != nu; not supported")
        state.setQ(osim.Vector.createFromMat(np.zeros(nq)))

        def locate(name: str) -> int:
            c = cs.get(name)
            c.setValue(state, 0.5, False)
            q = state.getQ().to_numpy()
            hit = np.flatnonzero(np.abs(q - 0.5) < 1e-12)
            c.setValue(state, 0.0, False)
            if hit.size != 1:
                raise RuntimeError(f"cannot locate coordinate {name} in the state vector")
            return int(hit[0])

        self.q_index = np.array([locate(name) for name in COORDINATES], dtype=int)
        self.couplers: list[tuple[int, int, osim.Function]] = []  # (dependent mobility, independent canonical, f)
        constraints = model.getConstraintSet()
        for i in range(constraints.getSize()):
            cc = osim.CoordinateCouplerConstraint.safeDownCast(constraints.get(i))
            if cc is None or not cc.get_isEnforced():
                continue
            indep = cc.getIndependentCoordinateNames()
            if indep.getSize() != 1 or indep.get(0) not in COORDINATES:
                raise RuntimeError(f"coupler {cc.getName()}: only one canonical independent coordinate is supported")
            self.couplers.append((locate(cc.getDependentCoordinateName()), COORDINATES.index(indep.get(0)),
                                  cc.getFunction()))
        self._arg = osim.Vector(1, 0.0)  # the coupler functions' argument, made once (evaluated every frame)
        self._last: dict[tuple[int, int], tuple[float, float]] = {}  # (function, order) -> (x, value)

    def _f(self, f: osim.Function, x: float, order: int) -> float:
        """``order``-th derivative (0: the value) of the one-argument function ``f`` at ``x``.
        The last value of each function and order is kept: a frame's q sets the
        state, the accelerations and the generalised forces with the same x."""
        x = float(x)
        key = (id(f), order)
        last = self._last.get(key)
        if last is not None and last[0] == x:
            return last[1]
        self._arg.set(0, x)
        if order == 0:
            value = f.calcValue(self._arg)
        else:
            deriv = osim.StdVectorInt()  # made per call: swig warns of a leak if one outlives the interpreter
            for _ in range(order):
                deriv.push_back(0)
            value = f.calcDerivative(deriv, self._arg)
        self._last[key] = (x, value)
        return value

    def set(self, state: osim.State, q: np.ndarray, u: np.ndarray | None = None) -> None:
        qv = np.zeros(self.nq)
        qv[self.q_index] = q
        uv = np.zeros(self.nq)
        if u is not None:
            uv[self.q_index] = u
        for dep, ind, f in self.couplers:
            qv[dep] = self._f(f, q[ind], 0)
            if u is not None:
                uv[dep] = self._f(f, q[ind], 1) * u[ind]
        state.setQ(osim.Vector.createFromMat(qv))
        state.setU(osim.Vector.createFromMat(uv))

    def accelerations(self, q: np.ndarray, u: np.ndarray, udot: np.ndarray) -> osim.Vector:
        """Mobility accelerations (coupled coordinates included) from canonical ones."""
        v = np.zeros(self.nq)
        v[self.q_index] = udot
        for dep, ind, f in self.couplers:
            v[dep] = self._f(f, q[ind], 1) * udot[ind] + self._f(f, q[ind], 2) * u[ind] ** 2
        return osim.Vector.createFromMat(v)

    def generalized_forces(self, q: np.ndarray, mobility_forces: np.ndarray) -> np.ndarray:
        """Canonical generalised forces from mobility forces, the coupled
        coordinates' forces mapped onto their independent coordinates."""
        tau = np.asarray(mobility_forces, dtype=float)
        out = tau[self.q_index].copy()
        for dep, ind, f in self.couplers:
            out[ind] += self._f(f, q[ind], 1) * tau[dep]
        return out


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two (3,) vectors (``np.cross`` costs ~40 us of checks per call)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _vec3(v: osim.Vec3) -> np.ndarray:
    """An OpenSim ``Vec3`` as a (3,) array."""
    return v.to_numpy()


# ----------------------------------------------------------------------------- ground reaction forces


def foot_contacts(model: osim.Model, side: str) -> list:
    """The heel, first and fifth metatarsal heads and toe tip of one foot
    (``side`` "r" or "l"), each a function of the state giving its position in
    the ground frame. The model's own stations ``/heel_<side>`` ... when it has
    them (the synthetic sessions' models); otherwise the points forward
    kinematics derives from the foot's geometry
    (:meth:`utils.kinematics.ForwardKinematics.point_frame`; OpenCap's models
    have no foot stations)."""
    names = [f"{n}_{side}" for n in ("heel", "met1", "met5", "toe")]
    try:
        stations = [osim.Station.safeDownCast(model.getComponent(f"/{n}")) for n in names]
    except RuntimeError:  # OpenSim: no such component
        stations = None
    if stations is not None and all(st is not None for st in stations):
        return [st.getLocationInGround for st in stations]
    fk = ForwardKinematics.from_model(model)
    out = []
    for name in names:
        body_name, offset = fk.point_frame(name)
        body, local = model.getBodySet().get(body_name), osim.Vec3(*map(float, offset))
        out.append(lambda state, body=body, local=local: body.findStationLocationInGround(state, local))
    return out


SIDES: tuple[str, str] = ("r", "l")


class DynamicsModel:
    """An OpenSim model loaded once for whole-body kinematics and dynamics: the
    ground reactions (:func:`ground_reaction_forces`) and inverse dynamics
    (:func:`inverse_dynamics`) of any number of motions, and the points and
    centre of mass of :class:`dataset.synthetic.opencap_model.OsimPoints`.

    The skeleton of the model only: bodies, joints, constraints and stations.
    Its forces (muscles, reserve actuators; inverse dynamics applies none of
    them, so gravity is the only force left), markers, controllers and probes
    are removed before the system is built, which makes every realisation a
    third cheaper (OpenSim visits each component at each stage). The state is
    made once (``initSystem``) and reused; every frame sets all of q and u
    first, so no result depends on an earlier motion."""

    def __init__(self, model_path: str | Path) -> None:
        self.path = str(model_path)
        self.model = osim.Model(self.path)
        for components in (self.model.updForceSet(), self.model.updMarkerSet(), self.model.updControllerSet(),
                           self.model.updProbeSet()):
            components.clearAndDestroy()
        self.state = self.model.initSystem()
        self.setter = StateSetter(self.model, self.state)
        self.solver = osim.InverseDynamicsSolver(self.model)
        self.mass = self.model.getTotalMass(self.state)
        self.contacts = {s: foot_contacts(self.model, s) for s in SIDES}
        self.hip_frames = {s: self.model.getJointSet().get(f"hip_{s}").getChildFrame() for s in SIDES}
        self.feet = {s: self.model.getBodySet().get(f"calcn_{s}") for s in SIDES}
        self.foot_index = {s: int(self.feet[s].getMobilizedBodyIndex()) for s in SIDES}

    def generalized_forces(self, q: np.ndarray, u: np.ndarray, udot: np.ndarray,
                           grf: dict[str, np.ndarray], k: int) -> np.ndarray:
        """Net generalised forces (33,) in canonical order (N m, N) of one frame,
        q, u, udot (33,) SI units, with frame ``k`` of the ground reactions
        ``grf`` (:func:`ground_reaction_forces`) applied to ``calcn_<s>``.

        The model's own applied forces (gravity) are read at the Dynamics stage;
        each foot's force F at the ground point P, with its free torque T, is
        added to its body's spatial force as OpenSim's ``ExternalForce`` adds it:
        torque (P - origin) x F + T and force F, in the ground frame."""
        self.setter.set(self.state, q, u)
        self.model.realizeDynamics(self.state)
        body_forces = osim.VectorOfSpatialVec(self.model.getRigidBodyForces(self.state))  # a copy
        for s in SIDES:
            force, point, torque = grf[f"force_{s}"][k], grf[f"point_{s}"][k], grf[f"torque_{s}"][k]
            origin = _vec3(self.feet[s].getPositionInGround(self.state))
            applied = body_forces.get(self.foot_index[s])
            moment = _vec3(applied.get(0)) + _cross(point - origin, force) + torque
            body_forces.set(self.foot_index[s], osim.SpatialVec(osim.Vec3(*moment),
                                                                osim.Vec3(*(_vec3(applied.get(1)) + force))))
        tau = self.solver.solve(self.state, self.setter.accelerations(q, u, udot),
                                self.model.getMobilityForces(self.state), body_forces).to_numpy()
        return self.setter.generalized_forces(q, tau)


def ground_reaction_forces(model: DynamicsModel, q_si: np.ndarray, u_si: np.ndarray, fs: float,
                           right_share: np.ndarray) -> dict[str, np.ndarray]:
    """Ground reaction force, centre of pressure and free moment under each
    foot from the whole-body dynamics (OpenSim centre of mass and momentum).

    ``q_si``, ``u_si`` (T, 33) SI units; ``right_share`` (T,) is the fraction of
    the load on the right foot. Returns arrays (T, 3): ``force_r``,
    ``point_r``, ``torque_r``, ``force_l``, ``point_l``, ``torque_l`` (ground
    frame, N / m / N m) and ``total_force``.
    """
    state, setter = model.state, model.setter
    matter = model.model.getMatterSubsystem()
    T = q_si.shape[0]
    com = np.zeros((T, 3))
    ang = np.zeros((T, 3))
    contact_pos = {s: np.zeros((T, 4, 3)) for s in SIDES}
    hips = {s: np.zeros((T, 3)) for s in SIDES}
    for k in range(T):
        setter.set(state, q_si[k], u_si[k])
        model.model.realizeVelocity(state)
        com[k] = _vec3(model.model.calcMassCenterPosition(state))
        momentum = matter.calcSystemCentralMomentum(state)  # keep the SpatialVec alive while reading
        ang[k] = _vec3(momentum.get(0))
        for s in SIDES:
            hips[s][k] = _vec3(model.hip_frames[s].getPositionInGround(state))
            for i, st in enumerate(model.contacts[s]):
                contact_pos[s][k, i] = _vec3(st(state))
    mass = model.mass
    dt = 1.0 / fs
    acc = np.gradient(np.gradient(com, dt, axis=0, edge_order=2), dt, axis=0, edge_order=2)
    dH = np.gradient(ang, dt, axis=0, edge_order=2)
    F = mass * (acc - GRAVITY)  # (T, 3)
    # Angular momentum balance about the centre of pressure P (on y = 0) with
    # r = G - P: T_free = dH/dt + r x F, and the free moment is vertical, so
    # its x and z components vanish:
    #   x: dH_x + r_y F_z - r_z F_y = 0     z: dH_z + r_x F_y - r_y F_x = 0
    G = com
    Fy = np.where(np.abs(F[:, 1]) > 1e-6, F[:, 1], 1e-6)
    pz = G[:, 2] - (dH[:, 0] + G[:, 1] * F[:, 2]) / Fy
    px = G[:, 0] - (G[:, 1] * F[:, 0] - dH[:, 2]) / Fy
    P = np.stack([px, np.zeros(T), pz], axis=1)
    r = G - P
    torque_y = dH[:, 1] + (r[:, 2] * F[:, 0] - r[:, 0] * F[:, 2])
    out = {"total_force": F, "cop": P}
    w = {"r": np.asarray(right_share, dtype=float), "l": 1.0 - np.asarray(right_share, dtype=float)}
    centre = {}
    for s in ("r", "l"):
        pts = contact_pos[s]
        low = pts[:, :, 1] <= pts[:, :, 1].min(axis=1, keepdims=True) + 0.025  # points on the floor (a raised heel is not)
        c = (pts * low[..., None]).sum(1) / low.sum(1, keepdims=True)
        c[:, 1] = 0.0
        centre[s] = c
    delta = P - (w["r"][:, None] * centre["r"] + w["l"][:, None] * centre["l"])
    point = {s: centre[s] + delta for s in ("r", "l")}
    force = {s: w[s][:, None] * F for s in ("r", "l")}
    # Internal shear: in a stance wider than the hips each foot's force leans
    # inwards, by the angle that standing would pass it through its own hip
    # centre. The two feet get equal and opposite horizontal forces (e and -e),
    # so the total force is unchanged; the couple they make about the vertical
    # is taken off the free moments.
    standing_hip_height = max(float(np.max([hips[s][:, 1].max() for s in ("r", "l")])), 0.3)
    horiz = [0, 2]
    want = {s: force[s][:, 1:2] * (hips[s][:, horiz] - point[s][:, horiz]) / standing_hip_height
            for s in ("r", "l")}
    e = 0.5 * ((want["r"] - force["r"][:, horiz]) - (want["l"] - force["l"][:, horiz]))
    force["r"][:, horiz] += e
    force["l"][:, horiz] -= e
    e3 = np.zeros((T, 3))
    e3[:, horiz] = e
    couple_y = np.cross(point["r"] - point["l"], e3)[:, 1]
    for s in ("r", "l"):
        out[f"force_{s}"] = force[s]
        out[f"point_{s}"] = point[s]
        tq = np.zeros((T, 3))
        tq[:, 1] = w[s] * (torque_y - couple_y)
        out[f"torque_{s}"] = tq
    return out


def grf_columns(grf: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Column labels (``time`` first) and (T, 18) values of the ground
    reactions under both feet, in the layout :func:`foot_ground_force` reads."""
    labels = ["time"]
    blocks = []
    for s in ("r", "l"):
        labels += [f"ground_force_{s}_v{a}" for a in "xyz"] + [f"ground_force_{s}_p{a}" for a in "xyz"]
        labels += [f"ground_torque_{s}_{a}" for a in "xyz"]
        blocks += [grf[f"force_{s}"], grf[f"point_{s}"], grf[f"torque_{s}"]]
    return labels, np.hstack(blocks)


def grf_storage(times: np.ndarray, grf: dict[str, np.ndarray]) -> osim.Storage:
    """The ground reactions ``grf`` (:func:`ground_reaction_forces`) at ``times``
    (T,) seconds as an OpenSim ``Storage``, the data source of the
    :func:`foot_ground_force` s."""
    labels, data = grf_columns(grf)
    sto = osim.Storage()
    arr = osim.ArrayStr()
    for lab in labels:
        arr.append(lab)
    sto.setColumnLabels(arr)
    sto.setName("ground_reaction_forces")
    for k, t in enumerate(times):
        sto.append(float(t), osim.Vector.createFromMat(data[k]))
    return sto


def foot_ground_force(side: str) -> osim.ExternalForce:
    """The ground reaction under one foot (``side`` "r" or "l") as an OpenSim
    ``ExternalForce`` on ``calcn_<side>``, force and point in the ground frame,
    reading the columns ``ground_force_<side>_v*``, ``ground_force_<side>_p*``
    and ``ground_torque_<side>_*`` of its data source."""
    ef = osim.ExternalForce()
    ef.setName(f"grf_{side}")
    ef.set_applied_to_body(f"calcn_{side}")
    ef.set_force_expressed_in_body("ground")
    ef.set_point_expressed_in_body("ground")
    ef.set_force_identifier(f"ground_force_{side}_v")
    ef.set_point_identifier(f"ground_force_{side}_p")
    ef.set_torque_identifier(f"ground_torque_{side}_")
    return ef


def inverse_dynamics(model_path: str, coords: np.ndarray, fs: float = FRAME_RATE,
                     right_share: np.ndarray | float = 0.5, base: DynamicsModel | None = None) -> DynamicsResult:
    """OpenSim inverse dynamics of a whole trial with ground reaction forces.

    ``coords`` (T, 33) degrees / metres in canonical order. ``base``, if given,
    is the :class:`DynamicsModel` of ``model_path`` already loaded (a caller
    simulating many motions of one subject loads it once). The ground
    reactions are applied as body forces on the feet of that one model, frame
    by frame (:meth:`DynamicsModel.generalized_forces`): the same generalised
    forces as OpenSim ``ExternalForce`` s reading them from a ``Storage``
    (:func:`foot_ground_force`), to rounding, without a second model."""
    filtered, u, udot = filter_kinematics(coords, fs)
    q = _to_si(filtered)
    T = q.shape[0]
    share = np.broadcast_to(np.asarray(right_share, dtype=float), (T,)).copy()
    if base is None:
        base = DynamicsModel(model_path)
    grf = ground_reaction_forces(base, q, u, fs, share)
    moments = np.stack([base.generalized_forces(q[k], u[k], udot[k], grf, k) for k in range(T)])
    return DynamicsResult(moments, grf, filtered, u, udot)


# ----------------------------------------------------------------------------- static optimisation


# De Groote F, Kinney AL, Rao AV, Fregly BJ (2016). Evaluation of direct
# collocation optimal control problem formulations for solving the muscle
# redundancy problem. Ann Biomed Eng 44(10):2922-2936: the normalised
# active force-length (three Gaussians), force-velocity and passive
# force-length curves (coefficients as in OpenSim's DeGrooteFregly2016Muscle).
_FL_B = np.array([[0.8150671134243542, 1.055033428970575, 0.162384573599574, 0.063303448465465],
                  [0.433004984392647, 0.716775413397760, -0.029947116970696, 0.200356847296188],
                  [0.1, 1.0, 0.353553390593274, 0.0]])
_FV_D = (-0.3211346127989808, -8.149, -0.374, 0.8825327733249912)
_FP_K, _FP_E0, _FP_LMIN = 4.0, 0.6, 0.2


def active_force_length(l_norm: np.ndarray) -> np.ndarray:
    """De Groote et al. (2016) active force-length multiplier of normalised fibre length."""
    l = np.asarray(l_norm, dtype=float)[..., None]
    b1, b2, b3, b4 = _FL_B.T
    return np.sum(b1 * np.exp(-0.5 * (l - b2) ** 2 / (b3 + b4 * l) ** 2), axis=-1)


def force_velocity(v_norm: np.ndarray) -> np.ndarray:
    """De Groote et al. (2016) force-velocity multiplier of normalised fibre
    velocity (fibre velocity / (v_max l_opt), lengthening positive)."""
    d1, d2, d3, d4 = _FV_D
    x = d2 * np.asarray(v_norm, dtype=float) + d3
    return d1 * np.log(x + np.sqrt(x * x + 1.0)) + d4


def passive_force_length(l_norm: np.ndarray) -> np.ndarray:
    """De Groote et al. (2016) passive force-length multiplier, as OpenSim's
    ``DeGrooteFregly2016Muscle`` (one maximum isometric force at strain 0.6)."""
    offset = np.exp(_FP_K * (_FP_LMIN - 1.0) / _FP_E0)
    f = (np.exp(_FP_K * (np.asarray(l_norm, dtype=float) - 1.0) / _FP_E0) - offset) / (np.exp(_FP_K) - offset)
    return np.maximum(f, 0.0)


@dataclass
class _MuscleFrames:
    f_active: np.ndarray    # (n, M) F0 fL fV cos(alpha), N
    f_passive: np.ndarray   # (n, M) F0 fP cos(alpha), N
    fibre_length: np.ndarray  # (n, M) normalised by the optimal fibre length


_TENDON_C = (0.2, 0.995, 0.25, 35.0)  # De Groote et al. (2016) tendon force-length curve, stiffness 35


def tendon_stretch(force_norm: np.ndarray) -> np.ndarray:
    """Tendon length / slack length carrying ``force_norm`` maximum isometric
    forces on De Groote et al.'s (2016) tendon curve (4.7 % strain at one)."""
    c1, c2, c3, k = _TENDON_C
    return c2 + np.log((np.maximum(force_norm, 0.0) + c3) / c1) / k


def rigid_tendon_mechanics(lengths: np.ndarray, fs: float, f0: np.ndarray, l_opt: np.ndarray,
                           l_slack: np.ndarray, alpha0: np.ndarray, v_max: np.ndarray,
                           tendon_force: np.ndarray | None = None) -> _MuscleFrames:
    """Force capacities of muscles with rigid tendons from their muscle-tendon
    lengths ``lengths`` (n, M) metres sampled at ``fs`` Hz and their
    parameters (M,) (maximum isometric force N, optimal fibre length m, tendon
    slack length m, pennation at the optimal length rad, maximum contraction
    velocity in optimal lengths per second). Constant-thickness pennation:
    the fibre length is sqrt(h^2 + (L - l_T)^2) with h = l_opt sin(alpha0).

    The tendon length l_T is the slack length (rigid tendons) or, given
    ``tendon_force`` (n, M) in maximum isometric forces (e.g. from a first
    static optimisation), the length at which an elastic tendon carries that
    force (:func:`tendon_stretch`): a one-step stand-in for tendon compliance."""
    h = l_opt * np.sin(alpha0)
    l_tendon = l_slack if tendon_force is None else l_slack * tendon_stretch(tendon_force)
    along = np.maximum(lengths - l_tendon, 0.05 * l_opt)
    fibre = np.sqrt(h * h + along * along)
    cos = along / fibre
    v_mt = np.gradient(lengths, 1.0 / fs, axis=0, edge_order=2) if lengths.shape[0] > 2 else np.zeros_like(lengths)
    v_norm = np.clip(v_mt * cos / (v_max * l_opt), -1.0, 1.0)
    l_norm = fibre / l_opt
    fa = f0 * active_force_length(l_norm) * force_velocity(v_norm) * cos
    fp = f0 * passive_force_length(l_norm) * cos
    return _MuscleFrames(fa, fp, l_norm)


def _perturbed(q: np.ndarray, pairs: tuple[int, ...], delta: float) -> np.ndarray:
    """Pose ``q`` (33,) with both sides of every coordinate pair ``j`` in
    ``pairs`` (:data:`SO_COORDINATES` ``j`` and ``j + 7``) moved by ``delta``."""
    out = q.copy()
    for j in pairs:
        for c in _PAIR_COLUMNS[j]:
            out[c] += delta
    return out


def _path_lengths(model: osim.Model, state: osim.State, setter: StateSetter, q: np.ndarray,
                  muscles: list) -> np.ndarray:
    """Muscle-tendon lengths (M,), metres, of ``muscles`` at pose ``q`` (33,) (SI, canonical)."""
    setter.set(state, q)
    model.realizePosition(state)
    return np.array([m.getLength(state) for m in muscles])


def find_crossing(model: osim.Model, state: osim.State, setter: StateSetter, q: np.ndarray,
                  muscles: list) -> dict[int, np.ndarray]:
    """Which muscles span each coordinate pair ``j`` (right and left of
    :data:`SO_COORDINATES` together): indices into ``muscles`` whose length
    changes by more than :data:`_CROSSING_TOL` when the pair moves
    :data:`_CROSSING_PROBE` either way from pose ``q``.

    A muscle that does not span a joint keeps its length to rounding
    (~1e-15 m: moving a hip moves the shank's path points in the ground frame,
    not their distances), so an exact-zero test would count it; one that spans
    it changes by millimetres (by ~r' probe^2 / 2 even where its moment arm r
    vanishes; only one whose moment arm and its derivative both vanish at q
    would be missed). A set may hold more muscles than span the pair (a wrap
    that switches at the probe): the groups of :func:`coordinate_groups` stay
    disjoint, the extra muscle's moment arm is the finite difference as before."""
    base = _path_lengths(model, state, setter, q, muscles)
    out = {}
    for j in range(len(_PAIR_COLUMNS)):
        moved = np.zeros(len(muscles), dtype=bool)
        for sign in (1.0, -1.0):
            lengths = _path_lengths(model, state, setter, _perturbed(q, (j,), sign * _CROSSING_PROBE), muscles)
            moved |= ~(np.abs(lengths - base) <= _CROSSING_TOL)  # NaN (a failed wrap) counts as spanning
        out[j] = np.flatnonzero(moved)
    return out


def coordinate_groups(crossing: dict[int, np.ndarray]) -> list[tuple[int, ...]]:
    """Coordinate pairs that can be perturbed together: a greedy colouring of
    the pairs (in order) in which no two pairs of a group share a muscle of
    ``crossing``, so each muscle's length moves with at most one pair of its
    group (Lai/Rajagopal: hip flexion with ankle, hip adduction with
    subtalar, hip rotation with mtp, the knee alone)."""
    spans = {j: set(np.asarray(crossing[j]).tolist()) for j in crossing}
    groups: list[list[int]] = []
    for j in sorted(crossing):
        for group in groups:
            if all(spans[j].isdisjoint(spans[k]) for k in group):
                group.append(j)
                break
        else:
            groups.append([j])
    return [tuple(g) for g in groups]


def _moment_arms(model: osim.Model, state: osim.State, setter: StateSetter, q: np.ndarray,
                 muscles: list, sides: list[str], crossing: dict[int, np.ndarray] | None = None,
                 lengths_out: np.ndarray | None = None) -> np.ndarray:
    """Moment arms (14, M) of every muscle about :data:`SO_COORDINATES` at pose
    ``q`` (SI, canonical), as -dL/dq of OpenSim path lengths. Right and left
    coordinates are perturbed together (a muscle only spans joints of its own
    side). Forward and backward differences are both taken: where they agree
    their mean is used (a central difference); where they do not, the path
    jumps (a wrap switching on or off) and the smaller one is used.

    ``crossing`` caches, per coordinate pair, which muscles span it
    (:func:`find_crossing`): pass an empty dict on the first call and the same
    dict afterwards. Then only those muscles are read, the others' moment
    arms are zero, and pairs spanned by disjoint muscle sets are perturbed in
    the same realisation (:func:`coordinate_groups`). Without ``crossing``
    every muscle is read for every pair, one pair at a time."""
    n = len(muscles)
    if crossing is None:
        sets = {j: np.arange(n) for j in range(len(_PAIR_COLUMNS))}
        groups = [(j,) for j in sets]
    else:
        if not crossing:
            crossing.update(find_crossing(model, state, setter, q, muscles))
        sets, groups = crossing, coordinate_groups(crossing)
    per_side = len(_PAIR_COLUMNS)
    arms = np.zeros((len(SO_COORDINATES), n))
    right = np.array([s == "r" for s in sides])
    base = _path_lengths(model, state, setter, q, muscles)
    if lengths_out is not None:
        lengths_out[:] = base  # the muscle-tendon lengths at q, metres
    for group in groups:
        idx = np.concatenate([sets[j] for j in group])
        sub = [muscles[i] for i in idx]
        fwd, bwd = (-sign * (_path_lengths(model, state, setter, _perturbed(q, group, sign * _FD_STEP), sub)
                             - base[idx]) / _FD_STEP for sign in (1.0, -1.0))
        slope = np.where(np.abs(fwd - bwd) < _MAX_ARM_DISAGREEMENT, 0.5 * (fwd + bwd),
                         np.where(np.abs(fwd) < np.abs(bwd), fwd, bwd))
        start = 0
        for j in group:
            d = np.zeros(n)
            d[sets[j]] = slope[start:start + len(sets[j])]
            start += len(sets[j])
            arms[j, right] = d[right]
            arms[j + per_side, ~right] = d[~right]
    return arms


def solve_so_qp(A: np.ndarray, b: np.ndarray, w: float = 1.0, x0: np.ndarray | None = None,
                max_iter: int = 200, lower: float = 0.0) -> np.ndarray:
    """Minimise ``|x|^2 + |(A x - b) / w|^2`` subject to ``lower <= x <= 1``.

    ``A`` (J, M) maps activations to joint moments, ``b`` (J,) the moments to
    produce, ``w`` the reserve moment that costs as much as one fully active
    muscle. See :func:`solve_so_qp_status`."""
    return solve_so_qp_status(A, b, w, x0, max_iter, lower)[0]


def solve_so_qp_status(A: np.ndarray, b: np.ndarray, w: float = 1.0, x0: np.ndarray | None = None,
                       max_iter: int = 200, lower: float = 0.0) -> tuple[np.ndarray, bool]:
    """:func:`solve_so_qp` and whether its block principal pivoting (Judice &
    Pires 1994; each step solves a J x J system by the Woodbury identity)
    converged; if it did not, the result is scipy's bounded least squares
    (``False``). Exact at convergence (KKT conditions checked)."""
    J, M = A.shape
    w2 = float(w) ** 2
    lo = float(lower)
    x = np.full(M, lo) if x0 is None else np.clip(np.asarray(x0, dtype=float), lo, 1.0)
    at_lo = x <= lo + 1e-12
    at_hi = x >= 1.0 - 1e-12
    best_infeasible, tries = M + 1, 3
    eye = np.eye(J)
    for _ in range(max_iter):
        free = ~(at_lo | at_hi)
        x = np.where(at_hi, 1.0, lo)
        fixed = ~free
        r = b - A[:, fixed] @ x[fixed]
        if free.any():
            Af = A[:, free]
            x[free] = Af.T @ np.linalg.solve(w2 * eye + Af @ Af.T, r)
        grad = x + A.T @ (A @ x - b) / w2
        bad = ((free & ((x < lo - 1e-10) | (x > 1.0 + 1e-10)))
               | (at_lo & (grad < -1e-9)) | (at_hi & (grad > 1e-9)))
        n_bad = int(bad.sum())
        if n_bad == 0:
            return np.clip(x, lo, 1.0), True
        if n_bad < best_infeasible:
            best_infeasible, tries = n_bad, 3
            flip = bad
        elif tries > 0:
            tries -= 1
            flip = bad
        else:  # safeguard against cycling: flip only the last offending variable
            flip = np.zeros(M, dtype=bool)
            flip[np.flatnonzero(bad)[-1]] = True
        go_lo = flip & free & (x < lo)
        go_hi = flip & free & (x > 1.0)
        at_lo = (at_lo & ~flip) | go_lo
        at_hi = (at_hi & ~flip) | go_hi
    res = lsq_linear(np.vstack([A / float(w), np.eye(M)]), np.r_[b / float(w), np.zeros(M)],
                     bounds=(lo, 1.0), method="bvls")
    return np.clip(res.x, lo, 1.0), False


class MuscleModel:
    """An OpenSim model loaded for static optimisation (loaded once per trial):
    its muscles' paths (OpenSim) and parameters (numpy arrays, for the
    rigid-tendon mechanics of :func:`rigid_tendon_mechanics`). Any muscle type
    with the usual Hill-type parameters works (LaiUhlrich2022 has
    ``Millard2012EquilibriumMuscle`` s)."""

    def __init__(self, model_path: str | Path) -> None:
        self.path = str(model_path)
        self.model = osim.Model(self.path)
        self.state = self.model.initSystem()
        self.setter = StateSetter(self.model, self.state)
        ms = self.model.getMuscles()
        self.muscles = [ms.get(i) for i in range(ms.getSize())]
        if not self.muscles:
            raise ValueError(f"{self.path}: the model has no muscles")
        self.names = tuple(m.getName() for m in self.muscles)
        self.sides = [n.rsplit("_", 1)[1] for n in self.names]
        self.f0 = np.array([m.getMaxIsometricForce() for m in self.muscles])
        self.l_opt = np.array([m.getOptimalFiberLength() for m in self.muscles])
        self.l_slack = np.array([m.getTendonSlackLength() for m in self.muscles])
        self.alpha0 = np.array([m.getPennationAngleAtOptimalFiberLength() for m in self.muscles])
        self.v_max = np.array([m.getMaxContractionVelocity() for m in self.muscles])
        self.crossing: dict[int, np.ndarray] = {}  # muscles spanning each coordinate pair (find_crossing)

    def lengths(self, q_si: np.ndarray) -> np.ndarray:
        """Muscle-tendon lengths (n, M), metres, of poses (n, 33) (SI units)."""
        out = np.zeros((q_si.shape[0], len(self.muscles)))
        for k in range(q_si.shape[0]):
            out[k] = _path_lengths(self.model, self.state, self.setter, q_si[k], self.muscles)
        return out


SATURATION = 0.95
"""Activation at or above which a muscle counts as saturated."""

ANTAGONIST_GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("vasmed", "vaslat", "vasint", "recfem"), ("bflh", "bfsh", "semimem", "semiten", "gasmed", "gaslat")),
    (("tibant", "edl", "ehl"), ("soleus", "gasmed", "gaslat", "perlong", "perbrev", "tibpost", "fdl", "fhl")),
    (("iliacus", "psoas", "recfem", "tfl", "sart"),
     ("glmax1", "glmax2", "glmax3", "semimem", "semiten", "bflh", "addmagIsch", "addmagMid", "addmagDist")),
)
"""(agonists, antagonists) per joint: knee extensors / flexors, ankle
dorsiflexors / plantarflexors, hip flexors / extensors (muscle bases)."""


def saturated_antagonist_frames(activations: np.ndarray, names: tuple[str, ...]) -> int:
    """Frames (rows of ``activations`` (n, M)) in which, on one side, a muscle
    and one of its antagonists are both at or above :data:`SATURATION`: the
    signature of a static optimisation that fought its own bounds."""
    bad = np.zeros(activations.shape[0], dtype=bool)
    for side in ("r", "l"):
        for ago, anta in ANTAGONIST_GROUPS:
            a = [names.index(f"{m}_{side}") for m in ago]
            b = [names.index(f"{m}_{side}") for m in anta]
            bad |= (activations[:, a].max(axis=1) >= SATURATION) & (activations[:, b].max(axis=1) >= SATURATION)
    return int(bad.sum())


def path_geometry(mm: MuscleModel, q_si: np.ndarray, stride: int = _MOMENT_ARM_STRIDE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Moment arms (n, 14, M) about :data:`SO_COORDINATES` and muscle-tendon
    lengths (n, M), metres, of consecutive poses ``q_si`` (n, 33) (SI units).

    OpenSim path lengths are evaluated on every ``stride``-th pose (and the
    last); in between, moment arms are interpolated linearly and lengths follow
    from the nearest evaluated pose g to first order,
    L(q) = L(q_g) - r(q_g) . (q - q_g) (within 0.4 mm of OpenSim's in a squat)."""
    n = q_si.shape[0]
    idx = np.arange(n)
    grid = np.unique(np.r_[idx[::stride], n - 1])
    so_idx = [COORDINATES.index(c) for c in SO_COORDINATES]
    base = np.zeros((len(grid), len(mm.muscles)))
    arms_grid = np.stack([_moment_arms(mm.model, mm.state, mm.setter, q_si[k], mm.muscles, mm.sides, mm.crossing,
                                       base[g]) for g, k in enumerate(grid)])
    flat = arms_grid.reshape(len(grid), -1)
    arms = np.empty((n, len(SO_COORDINATES), len(mm.muscles)))
    for c in range(flat.shape[1]):
        arms.reshape(n, -1)[:, c] = np.interp(idx, grid, flat[:, c])
    nearest = np.abs(idx[:, None] - grid[None, :]).argmin(axis=1)
    dq = q_si[:, so_idx] - q_si[grid[nearest]][:, so_idx]
    lengths = base[nearest] - np.einsum("sj,sjm->sm", dq, arms_grid[nearest])
    return arms, lengths


ACTIVATION_FLOOR = 0.05
"""Lower bound of every activation, as in OpenCap's muscle-driven simulations
(the shipped real file's resting muscles sit exactly at 0.05)."""


def static_optimization(model: str | Path | MuscleModel, dyn: DynamicsResult, start: int, end: int,
                        fs: float = FRAME_RATE) -> RepetitionActivations:
    """Activations for frames ``start:end`` of a trial whose inverse dynamics is
    ``dyn``; ``model`` is the subject's ``.osim`` (or a loaded :class:`MuscleModel`)."""
    mm = model if isinstance(model, MuscleModel) else MuscleModel(model)
    model_path, muscles, names = mm.path, mm.muscles, mm.names
    q_all = _to_si(dyn.coords_filtered)
    frames = np.arange(start, end)
    n = len(frames)
    so_idx = [COORDINATES.index(c) for c in SO_COORDINATES]

    # two frames beyond each end give the velocities at the ends
    lo, hi = max(start - 2, 0), min(end + 2, q_all.shape[0])
    rows = frames - lo
    arms_span, lengths = path_geometry(mm, q_all[lo:hi])
    arms = arms_span[rows]

    activations = np.zeros((n, len(muscles)))
    reserves = np.zeros((n, len(SO_COORDINATES)))
    moments = dyn.moments[frames][:, so_idx]
    a = None
    # reserve "optimal moments": a reserve of w_j costs as much as one fully
    # active muscle; passive fibre forces are ignored, as OpenCap's squat
    # simulations do (ignorePassiveFiberForce)
    w = np.array([HIP_ROTATION_RESERVE if c.startswith("hip_rotation") else RESERVE_OPTIMAL_MOMENT
                  for c in SO_COORDINATES])
    mech = rigid_tendon_mechanics(lengths, fs, mm.f0, mm.l_opt, mm.l_slack, mm.alpha0, mm.v_max)
    for compliant in (False, True, True):
        if compliant:  # second pass: fibre lengths with the tendons stretched by the first pass's forces
            force = np.zeros_like(lengths)
            force[rows] = activations * mech.f_active[rows] / mm.f0
            mech = rigid_tendon_mechanics(lengths, fs, mm.f0, mm.l_opt, mm.l_slack, mm.alpha0, mm.v_max,
                                          tendon_force=force)
        unconverged = 0
        for i, k in enumerate(frames):
            A = arms[i] * mech.f_active[rows[i]][None, :]
            b = moments[i]
            if not (np.isfinite(A).all() and np.isfinite(b).all()):
                raise FloatingPointError(f"{model_path}: non-finite muscle moment data at frame {k}")
            a, ok = solve_so_qp_status(A / w[:, None], b / w, 1.0, x0=a, lower=ACTIVATION_FLOOR)
            unconverged += not ok
            activations[i] = a
            reserves[i] = b - A @ a
    pelvis = dyn.moments[frames][:, [COORDINATES.index(p) for p in PELVIS_DOFS]]
    peak = np.abs(moments).max(axis=0)
    summary = {
        "max_activation": float(activations.max()),
        "max_activation_muscle": names[int(np.argmax(activations.max(axis=0)))],
        "saturated_muscles": sorted(names[i] for i in np.flatnonzero(activations.max(axis=0) >= SATURATION)),
        "saturated_antagonist_frames": saturated_antagonist_frames(activations, names),
        "max_abs_reserve_Nm": float(np.abs(reserves).max()),
        "max_reserve_fraction": float(np.max(np.abs(reserves).max(axis=0) / np.maximum(peak, 10.0))),
        "rms_reserve_Nm": float(np.sqrt(np.mean(reserves ** 2))),
        "max_abs_pelvis_residual_moment_Nm": float(np.abs(pelvis[:, :3]).max()),
        "max_abs_pelvis_residual_force_N": float(np.abs(pelvis[:, 3:]).max()),
        "solver_unconverged_frames": int(unconverged),
        "fibre_length_range": [float(mech.fibre_length[rows].min()), float(mech.fibre_length[rows].max())],
    }
    return RepetitionActivations(start, end, names, activations, reserves, moments, pelvis, summary)


def simulate_trial(model_path: str, coords: np.ndarray, segments: list[tuple[int, int]],
                   fs: float = FRAME_RATE, right_share: np.ndarray | float = 0.5,
                   base: DynamicsModel | None = None, muscles: MuscleModel | None = None
                   ) -> tuple[DynamicsResult, list[RepetitionActivations]]:
    """Inverse dynamics of the whole trial, then static optimisation of every
    repetition ``coords[start:end]`` in ``segments``. ``base`` and
    ``muscles``, if given, are the models of ``model_path`` already loaded."""
    for k, (a, b) in enumerate(segments):
        if not (0 <= a < b <= coords.shape[0]):
            raise ValueError(f"segment {k + 1} ({a}, {b}) is outside the {coords.shape[0]} frames of the trial")
    dyn = inverse_dynamics(model_path, coords, fs, right_share, base=base)
    if muscles is None:
        muscles = MuscleModel(model_path)
    reps = [static_optimization(muscles, dyn, a, b, fs) for a, b in segments]
    return dyn, reps

