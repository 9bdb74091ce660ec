"""models/vqvae.py: shapes of the public API, the paper-size parameter count,
that quantize() does not train the codebook, and load_vqvae's checks."""
from __future__ import annotations

import pytest
import torch

from models.resnet import Resnet1D
from models.vqvae import VQVAE, load_vqvae
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.constants import COORDINATES
from dataset.normalization import Normalizer

import numpy as np


def _tiny(**kw) -> VQVAE:
    torch.manual_seed(0)
    cfg = dict(nb_code=32, code_dim=16, width=32, depth=2)
    cfg.update(kw)
    return VQVAE(**cfg)


def test_public_api_shapes() -> None:
    model = _tiny().eval()
    x = torch.randn(3, 196, 33)
    z = model.encode_latent(x)
    assert z.shape == (3, 16, 49)
    z_q, idx = model.quantize(z)
    assert z_q.shape == (3, 16, 49) and idx.shape == (3, 49) and idx.dtype == torch.int64
    assert model.decode_latent(z_q).shape == (3, 196, 33)
    assert torch.equal(model.encode(x), idx)
    assert torch.allclose(model.decode_indices(idx), model.decode_latent(z_q), atol=1e-5)
    x_hat, commit, perplexity = model(x)
    assert x_hat.shape == x.shape and commit.dim() == 0 and 1.0 <= perplexity.item() <= 32
    assert model.codebook.shape == (32, 16)
    assert model.downsample == 4


def test_paper_size_model_has_about_18_7_million_parameters() -> None:
    model = VQVAE(n_features=33, nb_code=512, code_dim=512, width=512, down_t=2, depth=3,
                  dilation_growth_rate=3)
    n = sum(p.numel() for p in model.parameters())
    assert 18.6e6 < n < 18.8e6
    assert Resnet1D(8, 3, 3).dilations == (1, 3, 9)
    assert Resnet1D(8, 3, 3, reverse_dilation=True).dilations == (9, 3, 1)


def test_quantize_gives_gradients_to_latents_without_training_the_codebook() -> None:
    model = _tiny().train()
    model(torch.randn(2, 196, 33))  # initialises the codebook
    before = model.codebook.clone()
    z = model.encode_latent(torch.randn(2, 196, 33)).detach().requires_grad_(True)
    z_q, _ = model.quantize(z)
    model.decode_latent(z_q).pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert torch.equal(model.codebook, before)


def test_relaxed_quantisation_decodes_the_nearest_codes_and_pulls_towards_better_ones() -> None:
    """Forward: exactly the nearest codes. Backward: the gradient of a soft
    assignment, which (unlike straight-through) points from the latent towards
    a code that lowers the loss."""
    model = _tiny().train()
    model(torch.randn(4, 196, 33))  # initialises the codebook
    model.eval()
    codes = model.codebook.detach()
    # one latent step half-way between code 0 and code 1, slightly nearer 0
    z = (0.55 * codes[0] + 0.45 * codes[1]).reshape(1, -1, 1).clone().requires_grad_(True)
    z_q, idx = model.quantize_relaxed(z, temperature=0.05)
    hard, idx_hard = model.quantize(z.detach())
    assert torch.equal(idx, idx_hard) and int(idx) == 0
    torch.testing.assert_close(z_q.detach(), hard)
    # a loss that prefers code 1: distance of the quantised vector to code 1
    (z_q[0, :, 0] - codes[1]).pow(2).sum().backward()
    step = -z.grad[0, :, 0]
    assert float(step @ (codes[1] - codes[0])) > 0  # descent moves z towards code 1
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.quantize_relaxed(z, temperature=0.0)


def test_motion_of_the_wrong_shape_is_rejected() -> None:
    model = _tiny()
    with pytest.raises(ValueError, match=r"\(B, T, 33\)"):
        model(torch.randn(2, 196, 30))
    with pytest.raises(ValueError, match="not a multiple of 4"):
        model(torch.randn(2, 198, 33))


