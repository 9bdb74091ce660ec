"""The synthetic subjects' model: OpenCap's LaiUhlrich2022, scaled per subject.

:func:`subject_model` scales the shipped generic model
(:data:`utils.constants.GENERIC_MODEL`) to a subject's height and mass with
OpenSim's ``ScaleTool`` (:func:`utils.osim_scale.scaled_model`), then adds what
the generic model lacks and the generator needs:

* markers named like OpenCap's video markers (``r_knee_study``,
  ``L_calc_study``, ``r.ASIS_study``, ...), placed at the model's joint centres
  plus anatomical offsets (scaled with the subject), for ``MarkerData/*.trc``;
* ``Station`` s ``heel_<s>``, ``met1_<s>``, ``met5_<s>`` (on ``calcn_<s>``) and
  ``toe_<s>`` (on ``toes_<s>``) marking the sole's contact points.

:class:`OsimPoints` gives those stations and the whole-body centre of mass for
a batch of poses through OpenSim itself (the generator's kinematics), with the
interface of :class:`utils.kinematics.ForwardKinematics` that
:func:`dataset.synthetic.squat_kinematics.generate_trial` uses.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import opensim as osim
import torch

from utils.constants import COORDINATES, GENERIC_MODEL, TRANSLATIONS
from utils.osim_scale import GENERIC_HEIGHT_M, scaled_model

__all__ = ["MODEL_FILE", "CONTACT_POINTS", "subject_model", "OsimPoints"]

MODEL_FILE = "LaiArnoldModified2017_poly_withArms_weldHand_scaled.osim"
"""File name of the scaled model in ``OpenSimData/Model/`` of MCS sessions."""

CONTACT_POINTS: tuple[str, ...] = tuple(f"{n}_{s}" for s in ("r", "l") for n in ("heel", "met1", "met5", "toe"))
"""Names of the foot contact stations added to the model."""

# Offsets (metres, generic 1.70 m model, right side; +x forward, +y up, +z to
# the right in the standing default pose) from a joint centre or body origin.
_CONTACT = {  # body, reference body origin, offset
    "heel": ("calcn", "calcn", (0.000, 0.000, 0.000)),
    "met1": ("calcn", "calcn", (0.165, 0.000, -0.030)),
    "met5": ("calcn", "calcn", (0.140, 0.000, 0.035)),
    "toe": ("toes", "toes", (0.055, 0.000, -0.005)),
}
_LEG_MARKERS = {  # name: body, reference (origin of this body in ground), offset
    "knee_study": ("femur", "tibia", (0.0, 0.0, 0.050)),
    "mknee_study": ("femur", "tibia", (0.0, 0.0, -0.050)),
    "ankle_study": ("tibia", "talus", (-0.005, 0.0, 0.045)),
    "mankle_study": ("tibia", "talus", (0.005, 0.010, -0.040)),
    "calc_study": ("calcn", "calcn", (-0.020, 0.030, 0.000)),
    "5meta_study": ("calcn", "calcn", (0.150, 0.015, 0.045)),
    "toe_study": ("toes", "toes", (0.060, 0.015, -0.010)),
}
_SEGMENT_MARKERS = {  # name: body, (from origin, to origin), fraction along, lateral offset
    "thigh1_study": ("femur", ("femur", "tibia"), 0.35, 0.070),
    "thigh2_study": ("femur", ("femur", "tibia"), 0.60, 0.055),
    "sh1_study": ("tibia", ("tibia", "talus"), 0.35, 0.045),
    "sh2_study": ("tibia", ("tibia", "talus"), 0.60, 0.035),
}
_ARM_MARKERS = {  # name: body, reference, offset
    "shoulder_study": ("torso", "humerus", (0.0, 0.030, 0.0)),
    "lelbow_study": ("humerus", "ulna", (0.0, 0.0, 0.035)),
    "melbow_study": ("humerus", "ulna", (0.0, 0.0, -0.035)),
    "lwrist_study": ("radius", "hand", (0.0, 0.0, 0.030)),
    "mwrist_study": ("radius", "hand", (0.0, 0.0, -0.030)),
}


def _mirror(offset, side: str) -> np.ndarray:
    v = np.asarray(offset, dtype=float).copy()
    if side == "l":
        v[2] = -v[2]
    return v


def subject_model(out_path: str | os.PathLike, height_m: float, mass_kg: float, name: str | None = None,
                  generic_path: str | os.PathLike = GENERIC_MODEL) -> Path:
    """Scale the generic model to ``height_m`` / ``mass_kg`` (OpenSim ScaleTool),
    add the video markers and foot contact stations, write it atomically to
    ``out_path`` and return that path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = scaled_model(generic_path, height_m, mass_kg, name=name or out_path.stem)  # in memory, not re-read
    s = float(height_m) / GENERIC_HEIGHT_M
    state = model.initSystem()  # default pose: standing, body frames aligned with ground
    bodies = model.getBodySet()
    ground = model.getGround()

    def origin(body: str) -> np.ndarray:
        p = bodies.get(body).getPositionInGround(state)
        return np.array([p.get(0), p.get(1), p.get(2)])

    def local(body: str, p_ground: np.ndarray) -> osim.Vec3:
        return ground.findStationLocationInAnotherFrame(state, osim.Vec3(*p_ground), bodies.get(body))

    points: list[tuple[str, str, osim.Vec3, bool]] = []  # name, body, location, is a marker
    for side in ("r", "l"):
        prefix = "r_" if side == "r" else "L_"
        for base, (body, ref, off) in _CONTACT.items():
            points.append((f"{base}_{side}", f"{body}_{side}", local(f"{body}_{side}", origin(f"{ref}_{side}")
                                                                      + s * _mirror(off, side)), False))
        for base, (body, ref, off) in _LEG_MARKERS.items():
            points.append((prefix + base, f"{body}_{side}",
                           local(f"{body}_{side}", origin(f"{ref}_{side}") + s * _mirror(off, side)), True))
        for base, (body, (a, b), frac, lateral) in _SEGMENT_MARKERS.items():
            p = origin(f"{a}_{side}") + frac * (origin(f"{b}_{side}") - origin(f"{a}_{side}"))
            points.append((prefix + base, f"{body}_{side}",
                           local(f"{body}_{side}", p + s * _mirror((0.0, 0.0, lateral), side)), True))
        for base, (body, ref, off) in _ARM_MARKERS.items():
            target = body if body == "torso" else f"{body}_{side}"
            points.append((prefix + base, target, local(target, origin(f"{ref}_{side}") + s * _mirror(off, side)),
                           True))
        hip = origin(f"femur_{side}")
        pel = origin("pelvis")
        tag = "r." if side == "r" else "L."
        points.append((f"{tag}ASIS_study", "pelvis", local("pelvis", pel + s * _mirror((0.010, 0.0, 0.120), side)),
                       True))
        points.append((f"{tag}PSIS_study", "pelvis",
                       local("pelvis", pel + s * _mirror((-0.155, 0.035, 0.045), side)), True))
        points.append((("R" if side == "r" else "L") + "HJC_study", "pelvis", local("pelvis", hip), True))
    neck = 0.5 * (origin("humerus_r") + origin("humerus_l"))
    points.append(("C7_study", "torso", local("torso", neck + s * np.array([-0.06, 0.03, 0.0])), True))

    for pname, body, loc, is_marker in points:
        if is_marker:  # adopted by the marker set directly (Model.addMarker re-finalises the model each time)
            model.updMarkerSet().adoptAndAppend(osim.Marker(pname, bodies.get(body), loc))
        else:
            station = osim.Station(bodies.get(body), loc)
            station.setName(pname)
            model.addComponent(station)
    model.finalizeConnections()
    tmp = out_path.with_name(f".{out_path.name}.tmp.osim")
    try:
        if not model.printToXML(str(tmp)):
            raise OSError(f"{out_path}: OpenSim could not write the model")
        os.replace(tmp, out_path)  # atomic: readers see the old file or the complete new one
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


