"""Distances between sets of motions, and the entropy of a set.

Every set is an array ``(N, T, 33)`` in canonical coordinate order, rotations
in degrees and ``pelvis_tx/ty/tz`` in metres (what ``metrics.motion_sets`` and
``dataset.repetitions`` return).

Two families of numbers:

* **The paper's formulas**: each set is flattened into one pool of numbers
  (degrees and metres mixed, as the files hold them) and summarised by its
  mean and standard deviation; the Gaussian 2-Wasserstein distance between
  the two summaries is ``W2^2 = (mu1 - mu2)^2 + (sigma1 - sigma2)^2``.
  :func:`published_w2` returns both ``w2_squared`` (the formula above) and
  ``w2`` (its square root). The entropy is the mean over samples of the
  Shannon entropy (nats) of a 10-bin histogram of the sample's flattened
  values. Applied to two whole sets, as :func:`compare_sets` does, these are
  the project protocol's numbers; the paper's protocol (per subject folder,
  its reference set and clip fitting) is :mod:`metrics.published`.
* **Honest**: the exact 1-D Wasserstein-1 distance of each coordinate's values
  (pooled over frames and motions; degrees for rotations, centimetres for
  translations), and multivariate optimal transport between whole motions:
  the exact earth mover's 2-Wasserstein distance (POT ``ot.emd2``) on a seeded
  subsample, and a sliced 2-Wasserstein distance on the full sets, both with a
  seeded bootstrap confidence interval.

Ground metric of the multivariate distances: a motion is its (T, 33) array
with translations in centimetres; the distance of two motions is
``sqrt(mean_t ||x_t - y_t||^2)`` (root mean over frames of the squared pose
distance, "deg/cm"). Moving every motion of a set by ``c`` degrees in one
coordinate therefore moves it by exactly ``c``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from utils.constants import COORDINATES, ROTATION_MASK

TRANSLATION_MASK = ~np.array(ROTATION_MASK)
"""(33,) True where the canonical coordinate is a translation (metres)."""

CM_PER_M = 100.0


def to_report_units(motions: np.ndarray) -> np.ndarray:
    """Copy of ``motions`` (..., 33) with translations converted from metres to
    centimetres (rotations stay in degrees). float64."""
    x = np.array(motions, dtype=np.float64, copy=True)
    x[..., TRANSLATION_MASK] *= CM_PER_M
    return x


HORIZONTAL = ("pelvis_tx", "pelvis_tz")
"""Translations along the floor: where the subject stood in the lab, which differs per session."""
HORIZONTAL_MODES = ("relative", "absolute")


def relative_horizontal(motions: np.ndarray) -> np.ndarray:
    """Copy of ``motions`` (N, T, 33) with ``pelvis_tx`` / ``pelvis_tz``
    measured from each motion's first frame (metres). The lab origin, and so
    the absolute floor position, differs between sessions by tens of
    centimetres; relative positions keep the movement and drop the placement."""
    x = np.array(motions, dtype=np.float64, copy=True)
    idx = [COORDINATES.index(n) for n in HORIZONTAL]
    x[:, :, idx] -= x[:, :1, idx]
    return x


def _check_set(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[2] != len(COORDINATES):
        raise ValueError(f"{name}: expected a set of motions (N>=1, T, {len(COORDINATES)}), got shape {x.shape}")
    if not np.isfinite(x).all():
        n_bad = int((~np.isfinite(x).reshape(len(x), -1).all(axis=1)).sum())
        raise ValueError(f"{name}: {n_bad} motion(s) hold NaN or infinite values")
    return x


# ----------------------------------------------------------------------------- published numbers


def published_w2(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The published "Wasserstein distance": both sets flattened to one pool,
    Gaussian 2-Wasserstein between the pools' (mean, std).

    ``a`` (N, T, 33), ``b`` (M, T', 33); units as stored (degrees and metres).
    Returns ``mu_a, sigma_a, mu_b, sigma_b``, ``w2_squared`` =
    (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2 (the published form) and ``w2`` =
    its square root. Standard deviations are population (ddof=0).
    """
    a = _check_set(a, "set a").astype(np.float64, copy=False)
    b = _check_set(b, "set b").astype(np.float64, copy=False)
    mu_a, sd_a = float(a.mean()), float(a.std())
    mu_b, sd_b = float(b.mean()), float(b.std())
    w2sq = (mu_a - mu_b) ** 2 + (sd_a - sd_b) ** 2
    return {"mu_a": mu_a, "sigma_a": sd_a, "mu_b": mu_b, "sigma_b": sd_b,
            "w2_squared": float(w2sq), "w2": float(np.sqrt(w2sq))}


