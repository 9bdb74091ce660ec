"""Shared engines of the stage scripts: the one training loop with resume,
signals, DDP and checkpoints (:mod:`.training`), and the per-subject
generation driver every generator goes through (:mod:`.generation`).

Floor: may import :mod:`models`, :mod:`dataset` and :mod:`utils`; never
:mod:`metrics`, :mod:`render`, :mod:`options` or a script.
"""
