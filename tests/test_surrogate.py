"""The surrogate model: shapes, range, units, gradients, and checkpoint loading."""
from __future__ import annotations

import pytest
import torch

from models.surrogate import SurrogateModel, centre_horizontal, load_surrogate
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.constants import COORD_INDEX, COORDINATES, GUIDED_MUSCLES, MUSCLES

VASTI = ["vasmed_r", "vasmed_l", "vaslat_r", "vaslat_l", "vasint_r", "vasint_l"]
SMALL = {"mlp": {"hidden": 32, "window": 5}, "transformer": {"d_model": 24, "ff": 32, "dropout": 0.0, "max_len": 64}}


def squat_like(batch: int, frames: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """(B, T, 33) coordinates in degrees / metres with a squat-like knee/hip flexion."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 33, generator=g, dtype=dtype).repeat(1, frames, 1) * 3.0
    phase = 0.5 - 0.5 * torch.cos(torch.linspace(0, 2 * torch.pi, frames, dtype=dtype))
    depth = 60 + 40 * torch.rand(batch, 1, generator=g, dtype=dtype)
    for name, gain in (("knee_angle_r", 1.0), ("knee_angle_l", 1.0), ("hip_flexion_r", 0.8), ("hip_flexion_l", 0.8)):
        x[..., COORD_INDEX[name]] += gain * depth * phase
    x[..., COORD_INDEX["pelvis_ty"]] = 0.95 - 0.004 * depth * phase
    return x


def fitted(arch: str, muscles=VASTI, centre: bool = True, **config) -> SurrogateModel:
    x = squat_like(8, 40, seed=1)
    flat = (centre_horizontal(x) if centre else x).reshape(-1, 33)
    torch.manual_seed(0)
    return SurrogateModel(arch, muscles, flat.mean(0), flat.std(0).clamp_min(1e-3), centre=centre,
                          **{**SMALL[arch], **config})


@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_output_is_per_frame_activation_in_unit_interval(arch):
    model = fitted(arch).eval()
    y = model(squat_like(3, 40) * 10)  # far outside the fitted range: still in [0, 1]
    assert y.shape == (3, 40, len(VASTI))
    assert float(y.detach().min()) >= 0.0 and float(y.detach().max()) <= 1.0
    assert model.muscles == tuple(VASTI)


@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_gradient_wrt_kinematics_matches_finite_differences_float64(arch):
    model = fitted(arch).double().eval()
    x = squat_like(2, 24, seed=3, dtype=torch.float64).requires_grad_(True)
    # whole Jacobian, checked along random directions (torch's fast mode: v^T J u vs central differences)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-7, rtol=1e-4, fast_mode=True)
    # the kind of quantity guidance differentiates: a (smooth) peak activation of the guided muscles
    idx = model.muscle_indices(list(GUIDED_MUSCLES))

    def objective(z):
        return (torch.logsumexp(20.0 * model(z)[..., idx], dim=1) / 20.0).sum()

    (grad,) = torch.autograd.grad(objective(x), x)
    g = torch.Generator().manual_seed(7)
    eps = 1e-6
    checks = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(4)]
    for name in ("knee_angle_r", "hip_flexion_l", "pelvis_ty"):  # single coordinates at the deepest frame
        e = torch.zeros_like(x)
        e[:, 12, COORD_INDEX[name]] = 1.0
        checks.append(e)
    with torch.no_grad():
        for u in checks:
            numeric = (objective(x + eps * u) - objective(x - eps * u)) / (2 * eps)
            analytic = (grad * u).sum()
            assert abs(float(numeric - analytic)) <= 1e-6 + 1e-5 * abs(float(analytic)), (float(numeric), float(analytic))
    assert float(grad.abs().sum()) > 0


@torch.no_grad()
def test_strided_mlp_is_exact_on_evaluated_frames_and_linear_between():
    base = fitted("mlp", stride=1).double().eval()
    for stride in (2, 3, 4):
        strided = SurrogateModel("mlp", VASTI, base.x_mean, base.x_std, **{**SMALL["mlp"], "stride": stride})
        strided = strided.double().eval()
        strided.load_state_dict(base.state_dict())
        for frames in (40, 39, 2):
            x = squat_like(2, frames, seed=frames, dtype=torch.float64)
            a, b = strided.logits(x), base.logits(x)
            assert a.shape == b.shape == (2, frames, len(VASTI))
            torch.testing.assert_close(a[:, ::stride], b[:, ::stride], rtol=0, atol=1e-12)
            if frames > stride:  # one frame after an evaluated frame lies on the straight line to the next one
                mid = a[:, 1] - (a[:, 0] + (a[:, stride] - a[:, 0]) / stride)
                assert float(mid.abs().max()) < 1e-12


def test_model_takes_degrees_and_metres_normalisation_is_internal():
    model = fitted("mlp", centre=False).double().eval()
    x = squat_like(2, 30, dtype=torch.float64)
    shifted = SurrogateModel("mlp", VASTI, model.x_mean + 5.0, model.x_std * 2.0, centre=False,
                             **SMALL["mlp"]).double().eval()
    shifted.net.load_state_dict(model.net.state_dict())
    # same network on (x - mean) / std: moving the input the way the statistics moved gives the same output
    torch.testing.assert_close(shifted((x - model.x_mean) * 2.0 + shifted.x_mean), model(x))
    assert {"x_mean", "x_std"} <= set(model.state_dict())


@torch.no_grad()
@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_static_coordinates_are_ignored(arch):
    """A coordinate that never moved in the training data (mask ``static``)
    cannot change the prediction, however large its value; the others can."""
    base = fitted(arch).double().eval()
    static = [name in ("mtp_angle_r", "pro_sup_l") for name in COORDINATES]
    masked = SurrogateModel(arch, VASTI, base.x_mean, base.x_std, static=static, **SMALL[arch]).double().eval()
    masked.net.load_state_dict(base.net.state_dict())
    x = squat_like(2, 30, dtype=torch.float64)
    noisy = x.clone()
    noisy[..., COORD_INDEX["mtp_angle_r"]] += 25.0 * torch.randn(2, 30, dtype=torch.float64)
    noisy[..., COORD_INDEX["pro_sup_l"]] -= 90.0
    torch.testing.assert_close(masked(noisy), masked(x))
    assert float((base(noisy) - base(x)).abs().max()) > 1e-3  # without the mask it would matter
    moved = x.clone()
    moved[..., COORD_INDEX["knee_angle_r"]] += 10.0
    assert float((masked(moved) - masked(x)).abs().max()) > 1e-4
    assert masked.state_dict()["x_active"].tolist() == [0.0 if s else 1.0 for s in static]


@torch.no_grad()
@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_position_and_heading_in_the_laboratory_do_not_matter(arch):
    model = fitted(arch).double().eval()
    x = squat_like(2, 30, dtype=torch.float64)
    moved = x.clone()
    moved[..., COORD_INDEX["pelvis_tx"]] += 1.5
    moved[..., COORD_INDEX["pelvis_tz"]] -= 0.7
    moved[..., COORD_INDEX["pelvis_rotation"]] += 40.0
    torch.testing.assert_close(model(moved), model(x))
    lower = x.clone()
    lower[..., COORD_INDEX["pelvis_ty"]] -= 0.1  # the height of the pelvis does matter
    assert float((model(lower) - model(x)).abs().max()) > 1e-4
    absolute = fitted(arch, centre=False).double().eval()
    assert float((absolute(moved) - absolute(x)).abs().max()) > 1e-4


def test_rejects_input_that_is_not_batch_frames_33():
    model = fitted("mlp")
    with pytest.raises(ValueError, match=r"\(batch, frames, 33\)"):
        model(torch.zeros(40, 33))
    with pytest.raises(ValueError, match="got shape"):
        model(torch.zeros(1, 40, 32))


def test_transformer_refuses_clips_longer_than_its_positional_table():
    model = fitted("transformer")
    with pytest.raises(ValueError, match="at most 64 frames"):
        model(torch.zeros(1, 65, 33))


def test_constructor_rejects_bad_options():
    with pytest.raises(ValueError, match="odd"):
        SurrogateModel("mlp", VASTI, window=4)
    with pytest.raises(ValueError, match="unknown surrogate architecture"):
        SurrogateModel("lstm", VASTI)
    with pytest.raises(ValueError, match="do not apply"):
        SurrogateModel("mlp", VASTI, d_model=12)
    with pytest.raises(ValueError, match="unknown muscle"):
        SurrogateModel("mlp", ["vasmed"])
    with pytest.raises(ValueError, match="divisible"):
        SurrogateModel("transformer", VASTI, d_model=32, heads=3)


def test_muscle_indices_follow_the_output_order():
    model = fitted("mlp")
    assert model.muscle_indices(["vasint_l", "vasmed_r"]) == [5, 0]
    assert model.muscle_indices("vaslat_r") == [2]
    with pytest.raises(KeyError, match="soleus_r"):
        model.muscle_indices(["soleus_r"])


def write_checkpoint(path, net: SurrogateModel, **override):
    content = dict(model=net.state_dict(), model_config=net.model_config(), coordinates=list(COORDINATES),
                   muscles=list(net.muscles))
    content.update(override)
    save_checkpoint(path, **content)
    return path


@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_load_surrogate_restores_a_frozen_eval_model_with_input_gradients(tmp_path, arch):
    model = fitted(arch).eval()
    path = write_checkpoint(tmp_path / "net_best.pth", model)
    loaded = load_surrogate(path, device="cpu")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.muscles == model.muscles and loaded.arch == arch
    x = squat_like(2, 40).requires_grad_(True)
    torch.testing.assert_close(loaded(x), model(x))
    loaded(x)[..., 0].amax(1).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_load_surrogate_with_muscles_predicts_exactly_those(tmp_path):
    model = fitted("mlp").eval()
    path = write_checkpoint(tmp_path / "s.pth", model)
    loaded = load_surrogate(path, muscles=list(GUIDED_MUSCLES))
    assert loaded.muscles == GUIDED_MUSCLES
    x = squat_like(2, 40)
    torch.testing.assert_close(loaded(x), model(x)[..., model.muscle_indices(list(GUIDED_MUSCLES))])
    assert loaded.muscle_indices(list(GUIDED_MUSCLES)) == [0, 1]


def test_load_surrogate_names_the_file_when_a_muscle_is_missing(tmp_path):
    path = write_checkpoint(tmp_path / "s.pth", fitted("mlp"))
    with pytest.raises(CheckpointError, match=r"s\.pth.*does not predict soleus_l"):
        load_surrogate(path, muscles=["vasmed_r", "soleus_l"])


def test_load_surrogate_names_the_file_when_coordinate_order_differs(tmp_path):
    swapped = list(COORDINATES)
    swapped[12], swapped[13] = swapped[13], swapped[12]
    path = write_checkpoint(tmp_path / "old.pth", fitted("mlp"), coordinates=swapped)
    with pytest.raises(CheckpointError, match=r"old\.pth.*coordinates.*order differs"):
        load_surrogate(path)
    path = write_checkpoint(tmp_path / "short.pth", fitted("mlp"), coordinates=list(COORDINATES[:30]))
    with pytest.raises(CheckpointError, match=r"short\.pth.*missing"):
        load_surrogate(path)


def test_load_surrogate_rejects_files_that_are_not_surrogates(tmp_path):
    save_checkpoint(tmp_path / "vq.pth", net={"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"vq\.pth.*not a surrogate checkpoint"):
        load_surrogate(tmp_path / "vq.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        load_surrogate(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_surrogate(tmp_path / "missing.pth")
    model = fitted("mlp")
    bad = {k: v for k, v in model.state_dict().items() if k != "net.head.bias"}
    path = write_checkpoint(tmp_path / "cut.pth", model, model=bad)
    with pytest.raises(CheckpointError, match=r"cut\.pth.*do not fit"):
        load_surrogate(path)


def test_all_80_muscles_by_default():
    model = SurrogateModel("mlp")
    assert model.muscles == MUSCLES
    assert model(torch.zeros(1, 10, 33)).shape == (1, 10, 80)


# ----------------------------------------------------------------------------- body mass as an input


@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_body_mass_is_an_input_given_per_call_or_bound_per_subject(arch, tmp_path):
    model = fitted(arch, body_mass=(70.0, 10.0)).eval()
    assert model.uses_body_mass and not fitted(arch).uses_body_mass
    x = squat_like(3, 40)
    light, heavy = model(x, 55.0), model(x, 90.0)
    assert float((light - heavy).detach().abs().max()) > 1e-4  # the mass changes the prediction
    per_motion = model(x, torch.tensor([55.0, 90.0, 55.0]))
    torch.testing.assert_close(per_motion[0], light[0])
    torch.testing.assert_close(per_motion[1], heavy[1])
    bound = model.for_subject(90.0)
    torch.testing.assert_close(bound(x), heavy)
    assert bound.net is model.net and model.subject_mass is None  # a view sharing the weights
    with pytest.raises(ValueError, match="give body_mass= .* for_subject"):
        model(x)
    with pytest.raises(ValueError, match="2 values for a batch of 3"):
        model(x, torch.tensor([60.0, 70.0]))
    with pytest.raises(ValueError, match="positive number of kg"):
        model.for_subject(-3.0)
    # predict: per-motion masses in batches, or the bound subject's
    many = squat_like(5, 40, seed=4)
    masses = [50.0, 60.0, 70.0, 80.0, 90.0]
    rows = model.predict(many, batch_size=2, body_mass=masses)
    for i, m in enumerate(masses):
        torch.testing.assert_close(torch.as_tensor(rows[i]), model(many[i:i + 1], m)[0])
    torch.testing.assert_close(torch.as_tensor(bound.predict(many)), model(many, 90.0))
    # the checkpoint keeps the mass normalisation; a loaded model still needs a mass
    loaded = load_surrogate(write_checkpoint(tmp_path / "m.pth", model))
    assert loaded.body_mass == (70.0, 10.0)
    torch.testing.assert_close(loaded(x, 55.0), light)
    with pytest.raises(ValueError, match="restrict first, then bind"):
        bound.restrict_to(["vasmed_r"])  # would shrink the weights the unbound model shares
    assert model.muscles == tuple(VASTI) and model(x, 55.0).shape[-1] == len(VASTI)
    # gradients still reach the kinematics through a bound model (guidance)
    xg = x.clone().requires_grad_(True)
    loaded.for_subject(72.0)(xg)[..., 0].amax(1).sum().backward()
    assert float(xg.grad.abs().sum()) > 0


def test_a_model_without_body_mass_ignores_the_subject(tmp_path):
    model = fitted("mlp").eval()
    assert model.for_subject(80.0) is model
    x = squat_like(2, 40)
    torch.testing.assert_close(model(x, 80.0), model(x))
    assert model.model_config()["body_mass"] is None
    config = {k: v for k, v in model.model_config().items() if k != "body_mass"}  # written before body mass
    loaded = load_surrogate(write_checkpoint(tmp_path / "old.pth", model, model_config=config))
    assert not loaded.uses_body_mass
    torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(ValueError, match="body-mass normalisation"):
        fitted("mlp", body_mass=(70.0, 0.0))
