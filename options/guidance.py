"""Command-line options of ``LIMO_Surrogate.py`` (guidance).

Every loss weight and schedule phase is a flag; the defaults are the values in
:data:`models.guidance.DEFAULT_WEIGHTS` and the published schedule scaled to
``--total-iter`` (see ``docs/guidance.md``).
"""
from __future__ import annotations

import argparse

from models.guidance import DEFAULT_WEIGHTS, FLOOR_ALIGN, INIT_UNITS, QUANTIZER_GRADS, TERM_HELP
from models.guidance_losses import PROXIMITY_UNITS
from models.surrogate_refine import RefineConfig
from options.common import add_data_args, add_output_args, add_runtime_args, int_at_least
from utils.constants import GUIDED_MUSCLES, PEAK_WINDOW_S


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="BIGE guidance: optimise VQ-VAE latents (runs x code_dim x seq_len) so that the decoded "
                    "squats stay realistic (near training latents, smooth, symmetric, feet on the floor) and "
                    "the surrogate's peak activation of the chosen muscles lies in [--low, --high]. Writes "
                    "the best --min-samples motions per subject as OpenSim .mot (+ .npy), summary.json, a "
                    "PNG, run.log and tensorboard curves under <out-dir>/<exp-name>/<session>/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_data_args(p, root_default=None,
                  root_help="MCS-layout dataset root whose training split forms the latent bank; default: the root "
                            "holding the --subject folder (<root>/Data/<session>), else data/mcs_synthetic")
    add_runtime_args(p)
    add_output_args(p, default_exp="BIGE")
    p.set_defaults(out_dir="output/guidance")

    g = p.add_argument_group("models")
    g.add_argument("--vq-name", required=True, metavar="PTH", help="VQ-VAE checkpoint written by train_vq.py")
    g.add_argument("--surrogate", required=True, metavar="PTH",
                   help="surrogate checkpoint written by surrogate_training.py")
    g.add_argument("--muscles", nargs="+", default=list(GUIDED_MUSCLES),
                   help="muscles whose peak activation is constrained to [--low, --high]")

    g = p.add_argument_group("subjects")
    g.add_argument("--subject", nargs="+", default=["all"],
                   help="session folder(s) (<root>/Data/<session>) or session id(s) under --data-root; "
                        "'all' = every session of the test split")

    g = p.add_argument_group("optimisation")
    g.add_argument("--seq-len", type=int, default=49,
                   help="latent steps per sample; motions have seq-len x (VQ down-sampling) frames")
    g.add_argument("--total-iter", type=int, default=3000, help="Adam iterations per batch of latents")
    g.add_argument("--lr", type=float, default=0.5, help="Adam learning rate on the latents")
    g.add_argument("--num-runs", type=int_at_least(1), default=3000, help="latents optimised per subject")
    g.add_argument("--batch-size", type=int_at_least(1), default=256,
                   help="latents optimised at once; --num-runs are processed in batches of this size")
    g.add_argument("--min-samples", type=int, default=20,
                   help="best samples kept per subject (constraint satisfaction first, then realism)")
    g.add_argument("--low", type=float, default=0.35, help="lower edge of the peak-activation band, in [0, 1]")
    g.add_argument("--high", type=float, default=0.45, help="upper edge of the peak-activation band, in [0, 1]")
    g.add_argument("--quantizer-grad", default="relaxed", choices=QUANTIZER_GRADS,
                   help="gradient through the quantiser: 'relaxed' (forward still uses the nearest codes; "
                        "backward follows a soft assignment to the codes, which reaches other codes where the "
                        "straight line of the straight-through gradient cannot) or 'straight-through' (the "
                        "published estimator); see docs/guidance.md for the measured difference")
    g.add_argument("--relax-temperature", type=float, default=0.05,
                   help="with --quantizer-grad relaxed: softmax temperature relative to the mean squared distance "
                        "of a latent to the codes")
    g.add_argument("--peak-window", type=float, default=PEAK_WINDOW_S, metavar="SECONDS",
                   help="the band holds the peak of each guided muscle's activation averaged over this window "
                        "(seconds of real time, converted with the subject's own frame interval): a sustained "
                        "activation, not a spike (physiological time constants and EMG smoothing windows, "
                        "docs/guidance.md); 0 = the raw per-frame peak (the published constraint)")
    g.add_argument("--surrogate-lowpass", type=float, default=0.0, metavar="HZ",
                   help="the surrogate sees the decoded motion low-pass filtered at this cut-off (zero-lag, 4th-order "
                        "Butterworth magnitude, differentiable), as the simulation filters kinematics before "
                        "inverse dynamics (dataset.synthetic.muscle_dynamics.FILTER_CUTOFF_HZ); 0 = unfiltered. The written motion is not filtered")
    g.add_argument("--band-margin", type=float, default=0.25,
                   help="the band term aims at the band narrowed by this fraction of its width on each side "
                        "(0.25 with [0.35, 0.45]: [0.375, 0.425]), so that samples land inside the band instead "
                        "of stopping at its edge; samples are still judged on [--low, --high]")
    g.add_argument("--init-noise", type=float, nargs=2, default=[10.0, 200.0], metavar=("LOW", "HIGH"),
                   help="each run starts at the mean of the subject's encoder latents plus Gaussian noise whose "
                        "scale is drawn from U(LOW, HIGH), in --latent-unit units")
    g.add_argument("--latent-unit", default="percent-std", choices=INIT_UNITS,
                   help="unit of --lr and --init-noise: 'absolute' latent units (the published setting, made for "
                        "an unnormalised VQ-VAE whose latents span hundreds of units) or 'percent-std' = 1%% of "
                        "the latent bank's standard deviation, so that the published numbers (lr 0.5, noise "
                        "U(10, 200)) keep their relative size for this project's normalised VQ-VAE")
    g.add_argument("--proximity-unit", default="frame", choices=PROXIMITY_UNITS,
                   help="nearest training latent per latent step ('frame') or per whole sequence ('sequence')")
    g.add_argument("--floor-height", type=float, default=None,
                   help="floor height in metres (model y); default: estimated per subject as the median over "
                        "frames of the lowest foot point of its own repetitions")
    g.add_argument("--floor-align", default="frame", choices=FLOOR_ALIGN,
                   help="retarget the decoded pelvis height to the subject's model: 'frame' shifts pelvis_ty at "
                        "every frame so the lowest foot point touches the floor, 'clip' shifts the whole clip by "
                        "one height, 'none' keeps the decoder's pelvis_ty (then only the foot terms act)")
    g.add_argument("--contact-stride", type=int, default=1,
                   help="evaluate the foot-contact terms (forward kinematics) on every N-th frame only; "
                        "1 = every frame. 2 halves the kinematics cost with little effect on smooth motion; "
                        "ignored with --floor-align frame, which needs every frame")
    g.add_argument("--contact-tol", type=float, default=0.02,
                   help="foot points within this many metres of the floor count as in contact (sliding term)")

    g = p.add_argument_group("schedule (default: the published 500 / 500 / 1000 of 3000, scaled to --total-iter)")
    g.add_argument("--proximity-only-iter", type=int, default=None,
                   help="first iterations with the proximity term alone (default total-iter/6)")
    g.add_argument("--ramp-iter", type=int, default=None,
                   help="following iterations over which the other terms ramp in linearly (default total-iter/6)")
    g.add_argument("--final-proximity-iter", type=int, default=None,
                   help="last iterations with the proximity term alone (default total-iter/3)")

    g = p.add_argument_group("loss weights")
    for name, weight in DEFAULT_WEIGHTS.items():
        g.add_argument(f"--w-{name.replace('_', '-')}", type=float, default=weight, dest=f"w_{name}",
                       help=TERM_HELP[name])

    g = p.add_argument_group("verification by simulation")
    g.add_argument("--verify", action="store_true",
                   help="simulate the best runs with OpenSim inverse dynamics and static optimisation on the "
                        "subject's scaled model (metrics/simulation.py), --min-samples at a time in ranking order, "
                        "write the simulated peaks into summary.json and keep only samples whose windowed peak is "
                        "in [--low, --high] by simulation; optimises more latents when too few pass "
                        "(--verify-rounds)")
    g.add_argument("--verify-rounds", type=int, default=2,
                   help="with --verify: at most this many extra rounds of --num-runs latents when fewer than "
                        "--min-samples runs are in band by simulation")
    g.add_argument("--verify-refine", action=argparse.BooleanOptionalAction, default=True,
                   help="with --verify (ignored without): after every --min-samples simulations that leave too few "
                        "in band, fine-tune a per-subject copy of the surrogate (from the original weights) on every "
                        "run of this subject simulated so far (inputs: the guided motions as the surrogate sees "
                        "them; targets: their simulated activations of --muscles), re-rank the runs not yet "
                        "simulated with it, and optimise the next round's latents against it. On by default: in a "
                        "demo run with the published VQ-VAE loss it doubled the share of simulated runs in band by "
                        "simulation (13 %% -> 25 %%) with fewer rounds (models/surrogate_refine.py, "
                        "docs/guidance.md); --no-verify-refine: every "
                        "round ranked and guided by the original surrogate")
    g.add_argument("--verify-prune", action=argparse.BooleanOptionalAction, default=True,
                   help="with --verify-refine (ignored without) and another round allowed (--verify-rounds): do not "
                        "simulate runs that the refined surrogate predicts out of band; when none of the round's "
                        "runs is left, optimise the next round against the refined surrogate at once. The last "
                        "allowed round simulates every run as before. --no-verify-prune: simulate every run of a "
                        "round, in ranking order, before starting the next")
    g.add_argument("--refine-steps", type=int, default=RefineConfig.steps,
                   help="with --verify-refine: full-batch Adam steps of each fine-tune")
    g.add_argument("--refine-lr", type=float, default=RefineConfig.lr,
                   help="with --verify-refine: Adam learning rate of the fine-tune")
    g.add_argument("--refine-anchor", type=float, default=RefineConfig.anchor,
                   help="with --verify-refine: weight of the L2-SP penalty, the summed squared change of every "
                        "surrogate weight from the original, that keeps the copy close to the original")
    g.add_argument("--workers", type=int, default=1, help="processes for the simulations of --verify")
    g.add_argument("--sim-cache", default=None, metavar="DIR",
                   help="with --verify: keep every verified run's simulated activations in this folder, keyed by "
                        "the model file's bytes, the motion and the simulation code (metrics/sim_cache.py), and "
                        "simulate only the runs it does not hold; the results are the same bit for bit. The runs are "
                        "simulated as their .mot / .npy files hold them, so calculate_guidance.py --simulate "
                        "--sim-cache DIR on the results folder finds every kept sample there. Unset: no cache")

    g = p.add_argument_group("subjects in parallel")
    g.add_argument("--subject-workers", type=int_at_least(1), default=1, metavar="N",
                   help="guide N subjects at once, each in its own process (forked from a forkserver) with --num-threads torch "
                        "threads and, with --verify, its own pool of --workers simulation processes (so up to "
                        "N x (1 + --workers) processes); at most one per subject. Results are identical to N = 1: "
                        "every subject has its own random generator. Each subject folder is written when its "
                        "subject is done; the experiment's run.log gets each subject's lines in subject order")

    g = p.add_argument_group("output")
    g.add_argument("--overwrite", action="store_true", help="replace existing results of a subject")
    g.add_argument("--log-every", type=int, default=10,
                   help="record every loss term (mean over runs) every this many iterations for tensorboard")
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    g.add_argument("--no-plot", action="store_true", help="skip the PNG of the kept samples")
    return p