@pytest.mark.parametrize("norm,act", [("LN", "gelu"), ("GN", "silu")])
def test_norm_and_activation_options_build_and_run(norm: str, act: str) -> None:
    model = _tiny(norm=norm, activation=act, width=64)
    assert model(torch.randn(2, 16, 33))[0].shape == (2, 16, 33)


def _checkpoint(model: VQVAE, **override) -> dict:
    normalizer = Normalizer.fit(np.random.default_rng(0).normal(size=(4, 16, 33)))
    content = dict(kind="vqvae", model=model.state_dict(), model_config=model.config, coordinates=list(COORDINATES),
                   normalizer=normalizer.state_dict(), args={}, step=7)
    content.update(override)
    return content


def test_load_vqvae_round_trip(tmp_path) -> None:
    model = _tiny().train()
    x = torch.randn(2, 196, 33)
    model(x)
    save_checkpoint(tmp_path / "vq.pth", **_checkpoint(model))
    loaded, normalizer, ckpt = load_vqvae(tmp_path / "vq.pth")
    assert not loaded.training and ckpt["step"] == 7 and ckpt["model_config"] == model.config
    assert normalizer.mean.shape == (33,)
    model.eval()
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert torch.equal(loaded.codebook, model.codebook)
    # a checkpoint written before the one schema named the configuration "config"
    older = _checkpoint(model)
    older["config"] = older.pop("model_config")
    save_checkpoint(tmp_path / "older.pth", **older)
    again, _, ckpt = load_vqvae(tmp_path / "older.pth")
    assert ckpt["model_config"] == model.config and torch.equal(again.encode(x), model.encode(x))


def test_load_vqvae_refuses_other_coordinate_orders_and_files(tmp_path) -> None:
    model = _tiny()
    swapped = list(COORDINATES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    save_checkpoint(tmp_path / "swapped.pth", **_checkpoint(model, coordinates=swapped))
    with pytest.raises(CheckpointError, match=r"swapped\.pth.*coordinates.*order differs"):
        load_vqvae(tmp_path / "swapped.pth")
    save_checkpoint(tmp_path / "other.pth", weights={})
    with pytest.raises(CheckpointError, match=r"other\.pth: not a VQ-VAE checkpoint"):
        load_vqvae(tmp_path / "other.pth")
    bad = _checkpoint(model)
    bad["model_config"] = dict(model.config, width=64)
    save_checkpoint(tmp_path / "mismatch.pth", **bad)
    with pytest.raises(CheckpointError, match=r"mismatch\.pth: weights do not fit"):
        load_vqvae(tmp_path / "mismatch.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vqvae(tmp_path / "missing.pth")


def test_bf16_autocast_decodes_the_last_layer_in_float32() -> None:
    """Under bf16 autocast the motion comes out in float32, computed by the last
    layer in float32 from the (bf16) hidden features: frame differences of
    the output are not differences of bf16-rounded values."""
    model = _tiny().eval()
    z_q = model.quantize(model.encode_latent(torch.randn(2, 196, 33)))[0]
    decoder = model.decoder.model
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = decoder[:-1](z_q)
        out = decoder(z_q)
    assert hidden.dtype == torch.bfloat16 and out.dtype == torch.float32
    with torch.no_grad():
        expected = decoder[-1](hidden.float())            # the last layer, fp32, on the same features
        rounded = expected.bfloat16().float()
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)
    # second differences: bf16 rounding of the output would have changed them by far more
    acc = lambda x: x[..., 2:] - 2 * x[..., 1:-1] + x[..., :-2]  # noqa: E731
    assert (acc(out) - acc(expected)).abs().max() < 1e-5 < (acc(rounded) - acc(expected)).abs().max()


def test_float32_output_layer_loads_checkpoints_of_a_plain_conv() -> None:
    from torch import nn

    from models.float32_layers import Float32Conv1d

    plain, fp32 = nn.Conv1d(8, 4, 3, 1, 1), Float32Conv1d(8, 4, 3, 1, 1)
    fp32.load_state_dict(plain.state_dict())                # same keys and shapes
    x = torch.randn(2, 8, 10)
    assert torch.equal(fp32(x), plain(x))                   # outside autocast: the same layer
