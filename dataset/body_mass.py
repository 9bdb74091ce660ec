"""Subjects' body mass, for the surrogate that takes it as an input.

Static optimisation finds the activations that produce the joint moments of a
motion; the moments scale with the subject's mass while muscle strength in
OpenCap's scaled models does not, so the same squat asks more of a heavier
subject's quadriceps. Kinematics do not show mass, so a surrogate trained on
a few subjects guesses it from their style (``docs/surrogate.md``).

Where the mass comes from, for a motion file inside an MCS session folder
(``<session>/OpenSimData/...``):

1. the session's scaled model (``OpenSimData/Model/*.osim``): the sum of its
   bodies' ``<mass>`` elements, read from the XML (milliseconds; the same as
   OpenSim's ``Model.getTotalMass``, checked in ``tests/test_body_mass.py``);
2. else the session's ``sessionMetadata.yaml`` (OpenCap writes ``mass_kg``).

Where a session has both and they differ by more than :data:`MASS_AGREEMENT`,
a warning names both files; the model's mass is used.

Anything else raises :class:`BodyMassError` naming the file and what was
looked for.
"""
from __future__ import annotations

import functools
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.mcs import session_folder, session_model
from utils.errors import BigeError

METADATA_NAME = "sessionMetadata.yaml"
"""OpenCap's per-session metadata file (``mass_kg``, ``height_m``, ...)."""

MASS_AGREEMENT = 0.02
"""Relative gap between a session's metadata ``mass_kg`` and its scaled
model's mass above which :func:`subject_mass` warns (OpenCap's scaled models
weigh exactly ``mass_kg``)."""

_LOG = logging.getLogger(__name__)


class BodyMassError(BigeError, ValueError):
    """No usable body mass for a subject; the message names the file."""


def model_mass(path: str | os.PathLike) -> float:
    """Total mass (kg) of the OpenSim model at ``path``: the sum of the
    ``<mass>`` of every ``Body`` in its ``BodySet``."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise BodyMassError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    return _model_mass(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _model_mass(path: str, mtime_ns: int, size: int) -> float:  # the stat fields key the cache
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise BodyMassError(f"{path}, line {line}, column {column}: not an OpenSim model file (XML: {exc})") from None
    bodies = root.findall(".//BodySet/objects/Body")
    if not bodies:
        raise BodyMassError(f"{path}: no <BodySet><objects><Body> elements; expected an OpenSim model")
    total = 0.0
    for body in bodies:
        text = body.findtext("mass")
        try:
            mass = float(text)
        except (TypeError, ValueError):
            raise BodyMassError(f"{path}: body {body.get('name')!r} has no numeric <mass> "
                                f"(found {text!r})") from None
        if not np.isfinite(mass) or mass < 0:
            raise BodyMassError(f"{path}: body {body.get('name')!r} has mass {mass}; expected a finite value >= 0")
        total += mass
    if total <= 0:
        raise BodyMassError(f"{path}: the bodies' masses add up to {total} kg; expected a positive total")
    return total


def metadata_mass(path: str | os.PathLike) -> float:
    """``mass_kg`` of an OpenCap ``sessionMetadata.yaml`` (a top-level
    ``mass_kg: <number>`` line)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise BodyMassError(f"{path}: cannot read ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, start=1):
        key, sep, value = line.partition(":")
        if sep and key == "mass_kg":
            try:
                mass = float(value.split("#")[0])
            except ValueError:
                raise BodyMassError(f"{path}, line {number}: mass_kg is {value.strip()!r}; expected a number "
                                    "of kilograms") from None
            if not np.isfinite(mass) or mass <= 0:
                raise BodyMassError(f"{path}, line {number}: mass_kg is {mass}; expected a positive number")
            return mass
    raise BodyMassError(f"{path}: no top-level 'mass_kg:' line")


def subject_mass(path: str | os.PathLike) -> float:
    """Body mass (kg) of the subject of a session folder or of a file inside
    one: its scaled model's, else its ``sessionMetadata.yaml``'s."""
    folder = session_folder(path)
    if folder is None:
        raise BodyMassError(f"{path}: not inside an MCS session folder (<session>/OpenSimData/...), so the "
                            "subject's body mass is unknown; give it (surrogate_training.py --eval-body-mass) or "
                            "use a surrogate trained with --no-body-mass")
    model = session_model(folder)
    metadata = folder / METADATA_NAME
    if model is not None:
        mass = model_mass(model)
        if metadata.is_file():
            _check_agreement(mass, model, metadata)
        return mass
    if metadata.is_file():
        return metadata_mass(metadata)
    raise BodyMassError(f"{folder}: no OpenSimData/Model/*.osim and no {METADATA_NAME}, so the subject's body mass "
                        "is unknown; expected the session's scaled model")


def _check_agreement(mass: float, model: Path, metadata: Path) -> None:
    """Log a warning when the session's metadata names another mass than its
    scaled model has (OpenCap scales the model to ``mass_kg``; a gap points to
    a model or metadata file from another session). The model's mass is used:
    the activations were simulated with it."""
    try:
        stated = metadata_mass(metadata)
    except BodyMassError as err:
        _LOG.warning("%s; the body mass is taken from %s", err, model)
        return
    if abs(mass - stated) > MASS_AGREEMENT * stated:
        _LOG.warning("%s: mass_kg is %.1f kg but the scaled model %s weighs %.1f kg (more than %.0f %% apart; "
                     "files from different sessions?); using the model's %.1f kg", metadata, stated, model, mass,
                     100 * MASS_AGREEMENT, mass)


def file_masses(files: Sequence[str | os.PathLike]) -> np.ndarray:
    """Body mass (kg) of the subject of each file (see :func:`subject_mass`). (N,) float32"""
    folders: dict[Path | None, float] = {}
    out = np.empty(len(files), dtype=np.float32)
    for i, f in enumerate(files):
        folder = session_folder(f)
        if folder not in folders:
            folders[folder] = subject_mass(f if folder is None else folder)
        out[i] = folders[folder]
    return out