def sample_entropies(motions: np.ndarray, bins: int = 10) -> np.ndarray:
    """Shannon entropy (nats) of a ``bins``-bin histogram of each sample's
    flattened values, bins spanning the sample's own min..max (numpy's
    ``histogram`` convention, last bin closed). (N, T, C) -> (N,)

    A sample whose values are all equal has entropy 0.
    """
    x = np.asarray(motions, dtype=np.float64).reshape(len(motions), -1)
    lo = x.min(axis=1, keepdims=True)
    hi = x.max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    idx = np.clip(np.floor((x - lo) / span * bins).astype(np.int64), 0, bins - 1)
    flat = (idx + bins * np.arange(x.shape[0])[:, None]).ravel()
    counts = np.bincount(flat, minlength=bins * x.shape[0]).reshape(x.shape[0], bins).astype(np.float64)
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def published_entropy(motions: np.ndarray, bins: int = 10) -> float:
    """The published entropy: mean over samples of :func:`sample_entropies`
    (nats; at most ``log(bins)``). (N, T, C) -> float"""
    return float(sample_entropies(_check_set(motions, "motions"), bins).mean())


# ----------------------------------------------------------------------------- exact 1-D Wasserstein


def wasserstein_1d(a: np.ndarray, b: np.ndarray, p: float = 1.0) -> np.ndarray:
    """Exact p-Wasserstein distance between the empirical distributions of the
    columns of ``a`` (n, C) and ``b`` (m, C) (or 1-D arrays), any n and m.

    Computed from the quantile functions: the unit interval is cut at every
    i/n and j/m, on each piece both quantile functions are constant.
    Returns (C,) (a float for 1-D input), in the units of the data.
    """
    one_d = np.ndim(a) == 1
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"column counts differ: {a.shape[1]} vs {b.shape[1]}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError("wasserstein_1d needs at least one value on each side")
    # sort along contiguous rows: twice as fast as along columns
    out = sorted_wp(np.sort(a.T, axis=1), np.sort(b.T, axis=1), p) ** (1.0 / p)
    return float(out[0]) if one_d else out


def sorted_wp(sa: np.ndarray, sb: np.ndarray, p: float) -> np.ndarray:
    """``W_p^p`` between rows of sorted samples. (C, n), (C, m) sorted along
    the last axis -> (C,)"""
    n, m = sa.shape[-1], sb.shape[-1]
    if n == m:
        return (np.abs(sa - sb) ** p).mean(axis=-1)
    cuts = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(cuts, prepend=0.0)
    mid = cuts - widths / 2
    ia = np.minimum((mid * n).astype(np.int64), n - 1)
    ib = np.minimum((mid * m).astype(np.int64), m - 1)
    return (np.abs(sa[..., ia] - sb[..., ib]) ** p * widths).sum(axis=-1)


