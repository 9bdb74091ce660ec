"""The ground floor: what every other package stands on.

Constants (the 33 coordinates, the muscles), errors and the one door of every
script (:mod:`.cli`), atomic file writing, motion files (:mod:`.motion_io`,
:mod:`.fastparse`), forward kinematics of OpenSim models (:mod:`.kinematics`),
devices and precision, distributed helpers, checkpoints, run logging, the
format of generated motion folders (:mod:`.generation_output`).

Floor: imports nothing of the project but :mod:`utils` itself (third-party
code only: numpy, torch, opensim, ...).
"""
