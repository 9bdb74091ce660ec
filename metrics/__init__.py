"""Metrics comparing sets of motions: distribution distances
(:mod:`metrics.distribution`), guidance metrics (:mod:`metrics.guidance`),
the paper's evaluation protocol (:mod:`metrics.published`), result tables (:mod:`metrics.report`) and the glue
the metric scripts use (:mod:`metrics.evaluate`). See ``docs/metrics.md``."""
from metrics.distribution import (  # noqa: F401
    Distance, compare_sets, emd_w2, per_coordinate_w1, published_entropy, published_w2, sample_entropies,
    sliced_w2, wasserstein_1d,
)
from metrics.guidance import activation_metrics, foot_metrics, kinematic_metrics, summarise  # noqa: F401
