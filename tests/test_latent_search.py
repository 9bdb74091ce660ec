"""models/latent_search.py: the exact nearest search equals a float64 brute
force (lowest index among ties) on random data, on integer data full of exact
ties, with tiny tiles, and along random walks where the reuse check must
notice when the nearest row changes."""
from __future__ import annotations

import pytest
import torch

from models import guidance_losses as L
from models.latent_search import NearestSearch, _two_smallest, brute_force_nearest, fp32_distance_error


def _random(n: int, q: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(q, d, generator=g)


@pytest.mark.parametrize("n,q,d,k", [(500, 40, 16, 16), (300, 25, 64, 4), (7, 5, 3, 16), (1, 3, 4, 2)])
def test_scan_equals_float64_brute_force_on_random_data(n, q, d, k) -> None:
    bank, queries = _random(n, q, d, seed=n + d)
    search = NearestSearch(bank, candidates=k)
    assert torch.equal(search(queries), brute_force_nearest(queries, bank))
    assert search.stats.scanned == q and search.stats.reused == 0


def test_tiny_tiles_give_the_same_answer() -> None:
    bank, queries = _random(1000, 33, 8, seed=3)
    ref = brute_force_nearest(queries, bank)
    search = NearestSearch(bank, candidates=5, tile_bytes=64)  # one query x 16 rows per tile
    assert torch.equal(search(queries), ref)


def test_exact_ties_resolve_to_the_lowest_index() -> None:
    g = torch.Generator().manual_seed(4)
    # small integers: every fp32 and fp64 distance is exact, so ties are real ties
    bank = torch.randint(-1, 2, (200, 3), generator=g).float()
    bank = torch.cat([bank, bank])  # every row duplicated: more tied rows than candidates
    # half-integer queries lie halfway between distinct rows: up to 8 distinct rows tie
    queries = torch.randint(-4, 5, (60, 3), generator=g).float() / 2
    ref = brute_force_nearest(queries, bank)
    assert (ref < 200).all()  # the reference itself prefers the first copy
    search = NearestSearch(bank, candidates=4, adaptive=False)
    assert len(search.bank) <= 27 and len(search) == 400  # copies are searched once
    for _ in range(3):  # a second and third call go through the reuse check
        assert torch.equal(search(queries), ref)
    assert search.stats.brute_force > 0  # some queries had more distinct tied rows than candidates


def test_reuse_follows_a_random_walk_exactly_and_skips_most_scans() -> None:
    bank, queries = _random(2000, 50, 32, seed=5)
    g = torch.Generator().manual_seed(6)
    search = NearestSearch(bank, candidates=16, adaptive=False)  # the reuse check on every call
    first = search(queries)
    changed = 0
    for step in range(60):
        size = 0.02 if step % 10 else 1.0  # mostly small moves, sometimes a jump
        queries = queries + size * torch.randn(queries.shape, generator=g)
        got = search(queries)
        ref = brute_force_nearest(queries, bank)
        assert torch.equal(got, ref), f"step {step}"
        changed += int((ref != first).sum())
    assert changed > 0  # the walk did move queries to other nearest rows
    assert search.stats.reuse_fraction > 0.5


def test_queries_moving_towards_their_nearest_row_are_never_scanned_again() -> None:
    bank, queries = _random(3000, 20, 24, seed=7)
    search = NearestSearch(bank, candidates=8, adaptive=False)
    nearest = search(queries)
    for _ in range(20):
        queries = queries + 0.1 * (bank[nearest] - queries)
        assert torch.equal(search(queries), nearest)
    assert search.stats.scanned == 20  # only the first call scanned


def test_a_batch_of_other_queries_is_scanned_not_answered_from_stale_anchors() -> None:
    bank, queries = _random(800, 30, 12, seed=8)
    other = _random(800, 30, 12, seed=9)[1]
    search = NearestSearch(bank)
    search(queries)
    assert torch.equal(search(other), brute_force_nearest(other, bank))
    assert torch.equal(search(queries[:7]), brute_force_nearest(queries[:7], bank))  # other shape: fresh scan


def test_fp32_error_bound_covers_the_real_error() -> None:
    bank, queries = _random(3000, 64, 128, seed=10)
    bank = bank * 30 + 5  # large norms, strong cancellation in |b|^2 - 2 q.b
    queries = queries * 30 + 5
    sq = (bank.double() ** 2).sum(1)
    approx = torch.addmm(sq.float().unsqueeze(0), queries, bank.T, alpha=-2.0).double()
    exact = sq.unsqueeze(0) - 2 * queries.double() @ bank.double().T
    bound = fp32_distance_error(queries.double().norm(dim=1), float(sq.max().sqrt()), 128)
    err = (approx - exact).abs().max(1).values
    assert (err > 0).any() and (err <= bound).all()


def test_latent_bank_exact_and_matmul_searches_agree_with_brute_force() -> None:
    g = torch.Generator().manual_seed(11)
    lat = torch.randn(40, 8, 6, generator=g)
    z = torch.randn(5, 8, 6, generator=g)
    for unit in ("frame", "sequence"):
        exact, matmul = L.LatentBank(lat, unit=unit), L.LatentBank(lat, unit=unit, search="matmul")
        q = z.transpose(1, 2).reshape(-1, 8) if unit == "frame" else z.reshape(5, -1)
        ref = brute_force_nearest(q, exact.vectors)
        assert torch.equal(exact.nearest_index(z).reshape(-1), ref)
        assert torch.equal(matmul.nearest_index(z).reshape(-1), ref)
    with pytest.raises(ValueError, match="latent search"):
        L.LatentBank(lat, search="faiss")


def test_search_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        NearestSearch(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="queries must be"):
        NearestSearch(torch.zeros(4, 3))(torch.zeros(2, 5))


def test_near_ties_below_fp32_resolution_are_settled_in_float64() -> None:
    # |b0|^2 = 1 + 2^-24 rounds to 1 in fp32: the scan cannot tell the rows apart
    b0, b1 = torch.tensor([1.0, 2.0 ** -12]), torch.tensor([1.0, 0.0])
    bank = torch.stack([b0] * 50 + [b1])
    queries = torch.zeros(3, 2)
    search = NearestSearch(bank, candidates=1)
    assert torch.equal(search(queries), torch.full((3,), 50))
    assert search.stats.brute_force == 3


def test_reduced_precision_fp32_matmul_widens_the_error_bound() -> None:
    norms = torch.tensor([3.0])
    tight = fp32_distance_error(norms, 4.0, 16)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        loose = fp32_distance_error(norms, 4.0, 16)
    finally:
        torch.set_float32_matmul_precision(before)
    assert float(loose / tight) == pytest.approx(2.0 ** 16)


def test_duplicate_rows_are_searched_once_and_answered_by_the_first_copy() -> None:
    bank, queries = _random(300, 40, 8, seed=12)
    g = torch.Generator().manual_seed(13)
    copies = bank[torch.randint(0, 300, (200,), generator=g)]
    full = torch.cat([bank, copies, bank[:50]])[torch.randperm(550, generator=g)]
    search = NearestSearch(full, candidates=3)
    assert len(search.bank) == 300
    ref = brute_force_nearest(queries, full)
    assert torch.equal(search(queries), ref)
    assert torch.equal(search(queries + 0.01), brute_force_nearest(queries + 0.01, full))


def test_a_large_common_offset_does_not_loosen_the_search() -> None:
    bank, queries = _random(2000, 30, 64, seed=14)
    offset = 1000.0  # norms ~ 8000, distances ~ 11: the fp32 bound must not swallow the gaps
    search = NearestSearch(bank + offset, candidates=8)
    assert torch.equal(search(queries + offset), brute_force_nearest(queries + offset, bank + offset))
    assert search.stats.brute_force == 0


def _tie_heavy(n: int, q: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Small-integer rows (exact fp32 and fp64 distances, so ties are real), some
    rows repeated, and half-integer queries halfway between rows."""
    g = torch.Generator().manual_seed(seed)
    bank = torch.randint(-2, 3, (n, d), generator=g).float()
    bank = torch.cat([bank, bank[torch.randint(0, n, (n // 4,), generator=g)]])
    return bank, torch.randint(-4, 5, (q, d), generator=g).float() / 2


@pytest.mark.parametrize("n,q,d,tile_bytes", [(1, 4, 3, 2**23), (2, 4, 3, 2**23), (300, 40, 16, 2**23),
                                              (4000, 200, 64, 2**23), (20000, 64, 32, 2**23),
                                              (3000, 50, 8, 256)])
def test_direct_scan_equals_float64_brute_force_on_random_data(n, q, d, tile_bytes) -> None:
    bank, queries = _random(n, q, d, seed=20 + n)
    search = NearestSearch(bank, reuse=False, tile_bytes=tile_bytes)  # every call a direct scan
    assert torch.equal(search(queries), brute_force_nearest(queries, bank))
    assert search.stats.direct == q and search.stats.scanned == 0


@pytest.mark.parametrize("n,q,d,tile_bytes", [(30, 60, 3, 2**23), (500, 80, 4, 2**23), (20000, 64, 6, 2**23),
                                              (500, 80, 4, 512)])
def test_direct_scan_resolves_exact_ties_to_the_lowest_index(n, q, d, tile_bytes) -> None:
    bank, queries = _tie_heavy(n, q, d, seed=n)
    ref = brute_force_nearest(queries, bank)
    search = NearestSearch(bank, reuse=False, tile_bytes=tile_bytes)
    assert torch.equal(search(queries), ref)
    assert search.stats.brute_force > 0  # tied runner-ups were settled in float64


def test_direct_scan_settles_near_ties_below_fp32_resolution() -> None:
    b0, b1 = torch.tensor([1.0, 2.0 ** -12]), torch.tensor([1.0, 0.0])
    bank = torch.stack([b0] * 50 + [b1] + [b0 * 3])
    queries = torch.zeros(3, 2)
    assert torch.equal(NearestSearch(bank, reuse=False)(queries), torch.full((3,), 50))


def test_scan_keeps_lower_bounds_on_its_candidates_distances() -> None:
    bank, queries = _random(5000, 100, 16, seed=21)
    search = NearestSearch(bank, candidates=16)
    search(queries)
    true = (search.bank[search._cand].double() - queries.double()[:, None]).pow(2).sum(-1).sqrt()
    assert (search._lb <= true * (1 + 1e-12)).all()
    assert (search._lb > 0.9 * true).all()  # and tight ones: the fp32 bound is small at these norms


@pytest.mark.parametrize("tie_heavy", [False, True])
def test_walk_switching_between_direct_scans_and_reuse_checks_stays_exact(tie_heavy) -> None:
    bank, queries = (_tie_heavy(400, 60, 4, seed=22) if tie_heavy else _random(3000, 60, 16, seed=22))
    g = torch.Generator().manual_seed(23)
    search = NearestSearch(bank, candidates=8)
    plan = iter([True, True, False, True, False, False, True] * 5)  # direct scans leave the anchors behind
    search._direct_is_cheaper = lambda: next(plan)
    search(queries)
    for step in range(30):
        queries = queries + (0.5 if step % 4 else 0.05) * torch.randn(queries.shape, generator=g)
        if tie_heavy:
            queries = (queries * 2).round() / 2
        assert torch.equal(search(queries), brute_force_nearest(queries, bank)), f"step {step}"
    assert search.stats.direct > 0 and search.stats.reused > 0


def test_queries_moving_a_lot_on_a_small_bank_choose_the_direct_scan() -> None:
    bank, queries = _random(3000, 400, 64, seed=24)
    g = torch.Generator().manual_seed(25)
    search = NearestSearch(bank)
    for _ in range(6):
        queries = queries + 0.5 * torch.randn(queries.shape, generator=g)
        assert torch.equal(search(queries), brute_force_nearest(queries, bank))
    assert search.stats.direct >= 3 * 400  # after one reuse check showed that most queries fail it


@pytest.mark.parametrize("width", [1, 2, 63, 64, 65, 200, 640])
def test_two_smallest_equals_a_sort(width) -> None:
    g = torch.Generator().manual_seed(width)
    d = torch.randn(50, width, generator=g)
    d[::3] = d[::3].round()  # rows full of ties
    first, col, second = _two_smallest(d.clone())
    ordered = d.sort(1).values
    assert torch.equal(first, ordered[:, 0]) and torch.equal(d.gather(1, col[:, None]).squeeze(1), first)
    assert torch.equal(second, ordered[:, 1] if width > 1 else torch.full((50,), float("inf")))
