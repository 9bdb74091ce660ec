"""Files to arrays: the MCS (UCSD OpenCap Fitness) layout and its sessions
(:mod:`.mcs`), the train/test split, repetitions of squats cut to clips
(:mod:`.repetitions`, :mod:`.clips`), the plausibility check, the normaliser,
per-subject descriptors, torch batches; and the embedded synthetic dataset
generator (:mod:`dataset.synthetic`).

Floor: imports :mod:`utils` only (:mod:`dataset.synthetic` may also import
:mod:`dataset`). Never models, engine, render, metrics, options or a script.
"""
