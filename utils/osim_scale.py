"""Scale an OpenSim model to a subject's height and mass with OpenSim's ScaleTool.

:func:`scale_model` runs the ScaleTool's generic-model maker and model scaler
with *manual* scale factors (no marker data): by default every body is scaled
uniformly by ``height_m / generic_height_m``; ``segment_factors`` overrides the
factor of chosen bodies (one number, or three per-axis numbers). Body masses
are set with ``preserve_mass_distribution``: each body keeps its share of the
generic model's mass and the total becomes ``mass_kg`` exactly. Scaling wraps
joint translation functions in ``MultiplierFunction`` s, as in the scaled
models OpenCap writes.

Reference height of the generic model (:data:`GENERIC_HEIGHT_M`): OpenCap's
``LaiUhlrich2022.osim`` keeps the body segment parameters of Rajagopal et al.
(2016), built for a 1.70 m, 75.337 kg subject; the model's total body mass is
exactly 75.337 kg. The model has no head marker or skull station, so the
height was measured from its joint centres in the default (standing) pose:
floor (calcaneus origin) at 0.0035 m, hip centre at 0.852 m (0.50 of 1.70 m),
shoulder (``acromial``) centre at 1.383 m (0.814 of 1.70 m; Winter's
anthropometric ratio for the shoulder is 0.818). Both agree with 1.70 m;
``tests/test_osim_scale.py`` re-measures the shoulder ratio.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence, Union

from utils.errors import BigeError
from utils.osim_log import opensim_quiet

__all__ = ["GENERIC_HEIGHT_M", "GENERIC_MASS_KG", "ModelScaleError", "scale_model", "scaled_model"]

GENERIC_HEIGHT_M: float = 1.70
"""Standing height represented by OpenCap's generic LaiUhlrich2022 model, metres."""

GENERIC_MASS_KG: float = 75.337
"""Total body mass of OpenCap's generic LaiUhlrich2022 model, kg."""

_UMASK = os.umask(0)
os.umask(_UMASK)

SegmentFactor = Union[float, Sequence[float]]


class ModelScaleError(BigeError, ValueError):
    """A model could not be scaled; the message names the model file."""


def _factor_vec(body: str, value: SegmentFactor, source: Path) -> tuple[float, float, float]:
    """One or three positive scale factors -> (sx, sy, sz)."""
    if isinstance(value, (int, float)):
        values = (float(value),) * 3
    else:
        values = tuple(float(v) for v in value)
        if len(values) != 3:
            raise ModelScaleError(f"{source}: segment_factors[{body!r}] must be one number or three, "
                                  f"got {len(values)}")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ModelScaleError(f"{source}: segment_factors[{body!r}] must be positive, got {values}")
    return values  # type: ignore[return-value]


def scaled_model(generic_path: str | os.PathLike, height_m: float, mass_kg: float, *, name: str,
                 generic_height_m: float | None = None,
                 segment_factors: Mapping[str, SegmentFactor] | None = None):
    """The model at ``generic_path`` scaled to a subject of ``height_m`` metres
    and ``mass_kg`` kilograms with OpenSim's ScaleTool, in memory (an
    ``opensim.Model`` named ``name``; :func:`scale_model` writes it).

    Every body is scaled by ``height_m / generic_height_m`` (default
    :data:`GENERIC_HEIGHT_M`) unless ``segment_factors`` maps its name to its
    own factor (one number or (x, y, z) factors in the body frame). Masses keep
    the generic distribution and sum to ``mass_kg``. Raises
    :class:`ModelScaleError` (a ``ValueError``) naming the file on bad input or
    when OpenSim cannot load or scale the model.
    """
    import opensim as osim

    generic_path = Path(generic_path)
    ref = GENERIC_HEIGHT_M if generic_height_m is None else float(generic_height_m)
    for label, value in (("height_m", height_m), ("mass_kg", mass_kg), ("generic_height_m", ref)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ModelScaleError(f"{generic_path}: {label} must be a positive number, got {value!r}")
    if not generic_path.is_file():
        raise ModelScaleError(f"{generic_path}: no such OpenSim model file")
    uniform = float(height_m) / ref

    with opensim_quiet():
        tool = osim.ScaleTool()
        tool.setName(name)
        tool.setSubjectMass(float(mass_kg))
        tool.setSubjectHeight(float(height_m) * 1000.0)  # ScaleTool stores millimetres (informational)
        tool.getGenericModelMaker().setModelFileName(str(generic_path.resolve()))
        try:
            model = tool.createModel()
        except RuntimeError as exc:
            raise ModelScaleError(f"{generic_path}: OpenSim could not load the model: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        if model is None:
            raise ModelScaleError(f"{generic_path}: OpenSim could not load the model")
        bodies = [model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())]
        unknown = sorted(set(segment_factors or {}) - set(bodies))
        if unknown:
            raise ModelScaleError(f"{generic_path}: segment_factors name bodies the model does not have: "
                                  f"{unknown}; bodies: {bodies}")
        scaler = tool.getModelScaler()
        scaler.setApply(True)
        order = osim.ArrayStr()
        order.append("manualScale")
        scaler.setScalingOrder(order)
        scaler.setPreserveMassDist(True)
        for body in bodies:
            factors = _factor_vec(body, (segment_factors or {}).get(body, uniform), generic_path)
            scale = osim.Scale()
            scale.setName(body)
            scale.setSegmentName(body)
            scale.setScaleFactors(osim.Vec3(*factors))
            scale.setApply(True)
            scaler.addScale(scale)
        tool.getMarkerPlacer().setApply(False)
        try:
            model.initSystem()
            ok = scaler.processModel(model, "", float(mass_kg))
        except RuntimeError as exc:
            raise ModelScaleError(f"{generic_path}: OpenSim's ScaleTool failed: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        if not ok:
            raise ModelScaleError(f"{generic_path}: OpenSim's ScaleTool failed to scale the model")
        model.setName(name)
    return model


def scale_model(generic_path: str | os.PathLike, out_path: str | os.PathLike, height_m: float,
                mass_kg: float, *, generic_height_m: float | None = None,
                segment_factors: Mapping[str, SegmentFactor] | None = None) -> Path:
    """Scale the model at ``generic_path`` to a subject of ``height_m`` metres and
    ``mass_kg`` kilograms (:func:`scaled_model`, named after ``out_path``'s
    stem) and write it to ``out_path`` atomically (temporary sibling, then
    rename); returns ``out_path``. Raises :class:`ModelScaleError` as
    :func:`scaled_model` does, or when the file cannot be written."""
    out_path = Path(out_path)
    model = scaled_model(generic_path, height_m, mass_kg, name=out_path.stem, generic_height_m=generic_height_m,
                         segment_factors=segment_factors)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".osim", dir=out_path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the model the usual mode
    try:
        with opensim_quiet():
            written = model.printToXML(tmp)
        if not written:
            raise ModelScaleError(f"{out_path}: OpenSim could not write the scaled model")
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return out_path
