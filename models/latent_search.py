"""Exact nearest-neighbour search of latent vectors against a fixed bank,
cheap when the queries move little between calls (guidance's Adam steps).

The answer is always the exact nearest bank row of each query: the smallest
squared Euclidean distance computed in float64 from the float32 inputs, the
lowest bank index among exact ties (what ``argmin`` of a float64 brute force
returns). What keeps it cheap:

1. **Tiled fp32 scan with a proven margin.** A full search computes
   ``|b|^2 - 2 q.b`` with one matrix product per tile of the bank (so the
   distance block stays small instead of a (queries x bank) matrix of hundreds
   of MB) and keeps each query's ``candidates`` smallest. The float32 rounding
   error of every entry is bounded (:func:`fp32_distance_error`); the
   candidates whose fp32 entry lies within twice the bound of the smallest
   are re-ranked in float64 (the others are strictly farther and keep the
   fp32 entry's lower bound), and their winner is accepted only if it beats
   the bound below which no other bank row can lie. Otherwise (ties or
   near-ties beyond the candidates) that query is settled by float64
   distances to every row within twice the bound of its smallest entry.
2. **Reuse across calls with a triangle-inequality check.** After a full
   search each query keeps its anchor ``a`` (the query itself), its
   candidates with lower bounds on their float64 distances, and ``rho``, a lower bound on the
   distance from ``a`` to every non-candidate. At each later call every
   candidate's distance bound shrinks by the step the query took, and every
   non-candidate is at least ``rho - |q - a|`` away. The last answer's
   distance is recomputed (float64), and so is that of every candidate whose
   bound no longer exceeds it; the smallest of these (lowest index on ties)
   is the exact answer if it is closer than ``rho - |q - a|``. Only the
   queries that fail this check scan the bank again. Latents moving towards
   their nearest neighbour (the proximity-only phase) pass it for long
   stretches, and a step costs a few gathered rows per query.
3. **A direct scan when it is cheaper.** When the queries move so much that
   many fail the reuse check (and the bank is small), one tiled fp32 scan of
   every query keeping only its smallest and second smallest entry costs less
   than the check plus the candidate scans: the smallest is proven nearest
   when the runner-up is farther by more than twice the error bound, and the
   few others are settled in float64 as above. Each call picks the cheaper
   path by an estimate from the last reuse check (candidates it recomputed,
   queries that failed); the anchors stay valid across direct calls.
4. **No work on what cannot matter.** Later copies of identical bank rows
   are dropped at construction (a tie always goes to the first copy), and the
   scan shifts rows and queries by the bank's mean, so that the error bound,
   which grows with the norms, reflects the spread of the latents rather than
   their offset.
5. **Gathered neighbours only.** Callers compute the loss and its gradient on
   the returned rows only.

The search never computes gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

FP32_UNIT_ROUNDOFF = 2.0 ** -24
"""Unit roundoff of float32 (round to nearest)."""
REDUCED_UNIT_ROUNDOFF = 2.0 ** -8
"""Unit roundoff assumed when ``torch.get_float32_matmul_precision()`` lets
float32 matrix products run in TF32 or bfloat16."""
DIRECT_COST = 30.0
"""Cost of the direct scan's reductions (block minima, runner-up) per fp32
distance entry, in multiply-adds of the fp32 distance product (measured 12-48
with 1 CPU thread on banks of 3822 and 49000 rows of 64)."""
CANDIDATE_COST = 120.0
"""Cost of the candidate scan's ``topk`` per fp32 distance entry, same unit (measured 80-160)."""
GATHER_COST = 350.0
"""Cost of the reuse check per float64 element of the distances it
recomputes (gather, difference, square, sum, bookkeeping), same unit
(measured 300-410)."""
_BLOCK = 64
"""Columns per block of the direct scan's block minima (:func:`_two_smallest`)."""
_RELATIVE_SLACK = 1e-9
"""Relative slack for the float64 comparisons of the reuse check."""


