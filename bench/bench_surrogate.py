"""Cost of the surrogate inside guidance: forward + backward to the input.

Guidance back-propagates through the VQ-VAE decoder and then through the
surrogate at every iteration, so the surrogate's share of that cost is what
matters. Both are timed the way guidance uses them: frozen weights, eval
mode, gradient with respect to the input only (decoder: latents
(B, code_dim, 49); surrogate: coordinates (B, 196, 33)).

Baseline measured in the same run, interleaved with the surrogate timings so
that load from other processes hits both alike: the VQ-VAE decoder
(``models.vqvae.VQVAE.decode_latent``) at the demo size and at the paper size
(width 512, code dim 512, down_t 2, depth 3). Target: surrogate < 20% of the
decoder.

    .venv/bin/python bench/bench_surrogate.py [--batch 64] [--repeats 7] [--precision fp32 bf16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine  # noqa: E402
from models.surrogate import SurrogateModel  # noqa: E402
from models.vqvae import VQVAE  # noqa: E402
from utils.constants import CLIP_LENGTH, GUIDED_MUSCLES, MUSCLES  # noqa: E402
from utils.device import autocast, set_threads  # noqa: E402

DEFAULT = "mlp (default), guided muscles (as guidance loads it)"
PAPER = {"width": 512, "code_dim": 512, "down_t": 2, "depth": 3}
DEMO_FALLBACK = {"width": 64, "code_dim": 64, "down_t": 2, "depth": 3}  # train_vq defaults but width/code dim


def demo_size(config: Path) -> dict:
    """The VQ-VAE size of the demo pipeline (its vq stage in ``config``), else a small default."""
    size = dict(DEMO_FALLBACK)
    try:
        import yaml

        stages = yaml.safe_load(config.read_text()).get("stages", [])
    except (OSError, AttributeError, ImportError):
        return size
    for stage in stages:
        args = stage.get("args") or {}
        if "train_vq" in str(stage.get("script", "")) + str(stage.get("module", "")) or stage.get("name") == "vq":
            for key in size:
                for spelling in (key, key.replace("_", "-")):
                    if spelling in args:
                        size[key] = int(args[spelling])
    return size


def decoder_step(size: dict, batch: int, precision: str):
    """A closure running decoder forward + backward to the latents once."""
    torch.manual_seed(0)
    model = VQVAE(width=size["width"], code_dim=size["code_dim"], down_t=size["down_t"], depth=size["depth"])
    model.eval().requires_grad_(False)
    steps = CLIP_LENGTH // model.downsample
    z = torch.randn(batch, size["code_dim"], steps, requires_grad=True)
    device = torch.device("cpu")

    def run():
        z.grad = None
        with autocast(device, precision):
            x = model.decode_latent(z)
        x.float().square().mean().backward()

    return run


def surrogate_step(arch: str, muscles, batch: int, precision: str, **config):
    """A closure running surrogate forward + backward to the input coordinates once."""
    torch.manual_seed(0)
    model = SurrogateModel(arch, muscles, body_mass=(70.0, 10.0), **config).eval().requires_grad_(False)
    model = model.for_subject(72.0)  # the default surrogate takes the subject's body mass
    idx = model.muscle_indices(list(GUIDED_MUSCLES))
    x = (torch.randn(batch, CLIP_LENGTH, 33) * 20.0).requires_grad_(True)
    device = torch.device("cpu")

    def run():
        x.grad = None
        with autocast(device, precision):
            a = model(x)
        a[..., idx].float().amax(1).sum().backward()

    return run


def interleaved(fns: dict, repeats: int) -> dict:
    """Median (wall, process CPU) seconds of each closure, run round-robin ``repeats`` times after one
    warm-up each."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[k].append(time.perf_counter() - start)
            cpu[k].append(time.process_time() - start_cpu)
    return {k: (statistics.median(times[k]), statistics.median(cpu[k])) for k in fns}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="clips (latents) per guidance step")
    p.add_argument("--repeats", type=int, default=7, help="timed runs of each (median reported)")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" / "demo.yaml",
                   help="pipeline config whose vq stage gives the demo decoder size")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (0 = torch's choice; 1 keeps timings meaningful on a shared CPU)")
    args = p.parse_args()
    set_threads(args.threads)
    import os

    print(machine())
    print(f"load average before: {os.getloadavg()[0]:.2f}; batch {args.batch} x {CLIP_LENGTH} frames; "
          f"median of {args.repeats} interleaved runs")
    sizes = {"demo": demo_size(args.config), "paper": PAPER}
    rows = []
    for precision in args.precision:
        fns = {f"decoder {name}": decoder_step(size, args.batch, precision) for name, size in sizes.items()}
        fns[DEFAULT] = surrogate_step("mlp", GUIDED_MUSCLES, args.batch, precision)
        fns["mlp (default), all 80 muscles"] = surrogate_step("mlp", MUSCLES, args.batch, precision)
        fns["mlp hidden 128, stride 2, guided muscles"] = surrogate_step("mlp", GUIDED_MUSCLES, args.batch,
                                                                         precision, hidden=128, stride=2)
        fns["transformer (published), guided muscles"] = surrogate_step("transformer", GUIDED_MUSCLES, args.batch,
                                                                        precision)
        t = interleaved(fns, args.repeats)
        for name, size in sizes.items():
            desc = f"w{size['width']} cd{size['code_dim']} dt{size['down_t']} d{size['depth']}"
            dec = t[f"decoder {name}"]
            rows.append((precision, f"VQ-VAE decoder, {name} ({desc})", dec, (1.0, 1.0)))
            for s in [k for k in fns if not k.startswith("decoder")]:
                rows.append((precision, f"surrogate {s}", t[s], (t[s][0] / dec[0], t[s][1] / dec[1])))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\n| precision | forward + backward to the input | wall ms | CPU ms | share of the decoder (wall / CPU) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for precision, name, (wall, cpu), (share_wall, share_cpu) in rows:
        print(f"| {precision} | {name} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} | "
              f"{share_wall * 100:.1f}% / {share_cpu * 100:.1f}% |")


if __name__ == "__main__":
    main()
