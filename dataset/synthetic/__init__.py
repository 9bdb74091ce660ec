"""The embedded default dataset: synthetic MCS-layout squats made with OpenSim.

``python -m dataset.synthetic --out DIR`` writes a folder with the layout of the
UCSD OpenCap Fitness (MCS) dataset: per subject a scaled LaiUhlrich2022 model
(:mod:`.opencap_model`), squat kinematics (:mod:`.squat_kinematics`), inverse
dynamics and static optimisation (:mod:`.muscle_dynamics`), assembled by
:mod:`.synthesize`. :mod:`.osim_model` is the older model built in code (its
anthropometry ranges still bound the sampled subjects).

Floor: may import :mod:`dataset` and :mod:`utils`; nothing above.
"""