def fp32_matmul_is_ieee(device_type: str = "cpu") -> bool:
    """Whether float32 matrix products on ``device_type`` run in full float32
    (not TF32 or bfloat16, which ``torch.backends.*.matmul.fp32_precision`` or
    ``torch.set_float32_matmul_precision`` can allow)."""
    backend = torch.backends.cuda if device_type == "cuda" else torch.backends.mkldnn
    setting = getattr(getattr(backend, "matmul", None), "fp32_precision", "none")
    if setting not in ("none", "ieee"):
        return False
    try:
        return torch.get_float32_matmul_precision() == "highest"
    except RuntimeError:  # legacy and new precision APIs mixed: assume reduced precision
        return False


def fp32_distance_error(query_norm: Tensor, bank_max_norm: float, dim: int) -> Tensor:
    """Upper bound on the float32 rounding error of ``|b|^2 - 2 q.b`` for every
    bank row ``b`` (``|b| <= bank_max_norm``), per query. (Q,) norms -> (Q,) squared units

    A dot product of length ``dim`` errs by at most ``dim u |q||b|/(1 - dim u)``
    in any summation order; storing ``|b|^2`` and the final addition add
    ``2u (|q| + |b|)^2``. The bound used is 4 times their sum, so it also
    covers fused or blocked kernels.
    """
    u = FP32_UNIT_ROUNDOFF if fp32_matmul_is_ieee(query_norm.device.type) else REDUCED_UNIT_ROUNDOFF
    return 4.0 * (dim + 4) * u * (query_norm + bank_max_norm) ** 2


@dataclass
class SearchStats:
    """Counters of :class:`NearestSearch`, summed over calls."""

    calls: int = 0
    queries: int = 0
    reused: int = 0        # queries answered by the reuse check, no bank scan
    scanned: int = 0       # queries that needed a tiled scan of the bank keeping candidates
    direct: int = 0        # queries answered by a direct scan (nearest and runner-up only, no candidates kept)
    brute_force: int = 0   # queries resolved by float64 distances beyond the scan (ties, near-ties)

    @property
    def reuse_fraction(self) -> float:
        """Share of queries answered without a scan (the first call of a batch always scans)."""
        return self.reused / max(1, self.queries)


