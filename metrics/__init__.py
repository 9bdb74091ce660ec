"""Metrics comparing sets of motions: distribution distances
(:mod:`metrics.distribution`), guidance metrics (:mod:`metrics.guidance`),
the paper's evaluation protocol (:mod:`metrics.published`), result tables (:mod:`metrics.report`) and the glue
the metric scripts use (:mod:`metrics.evaluate`), motion sets read from folders
(:mod:`metrics.motion_sets`), reconstruction errors (:mod:`metrics.reconstruction`),
surrogate accuracy (:mod:`metrics.surrogate`), the OpenSim simulation that
judges guidance (:mod:`metrics.simulation`) and guidance's runs verified with
it (:mod:`metrics.verification`). See ``docs/metrics.md``.

Floor: imports engine, render, models, dataset and utils; never options or a script.
"""
from metrics.distribution import (  # noqa: F401
    Distance, compare_sets, emd_w2, per_coordinate_w1, published_entropy, published_w2, sample_entropies,
    sliced_w2, wasserstein_1d,
)
from metrics.guidance import activation_metrics, foot_metrics, kinematic_metrics, summarise  # noqa: F401