class OsimPoints:
    """Foot contact stations and whole-body centre of mass of a model for a
    batch of poses, computed by OpenSim.

    ``points(q)``: (n, 33) canonical coordinates (degrees / metres) ->
    (n, P, 3) ground positions of :data:`CONTACT_POINTS`, metres. Calling the
    object or ``center_of_mass`` accepts numpy arrays or tensors and returns
    float64 tensors (the interface of :class:`utils.kinematics.ForwardKinematics`
    that the trial generator uses).

    The model is loaded as a :class:`dataset.synthetic.muscle_dynamics.DynamicsModel`
    (its skeleton: the same points, cheaper realisations), kept in
    ``dynamics`` for the inverse dynamics of the same subject."""

    def __init__(self, model_path: str | os.PathLike) -> None:
        from dataset.synthetic.muscle_dynamics import DynamicsModel

        self.path = str(model_path)
        self.dynamics = DynamicsModel(self.path)
        self.model, self.state, self.setter = self.dynamics.model, self.dynamics.state, self.dynamics.setter
        try:
            self.stations = [osim.Station.safeDownCast(self.model.getComponent(f"/{n}")) for n in CONTACT_POINTS]
        except RuntimeError:
            raise ValueError(f"{self.path}: the model lacks the foot contact stations {CONTACT_POINTS}; "
                             "make it with dataset.synthetic.opencap_model.subject_model") from None
        self.names = list(CONTACT_POINTS)
        self._rot = np.array([n not in TRANSLATIONS for n in COORDINATES])
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def point_indices(self, names) -> list[int]:
        return [self.names.index(n) for n in names]

    def foot_contact_indices(self) -> list[int]:
        return list(range(len(self.names)))

    def _evaluate(self, q) -> tuple[np.ndarray, np.ndarray]:
        q = q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else np.asarray(q, dtype=float)
        if self._cache is not None and self._cache[0].shape == q.shape and np.array_equal(self._cache[0], q):
            return self._cache[1], self._cache[2]
        si = np.array(q, dtype=float, copy=True)
        si[:, self._rot] = np.deg2rad(si[:, self._rot])
        pts = np.zeros((q.shape[0], len(self.stations), 3))
        com = np.zeros((q.shape[0], 3))
        for k in range(q.shape[0]):
            self.setter.set(self.state, si[k])
            self.model.realizePosition(self.state)
            com[k] = self.model.calcMassCenterPosition(self.state).to_numpy()
            for j, st in enumerate(self.stations):
                pts[k, j] = st.getLocationInGround(self.state).to_numpy()
        self._cache = (q.copy(), pts, com)
        return pts, com

    def __call__(self, q) -> torch.Tensor:
        return torch.from_numpy(self._evaluate(q)[0])

    def center_of_mass(self, q) -> torch.Tensor:
        return torch.from_numpy(self._evaluate(q)[1])