class NearestSearch:
    """Exact nearest bank row of each query; see the module docstring.

    ``bank`` (N, D) float32 rows. ``candidates``: rows kept per query from a
    scan (the larger, the longer a query can move before it is searched
    again). ``tile_bytes``: size of one float32 distance block of a scan.
    ``reuse``: keep anchors between calls (state keyed by the number of
    queries; a batch of other queries only costs a scan, never a wrong answer);
    without it every call is a direct scan. ``adaptive``: choose per call
    between the reuse check and a direct scan of every query by their
    estimated cost (False: always the reuse check once anchors exist).
    """

    def __init__(self, bank: Tensor, candidates: int = 32, tile_bytes: int = 8 * 2**20, reuse: bool = True,
                 adaptive: bool = True):
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"bank must be (N, D) with N > 0, got shape {tuple(bank.shape)}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        bank = bank.detach().float().contiguous()
        self.size = int(bank.shape[0])
        # exact duplicates always tie: search the first copy of each row only; origin maps back
        self.bank, self.origin = _first_copies(bank)
        # the scan works on rows shifted by (about) their mean, so that the fp32 error bound, which grows
        # with the norms, reflects the spread of the bank rather than its offset
        self.shift = _mean_rows(self.bank).float()
        sq = torch.cat([(self.bank[s:s + 8192] - self.shift).double().pow(2).sum(1)
                        for s in range(0, len(self.bank), 8192)])
        self.sqnorm = sq.float()                       # (N,) |b - shift|^2, fp32 for the scan
        self.max_norm = float(sq.max().sqrt())
        self.candidates = int(min(candidates, self.bank.shape[0]))
        self.tile_bytes = int(tile_bytes)
        self.reuse = bool(reuse)
        self.adaptive = bool(adaptive)
        self.stats = SearchStats()
        # reuse state, per query: its last query (float64), the candidates of its last scan (sorted
        # ascending) with lower bounds on their distances from the last query, the anchor (query of the
        # last scan) with rho (a lower bound on the distance from the anchor to every non-candidate), and
        # the current answer
        self._prev: Tensor | None = None
        self._cand: Tensor | None = None
        self._lb: Tensor | None = None
        self._anchor: Tensor | None = None
        self._rho: Tensor | None = None
        self._best: Tensor | None = None
        # the last reuse check, per query: candidates whose distance it recomputed, share that failed it
        self._last_check: tuple[float, float] | None = None

    def __len__(self) -> int:
        """Rows of the bank as given (duplicates included)."""
        return self.size

    def to(self, device: torch.device | str) -> "NearestSearch":
        """Move the bank to ``device`` (forgets the anchors); returns self."""
        self.bank, self.sqnorm, self.shift = self.bank.to(device), self.sqnorm.to(device), self.shift.to(device)
        self.origin = None if self.origin is None else self.origin.to(device)
        self.reset()
        return self

    def reset(self) -> None:
        """Forget the anchors (the next call scans every query)."""
        self._prev = self._cand = self._lb = self._anchor = self._rho = self._best = None
        self._last_check = None

    @torch.no_grad()
    def __call__(self, queries: Tensor) -> Tensor:
        """Index of the exact nearest bank row of each query. (Q, D) -> (Q,) long"""
        if queries.ndim != 2 or queries.shape[1] != self.bank.shape[1]:
            raise ValueError(f"queries must be (Q, {self.bank.shape[1]}), got shape {tuple(queries.shape)}")
        q = queries.detach().to(self.bank.device, torch.float64)
        self.stats.calls += 1
        self.stats.queries += q.shape[0]
        if not self.reuse:
            return self._original(self._direct(q))
        if self._prev is None or self._prev.shape != q.shape:
            self.reset()
            nearest, state = self._scan(q)
            self._prev, self._anchor = q.clone(), q.clone()
            self._cand, self._lb, self._rho, self._best = state
            return self._original(nearest)
        if self.adaptive and self._direct_is_cheaper():
            # the anchors stay valid: the next reuse check bounds the whole move since the last one
            return self._original(self._direct(q))
        # every distance can have shrunk by at most the step length since the last call
        self._lb -= (q - self._prev).pow(2).sum(1).sqrt()[:, None]
        self._prev = q.clone()
        rho = self._rho - (q - self._anchor).pow(2).sum(1).sqrt()   # bound on all non-candidates
        # the last answer's distance, and those of the candidates that might now be as close
        d_best = (self.bank[self._best].double() - q).pow(2).sum(1).sqrt()
        near = ~_less(d_best[:, None], self._lb) & (self._cand != self._best[:, None])
        rows, cols = near.nonzero(as_tuple=True)
        idx = self._cand[rows, cols]
        d = (self.bank[idx].double() - q[rows]).pow(2).sum(1).sqrt()
        self._lb[rows, cols] = d
        self._lb.scatter_(1, (self._cand == self._best[:, None]).long().argmax(1, keepdim=True), d_best[:, None])
        # winner: smallest distance, then lowest index (the other candidates are strictly farther)
        win_d = d_best.scatter_reduce(0, rows, d, "amin")
        tie = d == win_d[rows]
        win_i = torch.where(d_best == win_d, self._best, torch.full_like(self._best, len(self.bank)))
        win_i = win_i.scatter_reduce(0, rows[tie], idx[tie], "amin")
        self._best = win_i
        todo = (~_less(win_d, rho)).nonzero().squeeze(1)               # a non-candidate might be nearer
        self.stats.reused += q.shape[0] - todo.numel()
        self._last_check = (rows.numel() / q.shape[0], todo.numel() / q.shape[0])
        if todo.numel():
            _, state = self._scan(q[todo])
            self._anchor[todo] = q[todo]
            for buf, value in zip((self._cand, self._lb, self._rho, self._best), state):
                buf[todo] = value
        return self._original(self._best)

    def _original(self, idx: Tensor) -> Tensor:
        """Internal row indices -> indices into the bank as given."""
        return idx.clone() if self.origin is None else self.origin[idx]

    # ------------------------------------------------------------------ internals

    def _direct_is_cheaper(self) -> bool:
        """Whether one direct scan of every query is estimated to cost less
        than the reuse check plus the candidate scans of the queries that
        fail it, judged by the last reuse check (recomputed candidates and
        failures per query); see :data:`DIRECT_COST`."""
        if self._last_check is None:
            return False
        n, dim = self.bank.shape
        recomputed, failed = self._last_check
        reuse = (1 + recomputed) * dim * GATHER_COST + failed * n * (dim + CANDIDATE_COST)
        return n * (dim + DIRECT_COST) < reuse

    def _tiling(self, n_queries: int, keep: int) -> tuple[int, int]:
        """Bank rows and queries per tile, so that one float32 distance block
        stays within ``tile_bytes`` (at least ``keep`` rows and one query)."""
        rows = max(keep, self.tile_bytes // 4 // max(1, min(n_queries, 1024)))
        return rows, max(1, self.tile_bytes // 4 // max(1, min(rows, self.bank.shape[0])))

    def _distances32(self, q32: Tensor, start: int, stop: int) -> Tensor:
        """Float32 ``|b - shift|^2 - 2 (q - shift).b`` of shifted queries to
        bank rows ``start:stop``. (R, D) -> (R, stop - start)"""
        tile = self.bank[start:stop] - self.shift                     # the rows sqnorm was computed from
        return torch.addmm(self.sqnorm[start:stop].unsqueeze(0), q32, tile.T, alpha=-2.0)

    def _shifted(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries shifted by the bank's shift in float32, their float64
        squared norms and the fp32 error bound of their distance entries.
        (R, D) float64 -> (R, D), (R,), (R,)"""
        qc = q - self.shift.double()                                  # exact in float64
        qnorm2 = qc.pow(2).sum(1)
        # fp32 rounding of the shifted rows and queries adds at most 2u (|q| + |b|)^2: inside the bound's slack
        return qc.float(), qnorm2, fp32_distance_error(qnorm2.sqrt(), self.max_norm, q.shape[1])

    def _direct(self, q: Tensor) -> Tensor:
        """Exact nearest of each query (R, D) float64 from one tiled fp32 scan
        that keeps only each query's smallest and second smallest entry: the
        smallest is proven nearest when the runner-up is farther by more than
        twice the error bound; the others are settled by :meth:`_resolve`. -> (R,)"""
        n = self.bank.shape[0]
        q32, qnorm2, err = self._shifted(q)
        rows_per_tile, q_block = self._tiling(q.shape[0], 2)
        first = torch.empty(q.shape[0], device=q.device)
        second = torch.empty(q.shape[0], device=q.device)
        nearest = torch.empty(q.shape[0], dtype=torch.long, device=q.device)
        for qs in range(0, q.shape[0], q_block):
            qb = q32[qs:qs + q_block]
            v1 = v2 = i1 = None
            for bs in range(0, n, rows_per_tile):
                t1, ti, t2 = _two_smallest(self._distances32(qb, bs, bs + rows_per_tile))
                if v1 is None:
                    v1, v2, i1 = t1, t2, ti
                    continue
                v2 = torch.minimum(torch.maximum(v1, t1), torch.minimum(v2, t2))
                better = t1 < v1
                v1, i1 = torch.where(better, t1, v1), torch.where(better, ti + bs, i1)
            first[qs:qs + q_block], second[qs:qs + q_block], nearest[qs:qs + q_block] = v1, v2, i1
        # the winner's distance is at most first + err, every other row's at least second - err
        proven = _less(first.double() + qnorm2 + err, second.double() + qnorm2 - err)
        self.stats.direct += q.shape[0]
        unproven = (~proven).nonzero().squeeze(1)
        if unproven.numel():
            nearest[unproven] = self._resolve(q[unproven])
            self.stats.brute_force += unproven.numel()
        return nearest

    def _resolve(self, q: Tensor) -> Tensor:
        """Exact nearest of a few queries (R, D) float64 whose fp32 scan left
        near-ties: float64 distances to every row whose fp32 entry lies within
        twice the error bound of the query's smallest (all other rows are
        strictly farther), lowest index among exact ties. Two tiled passes:
        the smallest entries, then the rows within the bound. -> (R,)"""
        n = self.bank.shape[0]
        rows_per_tile, q_block = self._tiling(q.shape[0], 1)
        out = torch.empty(q.shape[0], dtype=torch.long, device=q.device)
        for qs in range(0, q.shape[0], q_block):
            qb = q[qs:qs + q_block]
            q32, _, err = self._shifted(qb)
            starts = range(0, n, rows_per_tile)
            smallest = torch.stack([self._distances32(q32, b, b + rows_per_tile).amin(1) for b in starts]).amin(0)
            # 3 err, not 2: also covers rounding the limit to float32 (at most err / (4 (D + 4)))
            limit = (smallest.double() + 3 * err).float()[:, None]
            pairs = [(self._distances32(q32, b, b + rows_per_tile) <= limit).nonzero(as_tuple=True) for b in starts]
            rows = torch.cat([r for r, _ in pairs])
            idx = torch.cat([i + b for (_, i), b in zip(pairs, starts)])
            dist = (self.bank[idx].double() - qb[rows]).pow(2).sum(1)
            best = torch.full((qb.shape[0],), float("inf"), dtype=torch.float64, device=q.device)
            best = best.scatter_reduce(0, rows, dist, "amin")
            at_best = dist == best[rows]
            first = torch.full((qb.shape[0],), n, dtype=torch.long, device=q.device)
            out[qs:qs + q_block] = first.scatter_reduce(0, rows[at_best], idx[at_best], "amin")
        return out

    def _scan(self, q: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Full search of ``q`` (R, D) float64 keeping ``candidates`` rows per
        query: nearest (R,) and the reuse state (candidates (R, k), lower
        bounds on their float64 distances (R, k), rho (R,), nearest (R,)).
        Only the candidates within twice the error bound of the smallest fp32
        entry get float64 distances (the winner is among them); the others
        keep the fp32 entry's lower bound."""
        n, k = self.bank.shape[0], self.candidates
        q32, qnorm2, err = self._shifted(q)
        rows_per_tile, q_block = self._tiling(q.shape[0], k)
        best_v = torch.empty(q.shape[0], k, device=q.device)
        best_i = torch.empty(q.shape[0], k, dtype=torch.long, device=q.device)
        for qs in range(0, q.shape[0], q_block):
            qb = q32[qs:qs + q_block]
            vals, idxs = None, None
            for bs in range(0, n, rows_per_tile):
                d = self._distances32(qb, bs, bs + rows_per_tile)
                v, i = d.topk(min(k, d.shape[1]), dim=1, largest=False, sorted=False)
                i = i + bs
                if vals is not None:
                    v, i = torch.cat([vals, v], 1), torch.cat([idxs, i], 1)
                    v, j = v.topk(k, dim=1, largest=False, sorted=False)
                    i = i.gather(1, j)
                vals, idxs = v, i
            best_v[qs:qs + q_block], best_i[qs:qs + q_block] = vals, idxs
        v64 = best_v.double()
        # every non-candidate's fp32 value is >= the largest candidate value
        rho = (v64.max(1).values + qnorm2 - err).clamp_min(0).sqrt()
        if k == n:
            rho = torch.full_like(rho, float("inf"))                 # no non-candidates
        lower = v64 + (qnorm2 - err)[:, None]                         # squared-distance lower bounds
        lb = lower.clamp_min(0).sqrt()
        # candidates that may be nearest: fp32 entry within 2 err of the smallest (the rest are strictly farther)
        upper = v64.min(1).values + qnorm2 + err
        rows, cols = (~_less(upper[:, None], lower)).nonzero(as_tuple=True)
        idx = best_i[rows, cols]
        d2 = (self.bank[idx].double() - q[rows]).pow(2).sum(1)
        lb[rows, cols] = d2.sqrt()
        best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=q.device)
        best = best.scatter_reduce(0, rows, d2, "amin")
        at_best = d2 == best[rows]
        nearest = torch.full((q.shape[0],), n, dtype=torch.long, device=q.device)
        nearest = nearest.scatter_reduce(0, rows[at_best], idx[at_best], "amin")
        proven = _less(best.sqrt(), rho)
        self.stats.scanned += q.shape[0]
        unproven = (~proven).nonzero().squeeze(1)                   # ties or near-ties beyond the candidates
        if unproven.numel():
            nearest[unproven] = self._resolve(q[unproven])
            rho[unproven] = -float("inf")                           # never reused: scan again next time
            self.stats.brute_force += unproven.numel()
        return nearest, (best_i, lb, rho, nearest.clone())


def _mean_rows(bank: Tensor, chunk: int = 8192) -> Tensor:
    """Mean of the rows in float64, chunked. (N, D) -> (D,)"""
    total = sum(bank[s:s + chunk].double().sum(0) for s in range(0, len(bank), chunk))
    return total / len(bank)


def _first_copies(bank: Tensor) -> tuple[Tensor, Tensor | None]:
    """The bank without later copies of identical rows, in the original order,
    and the original index of each kept row (None when nothing was dropped).
    Candidates for duplicates are found by a random float64 projection; only
    rows whose projections collide are compared exactly. (N, D) -> (M, D), (M,)"""
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(bank.shape[1], dtype=torch.float64, generator=gen).to(bank.device)
    proj = torch.cat([bank[s:s + 8192].double() @ direction for s in range(0, len(bank), 8192)])
    _, inverse, counts = torch.unique(proj, return_inverse=True, return_counts=True)
    suspects = (counts[inverse] > 1).nonzero().squeeze(1)
    if suspects.numel() == 0:
        return bank, None
    _, group = torch.unique(bank[suspects], dim=0, return_inverse=True)
    first = torch.full((int(group.max()) + 1,), len(bank), dtype=torch.long, device=bank.device)
    first = first.scatter_reduce(0, group, suspects, "amin")
    keep = torch.ones(len(bank), dtype=torch.bool, device=bank.device)
    keep[suspects] = first[group] == suspects
    if bool(keep.all()):
        return bank, None
    origin = keep.nonzero().squeeze(1)
    return bank[origin], origin


def _two_smallest(d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Smallest entry of each row, its column and the second smallest entry
    (another column's; inf for one column), from one pass of minima over
    blocks of :data:`_BLOCK` columns (much cheaper than ``min`` with indices)
    and work on each row's winning block only. (R, W) -> (R,), (R,) long, (R,)"""
    r, w = d.shape
    full = w // _BLOCK
    parts = [d[:, :full * _BLOCK].unflatten(1, (full, _BLOCK)).amin(2)] if full else []
    if w > full * _BLOCK:
        parts.append(d[:, full * _BLOCK:].amin(1, keepdim=True))
    blocks = torch.cat(parts, 1) if len(parts) > 1 else parts[0]   # (R, ceil(W / _BLOCK))
    first, block = blocks.min(1)
    cols = block[:, None] * _BLOCK + torch.arange(_BLOCK, device=d.device)
    vals = d.gather(1, cols.clamp_max(w - 1)).masked_fill(cols >= w, float("inf"))   # the winning block
    at = vals.argmin(1, keepdim=True)
    second = torch.minimum(vals.scatter(1, at, float("inf")).amin(1),
                           blocks.scatter(1, block[:, None], float("inf")).amin(1))
    return first, cols.gather(1, at).squeeze(1), second


def _less(a: Tensor, b: Tensor) -> Tensor:
    """``a < b`` with a relative slack that absorbs float64 rounding of the distances (non-negative ``a``)."""
    return a * (1 + _RELATIVE_SLACK) < b - _RELATIVE_SLACK * b.abs()


def brute_force_nearest(queries: Tensor, bank: Tensor) -> Tensor:
    """Reference: float64 brute force, lowest index among ties. (Q, D), (N, D) -> (Q,) long"""
    q, b = queries.double(), bank.double()
    return torch.stack([(b - qi).pow(2).sum(1).argmin() for qi in q]) if len(q) else torch.zeros(0, dtype=torch.long)