def per_coordinate_w1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact 1-D Wasserstein-1 distance of each coordinate's values, pooled
    over frames and motions. (N, T, 33), (M, T', 33) -> (33,), degrees for
    rotations and centimetres for translations."""
    a = to_report_units(_check_set(a, "set a")).reshape(-1, len(COORDINATES))
    b = to_report_units(_check_set(b, "set b")).reshape(-1, len(COORDINATES))
    return wasserstein_1d(a, b, p=1.0)


# ----------------------------------------------------------------------------- multivariate OT


@dataclass
class Distance:
    """A distance with its seeded bootstrap interval (``ci_low``..``ci_high``,
    ``confidence`` level, re-centred on ``value``; NaN without bootstrap)."""

    value: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int
    bootstrap: int
    confidence: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def motion_vectors(motions: np.ndarray) -> np.ndarray:
    """Whole motions as vectors whose Euclidean distance is the pose-RMS
    ground metric: (N, T, 33) -> (N, T*33), translations in cm, scaled by
    1/sqrt(T)."""
    x = to_report_units(motions)
    return x.reshape(len(x), -1) / np.sqrt(x.shape[1])


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances. (n, D), (m, D) -> (n, m), >= 0.

    Uses the expansion |x|^2 + |y|^2 - 2 x.y; entries small against the norms
    (where the expansion loses its digits, e.g. identical motions) are
    recomputed directly, so identical motions are exactly 0 apart."""
    nx, ny = (x * x).sum(1)[:, None], (y * y).sum(1)[None, :]
    d = np.maximum(nx + ny - 2.0 * (x @ y.T), 0.0)
    close = np.argwhere(d <= 1e-6 * (nx + ny))
    if len(close):
        d[close[:, 0], close[:, 1]] = np.square(x[close[:, 0]] - y[close[:, 1]]).sum(1)
    return d


def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


def _interval(value: float, boots: np.ndarray, confidence: float) -> tuple[float, float]:
    """Bootstrap interval re-centred on ``value``: ``value`` plus the
    percentiles of ``boots - mean(boots)``.

    Resampling with replacement duplicates motions, and duplicates inflate an
    optimal-transport distance between finite samples by a roughly constant
    amount; a plain percentile interval would then lie above the estimate.
    Re-centring keeps the bootstrap's spread and drops that shift.
    """
    if len(boots) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(boots - boots.mean(), [tail, 100 - tail])
    return float(max(value + lo, 0.0)), float(value + hi)


def emd_w2(
    a: np.ndarray, b: np.ndarray, max_samples: int = 300, bootstrap: int = 100,
    confidence: float = 0.95, seed: int = 0,
) -> Distance:
    """Exact 2-Wasserstein (earth mover's) distance between two sets of whole
    motions, POT ``ot.emd2`` with uniform weights, deg/cm (pose-RMS ground
    metric, see the module docstring).

    Each set is first subsampled (seeded, without replacement) to at most
    ``max_samples`` motions; the interval comes from ``bootstrap`` resamples
    (with replacement) of both subsamples, re-centred (see :func:`_interval`).
    (N, T, 33), (M, T, 33) -> :class:`Distance`.
    """
    import ot

    a = _check_set(a, "set a")
    b = _check_set(b, "set b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"motions of different lengths ({a.shape[1]} vs {b.shape[1]} frames)")
    rng = np.random.default_rng(seed)
    xa = motion_vectors(a[_subsample(len(a), max_samples, rng)])
    xb = motion_vectors(b[_subsample(len(b), max_samples, rng)])
    centre = np.concatenate([xa, xb]).mean(axis=0)  # fewer cancellation errors in the expansion
    cost = squared_distances(xa - centre, xb - centre)
    n, m = len(xa), len(xb)

    def w2(ia: np.ndarray | None, ib: np.ndarray | None) -> float:
        wa = np.full(n, 1.0 / n) if ia is None else np.bincount(ia, minlength=n) / len(ia)
        wb = np.full(m, 1.0 / m) if ib is None else np.bincount(ib, minlength=m) / len(ib)
        ka, kb = np.flatnonzero(wa), np.flatnonzero(wb)
        value = ot.emd2(wa[ka], wb[kb], cost[np.ix_(ka, kb)], numItermax=10_000_000)
        return float(np.sqrt(max(float(value), 0.0)))

    value = w2(None, None)
    boots = np.array([w2(rng.integers(0, n, n), rng.integers(0, m, m)) for _ in range(bootstrap)])
    lo, hi = _interval(value, boots, confidence)
    return Distance(value, lo, hi, n, m, bootstrap, confidence)


def random_directions(dim: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` directions uniform on the unit sphere of R^dim, seeded. (n, dim)"""
    d = np.random.default_rng(seed).normal(size=(n, dim))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def sliced_w2(
    a: np.ndarray, b: np.ndarray, n_projections: int = 256, bootstrap: int = 100,
    confidence: float = 0.95, seed: int = 0,
) -> Distance:
    """Sliced 2-Wasserstein distance between two sets of whole motions, scaled
    by sqrt(D) (D = T*33) so that it is in the pose-RMS unit (deg/cm): for a
    set moved by a constant offset it equals the offset's size in expectation
    over directions. Uses every motion; the exact 1-D distance is taken along
    ``n_projections`` seeded random directions.
    (N, T, 33), (M, T, 33) -> :class:`Distance`.
    """
    a = _check_set(a, "set a")
    b = _check_set(b, "set b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"motions of different lengths ({a.shape[1]} vs {b.shape[1]} frames)")
    xa, xb = motion_vectors(a), motion_vectors(b)
    dim = xa.shape[1]
    theta = random_directions(dim, n_projections, seed).astype(np.float32)
    # float32 projections, one contiguous row per direction: (P, N), (P, M)
    pa = np.ascontiguousarray((xa.astype(np.float32) @ theta.T).T)
    pb = np.ascontiguousarray((xb.astype(np.float32) @ theta.T).T)

    def sw(qa: np.ndarray, qb: np.ndarray) -> float:
        per_dir = sorted_wp(np.sort(qa, axis=1).astype(np.float64), np.sort(qb, axis=1).astype(np.float64), 2.0)
        return float(np.sqrt(dim * per_dir.mean()))

    value = sw(pa, pb)
    rng = np.random.default_rng(seed + 1)
    n, m = pa.shape[1], pb.shape[1]
    boots = np.array([sw(pa[:, rng.integers(0, n, n)], pb[:, rng.integers(0, m, m)]) for _ in range(bootstrap)])
    lo, hi = _interval(value, boots, confidence)
    return Distance(value, lo, hi, n, m, bootstrap, confidence)


# ----------------------------------------------------------------------------- everything at once


def compare_sets(
    candidate: np.ndarray, reference: np.ndarray, *, ot_samples: int = 300, bootstrap: int = 100,
    n_projections: int = 256, confidence: float = 0.95, seed: int = 0, multivariate: bool = True,
    horizontal: str = "relative",
) -> dict:
    """All distribution numbers of ``candidate`` (N, T, 33) against
    ``reference`` (M, T, 33).

    Keys: ``gaussian_w2sq`` (the paper's formula on the two pooled sets,
    W2^2), ``gaussian_w2``,
    ``entropy`` and ``reference_entropy`` (nats), ``w1`` {coordinate: deg|cm},
    ``w1_mean`` (all 33), ``w1_mean_rot_deg``, ``w1_mean_trans_cm``, and with
    ``multivariate`` ``emd_w2`` / ``sliced_w2`` as :meth:`Distance.as_dict`.
    The Gaussian W2 and the entropy use the values as stored; with
    ``horizontal="relative"`` (default) the honest distances see
    ``pelvis_tx/tz`` relative to each motion's first frame
    (:func:`relative_horizontal`), with ``"absolute"`` as stored.
    """
    if horizontal not in HORIZONTAL_MODES:
        raise ValueError(f"unknown horizontal mode {horizontal!r}; expected one of {HORIZONTAL_MODES}")
    pub = published_w2(candidate, reference)
    if horizontal == "relative":
        cand = relative_horizontal(_check_set(candidate, "set a"))
        ref = relative_horizontal(_check_set(reference, "set b"))
    else:
        cand, ref = candidate, reference
    w1 = per_coordinate_w1(cand, ref)
    out = {
        "gaussian_w2sq": pub["w2_squared"],
        "gaussian_w2": pub["w2"],
        "pool_mean": pub["mu_a"], "pool_std": pub["sigma_a"],
        "reference_pool_mean": pub["mu_b"], "reference_pool_std": pub["sigma_b"],
        "entropy": published_entropy(candidate),
        "reference_entropy": published_entropy(reference),
        "w1": dict(zip(COORDINATES, w1.tolist())),
        "w1_mean": float(w1.mean()),
        "w1_mean_rot_deg": float(w1[~TRANSLATION_MASK].mean()),
        "w1_mean_trans_cm": float(w1[TRANSLATION_MASK].mean()),
    }
    out["horizontal"] = horizontal
    if multivariate:
        out["emd_w2"] = emd_w2(cand, ref, ot_samples, bootstrap, confidence, seed).as_dict()
        out["sliced_w2"] = sliced_w2(cand, ref, n_projections, bootstrap, confidence, seed).as_dict()
    return out
