"""Exact nearest-neighbour search of latent vectors against a fixed bank,
cheap when the queries move little between calls (guidance's Adam steps).

The answer is always the exact nearest bank row of each query: the smallest
squared Euclidean distance computed in float64 from the float32 inputs, the
lowest bank index among exact ties (what ``argmin`` of a float64 brute force
returns). Three things keep it cheap:

1. **Tiled fp32 scan with a proven margin.** A full search computes
   ``|b|^2 - 2 q.b`` with one matrix product per tile of the bank (so the
   distance block stays small instead of a (queries x bank) matrix of hundreds
   of MB) and keeps each query's ``candidates`` smallest. The float32 rounding
   error of every entry is bounded (:func:`fp32_distance_error`); the
   candidates are re-ranked in float64, and their winner is accepted only if
   it beats the bound below which no other bank row can lie. Otherwise (ties
   or near-ties beyond the candidates) that query is searched by float64 brute
   force.
2. **Reuse across calls with a triangle-inequality check.** After a full
   search each query keeps its anchor ``a`` (the query itself), its
   candidates with their float64 distances, and ``rho``, a lower bound on the
   distance from ``a`` to every non-candidate. At each later call every
   candidate's distance bound shrinks by the step the query took, and every
   non-candidate is at least ``rho - |q - a|`` away. The last answer's
   distance is recomputed (float64), and so is that of every candidate whose
   bound no longer exceeds it; the smallest of these (lowest index on ties)
   is the exact answer if it is closer than ``rho - |q - a|``. Only the
   queries that fail this check scan the bank again. Latents moving towards
   their nearest neighbour (the proximity-only phase) pass it for long
   stretches, and a step costs a few gathered rows per query.
3. **No work on what cannot matter.** Later copies of identical bank rows
   are dropped at construction (a tie always goes to the first copy), and the
   scan shifts rows and queries by the bank's mean, so that the error bound,
   which grows with the norms, reflects the spread of the latents rather than
   their offset.
4. **Gathered neighbours only.** Callers compute the loss and its gradient on
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
    scanned: int = 0       # queries that needed a tiled scan of the bank
    brute_force: int = 0   # queries resolved by the float64 brute force (ties beyond the candidates)

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
    queries; a batch of other queries only costs a scan, never a wrong answer).
    """

    def __init__(self, bank: Tensor, candidates: int = 32, tile_bytes: int = 8 * 2**20, reuse: bool = True):
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

    @torch.no_grad()
    def __call__(self, queries: Tensor) -> Tensor:
        """Index of the exact nearest bank row of each query. (Q, D) -> (Q,) long"""
        if queries.ndim != 2 or queries.shape[1] != self.bank.shape[1]:
            raise ValueError(f"queries must be (Q, {self.bank.shape[1]}), got shape {tuple(queries.shape)}")
        q = queries.detach().to(self.bank.device, torch.float64)
        self.stats.calls += 1
        self.stats.queries += q.shape[0]
        if not (self.reuse and self._prev is not None and self._prev.shape == q.shape):
            self.reset()
            nearest, state = self._scan(q)
            if self.reuse:
                self._prev, self._anchor = q.clone(), q.clone()
                self._cand, self._lb, self._rho, self._best = state
            return self._original(nearest)
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

    def _exact_sqdist(self, q: Tensor, cand: Tensor, chunk: int = 256) -> Tensor:
        """Float64 squared distances of queries to their candidate rows. (R, D), (R, k) -> (R, k)"""
        out = torch.empty(cand.shape, dtype=torch.float64, device=q.device)
        for s in range(0, q.shape[0], chunk):
            rows = self.bank[cand[s:s + chunk]].double()            # (r, k, D)
            out[s:s + chunk] = (rows - q[s:s + chunk, None, :]).pow(2).sum(-1)
        return out

    def _scan(self, q: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Full search of ``q`` (R, D) float64: nearest (R,) and the reuse state
        (candidates (R, k) sorted, their float64 distances (R, k), rho (R,), nearest (R,))."""
        n, k = self.bank.shape[0], self.candidates
        qc = q - self.shift.double()                                  # exact in float64
        q32 = qc.float()
        rows_per_tile = max(k, self.tile_bytes // 4 // max(1, min(q.shape[0], 1024)))
        q_block = max(1, self.tile_bytes // 4 // max(1, min(rows_per_tile, n)))
        best_v = torch.empty(q.shape[0], k, device=q.device)
        best_i = torch.empty(q.shape[0], k, dtype=torch.long, device=q.device)
        for qs in range(0, q.shape[0], q_block):
            qb = q32[qs:qs + q_block]
            vals, idxs = None, None
            for bs in range(0, n, rows_per_tile):
                tile = self.bank[bs:bs + rows_per_tile] - self.shift  # the rows sqnorm was computed from
                d = torch.addmm(self.sqnorm[bs:bs + rows_per_tile].unsqueeze(0), qb, tile.T, alpha=-2.0)
                v, i = d.topk(min(k, d.shape[1]), dim=1, largest=False, sorted=False)
                i = i + bs
                if vals is not None:
                    v, i = torch.cat([vals, v], 1), torch.cat([idxs, i], 1)
                    v, j = v.topk(k, dim=1, largest=False, sorted=False)
                    i = i.gather(1, j)
                vals, idxs = v, i
            best_v[qs:qs + q_block], best_i[qs:qs + q_block] = vals, idxs
        qnorm2 = qc.pow(2).sum(1)
        # fp32 rounding of the shifted rows and queries adds at most 2u (|q| + |b|)^2: inside the bound's slack
        err = fp32_distance_error(qnorm2.sqrt(), self.max_norm, q.shape[1])
        # every non-candidate's fp32 value is >= the largest candidate value
        rho2 = best_v.double().max(1).values + qnorm2 - err
        rho = rho2.clamp_min(0).sqrt()
        if k == n:
            rho = torch.full_like(rho, float("inf"))                 # no non-candidates
        cand = best_i.sort(1).values
        d2 = self._exact_sqdist(q, cand)
        best, pos = d2.min(1)
        nearest = cand.gather(1, pos[:, None]).squeeze(1)
        proven = _less(best.sqrt(), rho)
        self.stats.scanned += q.shape[0]
        unproven = (~proven).nonzero().squeeze(1)                   # ties or near-ties beyond the candidates
        if unproven.numel():
            nearest[unproven] = self._brute_force(q[unproven])
            rho[unproven] = -float("inf")                           # never reused: scan again next time
            self.stats.brute_force += unproven.numel()
        return nearest, (cand, d2.sqrt(), rho, nearest.clone())

    def _brute_force(self, q: Tensor, max_bytes: int = 64 * 2**20) -> Tensor:
        """Float64 brute force (direct differences); lowest index among exact ties. (R, D) -> (R,)"""
        chunk = max(1, max_bytes // (8 * q.shape[1] * q.shape[0]))
        best_d = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=q.device)
        best_i = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        for s in range(0, self.bank.shape[0], chunk):
            d = (self.bank[s:s + chunk].double()[None] - q[:, None]).pow(2).sum(-1)   # (R, chunk)
            v, i = d.min(1)                                                    # first minimum in the chunk
            better = v < best_d                                                # earlier chunks win ties
            best_d, best_i = torch.where(better, v, best_d), torch.where(better, i + s, best_i)
        return best_i


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


def _less(a: Tensor, b: Tensor) -> Tensor:
    """``a < b`` with a relative slack that absorbs float64 rounding of the distances (non-negative ``a``)."""
    return a * (1 + _RELATIVE_SLACK) < b - _RELATIVE_SLACK * b.abs()


def brute_force_nearest(queries: Tensor, bank: Tensor) -> Tensor:
    """Reference: float64 brute force, lowest index among ties. (Q, D), (N, D) -> (Q,) long"""
    q, b = queries.double(), bank.double()
    return torch.stack([(b - qi).pow(2).sum(1).argmin() for qi in q]) if len(q) else torch.zeros(0, dtype=torch.long)
