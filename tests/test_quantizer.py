"""models/quantizer.py: initialisation, EMA learning, dead-code reset,
straight-through gradient, statistics, exact state restore, and EMA statistics
kept identical across DDP ranks (2 gloo processes)."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from models.quantizer import QUANTIZERS, build_quantizer


def _latents(b=4, d=8, t=6, seed=0) -> torch.Tensor:
    return torch.randn(b, d, t, generator=torch.Generator().manual_seed(seed))


def test_ema_reset_initialises_codebook_from_first_batch() -> None:
    torch.manual_seed(0)
    q = build_quantizer("ema_reset", nb_code=16, code_dim=8).train()
    assert not bool(q.initialized)
    z = _latents()  # 24 vectors >= 16 codes: codes are a subset of them
    q(z)
    assert bool(q.initialized)
    flat = z.permute(0, 2, 1).reshape(-1, 8)
    # after one EMA step each code is a mixture of its init row and its batch mean; the init rows
    # were batch rows, so every code lies within the batch's range
    assert q.codebook.shape == (16, 8)
    assert torch.all(q.codebook.min(0).values >= flat.min(0).values - 1e-5)
    assert torch.all(q.codebook.max(0).values <= flat.max(0).values + 1e-5)


def test_eval_mode_and_update_false_leave_the_codebook_alone() -> None:
    torch.manual_seed(0)
    q = build_quantizer("ema_reset", 16, 8).train()
    q(_latents(seed=1))
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(_latents(seed=2), update=False)
    q.eval()
    q(_latents(seed=3))
    for k, v in q.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_nearest_code_and_straight_through_gradient() -> None:
    q = build_quantizer("ema", 3, 2).eval()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    q.initialized.fill_(True)
    z = torch.tensor([[[1.0, 9.0, 0.5], [0.5, 1.0, 8.0]]], requires_grad=True)  # (1, 2, 3)
    out = q(z)
    assert out.indices.tolist() == [[0, 1, 2]]
    assert torch.allclose(out.z_q.detach(), torch.tensor([[[0.0, 10.0, 0.0], [0.0, 0.0, 10.0]]]))
    (out.z_q * torch.arange(6.0).view(1, 2, 3)).sum().backward()
    assert torch.equal(z.grad, torch.arange(6.0).view(1, 2, 3))  # identity gradient
    expected_commit = ((z.detach() - out.z_q.detach()) ** 2).mean()
    assert out.commit_loss.item() == pytest.approx(expected_commit.item())


def test_perplexity_and_usage_count_the_codes_used() -> None:
    q = build_quantizer("ema", 4, 1).eval()
    q.codebook.copy_(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    q.initialized.fill_(True)
    one_code = q(torch.zeros(1, 1, 8))
    assert one_code.perplexity.item() == pytest.approx(1.0, abs=1e-4)
    assert one_code.usage.item() == pytest.approx(0.25)
    uniform = q(torch.tensor([[[0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]]]))
    assert uniform.perplexity.item() == pytest.approx(4.0, rel=1e-4)
    assert uniform.usage.item() == 1.0


def test_ema_update_moves_codes_to_the_mean_of_their_vectors() -> None:
    q = build_quantizer("ema", 2, 1, mu=0.5).train()
    q.codebook.copy_(torch.tensor([[0.0], [10.0]]))
    q.code_sum.copy_(q.codebook)
    q.code_count.fill_(1.0)
    q.initialized.fill_(True)
    q(torch.tensor([[[1.0, 3.0, 9.0]]]))  # code 0 gets 1 and 3, code 1 gets 9
    # sum = 0.5*0 + 0.5*4 = 2, count = 0.5*1 + 0.5*2 = 1.5 -> 4/3; code 1: (5 + 4.5) / 1
    assert q.codebook[:, 0].tolist() == pytest.approx([2.0 / 1.5, 9.5 / 1.0])
    assert q.code_count.tolist() == pytest.approx([1.5, 1.0])


def test_ema_reset_replaces_dead_codes_with_encoder_outputs() -> None:
    torch.manual_seed(0)
    q = build_quantizer("ema_reset", 4, 2, mu=0.5).train()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]))
    q.code_sum.copy_(q.codebook)
    q.code_count.fill_(1.0)
    q.initialized.fill_(True)
    z = torch.randn(2, 2, 8) * 0.1  # everything maps to code 0: codes 1-3 die (count 0.5 < 1)
    q(z)
    flat = z.permute(0, 2, 1).reshape(-1, 2)
    for k in (1, 2, 3):
        assert torch.min((flat - q.codebook[k]).norm(dim=1)) < 1e-6, "dead code not replaced by a batch vector"
        assert q.code_count[k].item() == 1.0
    assert q.code_usage() == 1.0


@pytest.mark.parametrize("name", ["orig", "reset"])
def test_gradient_codebooks_learn_by_gradient(name: str) -> None:
    torch.manual_seed(0)
    q = build_quantizer(name, 8, 4).train()
    assert isinstance(q.codebook, torch.nn.Parameter)
    out = q(_latents(d=4))
    out.commit_loss.backward()
    assert q.codebook.grad is not None and q.codebook.grad.abs().sum() > 0


@pytest.mark.parametrize("name", QUANTIZERS)
def test_state_dict_restores_the_quantizer_exactly(name: str) -> None:
    torch.manual_seed(0)
    q = build_quantizer(name, 16, 8).train()
    for s in range(3):
        q(_latents(seed=s))
    state = q.state_dict()
    assert {"codebook", "code_sum", "code_count", "initialized"} <= set(state)
    fresh = build_quantizer(name, 16, 8).train()
    fresh.load_state_dict(state)
    torch.manual_seed(5)
    a = q(_latents(seed=9))
    torch.manual_seed(5)
    b = fresh(_latents(seed=9))  # no re-initialisation: the flag came back too
    assert torch.equal(a.indices, b.indices)
    for k, v in q.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


def test_bf16_autocast_still_quantizes_in_float32() -> None:
    torch.manual_seed(0)
    q = build_quantizer("ema_reset", 16, 8).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(_latents().bfloat16())
    assert out.z_q.dtype == torch.float32 and q.codebook.dtype == torch.float32


def test_bad_latent_shape_is_rejected() -> None:
    q = build_quantizer("ema_reset", 16, 8)
    with pytest.raises(ValueError, match=r"\(B, 8, T\)"):
        q(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="unknown quantizer"):
        build_quantizer("kmeans", 16, 8)


# -- DDP: two gloo processes ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for name in ("ema_reset", "ema"):
            torch.manual_seed(100 + rank)  # ranks' RNGs differ on purpose
            q = build_quantizer(name, 8, 3, mu=0.9).train()
            for step in range(4):
                z = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(10 * step + rank)) * (1 + step)
                q(z)
            torch.save(q.state_dict(), os.path.join(out_dir, f"{name}_{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_states(tmp_path_factory):
    """Quantizer states after 4 training steps on 2 gloo ranks with different data."""
    out = tmp_path_factory.mktemp("ddp_quantizer")
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return {(name, r): torch.load(out / f"{name}_{r}.pt") for name in ("ema_reset", "ema") for r in range(2)}


@pytest.mark.parametrize("name", ["ema_reset", "ema"])
def test_codebook_statistics_are_identical_across_ddp_ranks(ddp_states, name: str) -> None:
    s0, s1 = ddp_states[(name, 0)], ddp_states[(name, 1)]
    assert bool(s0["initialized"])
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    if name == "ema":
        # from the same starting codebook, 2 ranks learn what one process learns from both ranks' batches
        init = _initial_codebook(name)
        q = build_quantizer(name, 8, 3, mu=0.9).train()
        q.codebook.copy_(init)
        q.code_sum.copy_(init)
        q.code_count.fill_(1.0)
        q.initialized.fill_(True)
        for step in range(4):
            zs = [torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(10 * step + r)) * (1 + step)
                  for r in range(2)]
            q(torch.cat(zs))
        for k in ("codebook", "code_sum", "code_count"):
            assert torch.allclose(q.state_dict()[k], s0[k], atol=1e-5), k


def _initial_codebook(name: str) -> torch.Tensor:
    """Rank 0's initial codebook: rank 0 seeds 100 and draws the first batch."""
    torch.manual_seed(100)
    q = build_quantizer(name, 8, 3, mu=0.9)
    z = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    q._initialize(z.permute(0, 2, 1).reshape(-1, 3))
    return q.codebook.clone()
