"""utils/cli.py, the door of every root script: driven with bad inputs (bad
files, bad roots, bad flags, missing or wrong checkpoints, no GPU for
``--device cuda``, unreadable paths, outputs that cannot be written), every
script stops with ONE line ``<script>: error: <message>`` that names the file
or the flag, exit status 2, and no traceback. Nothing from a data file runs.

The bulk runs each script's real ``__main__`` in this process (``runpy``, the
same code path as the command line, minus the interpreter start-up);
``test_real_processes`` checks the same through real subprocesses, including
a full disk (a file-size limit) and a signal (exit 130)."""
from __future__ import annotations

import json
import os
import resource
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.checkpoint import save_checkpoint
from utils.constants import COORD_INDEX, COORDINATES, MUSCLES
from utils.motion_io import write_coordinates

REPO = Path(__file__).resolve().parents[1]
SESSIONS = [f"{i:08x}-2222-4333-8444-{i:012x}" for i in range(1, 7)]
TRAIN, TEST = SESSIONS[:4], SESSIONS[4:]
SCRIPTS = ("train_vq.py", "MOT_eval.py", "surrogate_training.py", "LIMO_Surrogate.py", "generate_vq.py",
           "train_t2m_trans.py", "generate_t2m.py", "train_mdm.py", "generate_mdm.py", "calculate_wasserstein.py",
           "wasserstein_mocap.py", "calculate_guidance.py", "plot_3.py", "render_compare.py", "plot_samples.py",
           "run_pipeline.py", "dataset.synthetic", "dataset.segment")
"""Every entry point: the 16 root scripts, ``python -m dataset.synthetic`` and ``python -m dataset.segment``."""

WITH_DEVICE = ("train_vq.py", "MOT_eval.py", "surrogate_training.py", "LIMO_Surrogate.py", "generate_vq.py",
               "train_t2m_trans.py", "generate_t2m.py", "train_mdm.py", "generate_mdm.py")
"""Scripts that pick a device before touching any checkpoint or data."""

PAYLOAD_MARK = "PAYLOAD_RAN"


# ----------------------------------------------------------------------------- data


def _squat(frames: int, depth: float, rng: np.random.Generator) -> np.ndarray:
    """One squat repetition (frames, 33), degrees / metres."""
    s = (1 - np.cos(np.linspace(0, 2 * np.pi, frames))) / 2
    x = rng.normal(0.0, 0.5, size=(frames, len(COORDINATES)))
    for side in "lr":
        x[:, COORD_INDEX[f"knee_angle_{side}"]] += depth * s
        x[:, COORD_INDEX[f"hip_flexion_{side}"]] += 0.9 * depth * s
    x[:, [COORD_INDEX["pelvis_tx"], COORD_INDEX["pelvis_tz"]]] *= 0.002
    x[:, COORD_INDEX["pelvis_ty"]] = 0.95 - 0.0035 * depth * s
    return x


def _write_session(root: Path, sid: str, reps: list[np.ndarray], muscles=MUSCLES, act_scale: float = 1.0) -> None:
    bounds = np.cumsum([0] + [len(r) for r in reps])
    write_coordinates(root / "Data" / sid / "OpenSimData" / "Kinematics" / "SQT01.mot", np.concatenate(reps))
    seg = root / "squat-segmentation-data"
    seg.mkdir(parents=True, exist_ok=True)
    np.save(seg / f"{sid}.npy", {"SQT01": [(int(bounds[k]), int(bounds[k + 1])) for k in range(len(reps))]},
            allow_pickle=True)
    for k, rep in enumerate(reps, start=1):
        act = np.clip(rep[:, COORD_INDEX["knee_angle_r"]] / 200.0, 0.0, 1.0) * act_scale
        d = root / "Data" / sid / "OpenSimData" / "Dynamics" / f"SQT01_segment_{k}"
        write_coordinates(d / f"kinematics_activations_SQT01_segment_{k}_muscle_driven.mot", rep,
                          extra={f"/forceset/{m}/activation": act for m in muscles})


def _variant(base: Path, dest: Path, edit) -> Path:
    shutil.copytree(base, dest)
    edit(dest)
    return dest


class _Evil:
    """A pickle that would create a file if it were ever unpickled."""

    def __init__(self, mark: Path):
        self.mark = str(mark)

    def __reduce__(self):
        return (os.system, (f"touch {self.mark}",))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small valid MCS root, a dozen broken copies of it, broken checkpoints
    and files of the wrong kind."""
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    reps = {sid: [_squat(int(rng.integers(120, 200)), 70 + 5 * i + 3 * k, rng) for k in range(2)]
            for i, sid in enumerate(SESSIONS)}
    root = tmp / "root"
    for sid in SESSIONS:
        _write_session(root, sid, reps[sid])
    (root / "split.json").write_text(json.dumps({"train": TRAIN, "test": TEST}))
    w: dict[str, Path] = {"tmp": tmp, "root": root, "mark": tmp / PAYLOAD_MARK}
    first = SESSIONS[0]
    kin = Path("Data") / first / "OpenSimData" / "Kinematics" / "SQT01.mot"
    seg = Path("squat-segmentation-data") / f"{first}.npy"

    def rewrite_kinematics(fn):
        return lambda r: write_coordinates(r / kin, fn(np.concatenate(reps[first])))

    def radians(x):
        x = x.copy()
        rot = [i for i, n in enumerate(COORDINATES) if not n.startswith("pelvis_t")]
        x[:, rot] = np.deg2rad(x[:, rot])
        return x

    def millimetres(x):
        x = x.copy()
        x[:, [COORD_INDEX[n] for n in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]] *= 1000.0
        return x

    def huge_knee(x):
        x = x.copy()
        x[50, COORD_INDEX["knee_angle_r"]] = 1e6
        return x

    def write_split(obj):
        return lambda r: (r / "split.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))

    def save_seg(obj):
        return lambda r: np.save(r / seg, obj, allow_pickle=True)

    def drop_muscle(r):
        d = r / "Data" / first / "OpenSimData" / "Dynamics" / "SQT01_segment_1"
        f = d / "kinematics_activations_SQT01_segment_1_muscle_driven.mot"
        f.unlink()
        act = np.full(len(reps[first][0]), 0.3)
        write_coordinates(f, reps[first][0], extra={f"/forceset/{m}/activation": act for m in MUSCLES
                                                    if m != "vasmed_l"})

    def overflow_activation(r):
        _write_session(r, first, reps[first], act_scale=3.0)

    variants = {
        "radians": rewrite_kinematics(radians),
        "millimetres": rewrite_kinematics(millimetres),
        "huge_knee": rewrite_kinematics(huge_knee),
        "split_json": write_split('{"train": ["a",\n  "b"'),
        "split_unknown": write_split({"train": TRAIN, "test": TEST + ["no-such-session"]}),
        "split_nomatch": write_split({"test": ["x-1", "x-2"]}),
        "split_type": write_split({"train": TRAIN, "test": "abc"}),
        "split_overlap": write_split({"train": TRAIN, "test": TRAIN[:1]}),
        "seg_evil": save_seg({"SQT01": [(0, 10)], "x": _Evil(w["mark"])}),
        "seg_garbage": lambda r: (r / seg).write_bytes(b"\x00\x01garbage"),
        "seg_range": save_seg({"SQT01": [(50, 10)]}),
        "seg_beyond": save_seg({"SQT01": [(0, 100000)]}),
        "seg_scalar": save_seg({"SQT01": 7}),
        "kin_garbage": lambda r: (r / kin).write_text("this is not a motion file\n"),
        "kin_empty": lambda r: (r / kin).write_text(""),
        "kin_folder": lambda r: ((r / kin).unlink(), (r / kin).mkdir()),
        "kin_missing": lambda r: (r / kin).unlink(),  # its Dynamics files remain: not a stand-in for the IK
        "dyn_missing_muscle": drop_muscle,
        "dyn_activation": overflow_activation,
        "no_data": lambda r: shutil.rmtree(r / "Data"),
    }
    for name, edit in variants.items():
        w[name] = _variant(root, tmp / name, edit)

    # checkpoints and files of the wrong kind
    w["garbage_pth"] = tmp / "garbage.pth"
    w["garbage_pth"].write_bytes(b"not a checkpoint at all")
    w["evil_pth"] = tmp / "evil.pth"
    torch.save({"model": {}, "kind": "vqvae", "x": _Evil(w["mark"])}, w["evil_pth"])
    w["wrong_pth"] = save_checkpoint(tmp / "wrong.pth", kind="something-else", model={"w": torch.zeros(2)})
    w["empty_pth"] = tmp / "empty.pth"
    w["empty_pth"].write_bytes(b"")
    w["folder"] = tmp / "a_folder"
    w["folder"].mkdir()
    w["file"] = tmp / "a_file.txt"
    w["file"].write_text("x\n")
    w["empty_dir"] = tmp / "empty_dir"
    w["empty_dir"].mkdir()
    w["garbage_mot"] = tmp / "garbage.mot"
    w["garbage_mot"].write_text("version=1\nnRows=3\nnColumns=2\nendheader\ntime\tx\n0\t1\n1\n")
    w["good_mot"] = root / kin
    w["gen"] = tmp / "gen"  # a folder of generated motions with one broken file
    write_coordinates(w["gen"] / TEST[0] / "entry_0_X.mot", _squat(196, 90.0, rng))
    (w["gen"] / TEST[0] / "entry_1_X.mot").write_text("garbage\n")
    # a real (tiny) VQ-VAE checkpoint, to pass where another kind is expected
    from options.vq import get_args_parser as vq_parser
    from train_vq import main as train_vq

    train_vq(vq_parser().parse_args([
        "--data-root", str(root), "--out-dir", str(tmp), "--exp-name", "vq", "--width", "16", "--code-dim", "16",
        "--nb-code", "16", "--depth", "1", "--batch-size", "4", "--total-iter", "2", "--eval-iter", "2",
        "--no-progress", "--device", "cpu", "--num-threads", "1"]))
    w["vq_pth"] = tmp / "vq" / "net_last.pth"
    w["bad_yaml"] = tmp / "bad.yaml"
    w["bad_yaml"].write_text("stages: [\n  {name: x\n")
    w["evil_stage"] = tmp / "evil_stage.yaml"
    w["evil_stage"].write_text(f"out_dir: {tmp / 'pipe'}\nstages:\n  - name: ../../escape\n    script: x.py\n")
    w["not_mapping"] = tmp / "list.yaml"
    w["not_mapping"].write_text("- 1\n- 2\n")
    return w


# ----------------------------------------------------------------------------- the cases

# (script, argv, words the one-line message must contain). Placeholders {name}
# are paths from the ``world`` fixture; every case must fail before any training.
COMMON_CASES = [(s, ["--no-such-flag"], ["arguments"]) for s in SCRIPTS] + [
    (s, ["--device", "cuda"] + (["--resume-pth", "{garbage_pth}"] if s == "MOT_eval.py" else [])
     + (["--vq-name", "{garbage_pth}", "--surrogate", "{garbage_pth}"] if s == "LIMO_Surrogate.py" else []),
     ["--device cuda", "no CUDA device"]) for s in WITH_DEVICE if not torch.cuda.is_available()] + [
    ("train_vq.py", ["--device", "gpu"], ["--device", "cuda:<index>", "'gpu'"]),
    ("calculate_guidance.py", ["--device", "cuda:"], ["--device", "cuda:<index>", "'cuda:'"]),
] + [("train_vq.py", ["--device", "cuda:1"], ["--device cuda:1", "no CUDA device"])] * (not torch.cuda.is_available())

DATA_CASES = [
    ("{root_missing}", ["does not exist"]),
    ("{file}", ["a_file.txt", "no 'Data' folder"]),
    ("{no_data}", ["no_data", "no 'Data' folder"]),
    ("{radians}", ["SQT01.mot", "knee_angle_r", "radians labelled as degrees"]),
    ("{millimetres}", ["SQT01.mot", "pelvis_t", "expected metres"]),
    ("{huge_knee}", ["SQT01.mot", "knee_angle_r", "1e+06"]),
    ("{split_json}", ["split.json:2:", "not valid JSON"]),
    ("{split_unknown}", ["split.json", "no-such-session"]),
    ("{split_nomatch}", ["split.json", "x-1"]),
    ("{split_type}", ["split.json", "'test' must be a list"]),
    ("{split_overlap}", ["split.json", "both 'train' and 'test'"]),
    ("{seg_evil}", [".npy", "refused"]),
    ("{seg_garbage}", [".npy", "not a NumPy .npy file"]),
    ("{seg_range}", [".npy", "(50, 10) is not a frame range"]),
    ("{seg_beyond}", ["SQT01.mot", "segmentation asks for frames"]),
    ("{seg_scalar}", [".npy", "expected a list of (start, end)"]),
    ("{kin_garbage}", ["SQT01.mot"]),
    ("{kin_empty}", ["SQT01.mot"]),
    ("{kin_folder}", ["SQT01.mot"]),
    ("{kin_missing}", [f"{SESSIONS[0]}.npy: trial SQT01 of session {SESSIONS[0]} has no "
                       "OpenSimData/Kinematics/SQT01.mot or SQT01.sto (Kinematics is empty)"]),
]
TRAIN_FLAGS = {"train_vq.py": ["--total-iter", "2", "--no-progress"],
               "train_mdm.py": ["--total-iter", "2", "--no-progress"],
               "surrogate_training.py": ["--epochs", "1"]}
TRAINER_DATA_CASES = [(s, ["--data-root", root, "--out-dir", "{tmp}/out_" + s, *flags], words)
                      for s, flags in TRAIN_FLAGS.items() for root, words in DATA_CASES
                      if not (s == "surrogate_training.py" and root in ("{radians}", "{millimetres}", "{huge_knee}",
                                                                       "{seg_beyond}", "{kin_garbage}", "{kin_empty}",
                                                                       "{kin_folder}", "{kin_missing}"))]
# the surrogate reads kinematics from the Dynamics files: its own broken cases
SURROGATE_CASES = [
    ("surrogate_training.py", ["--data-root", "{dyn_missing_muscle}", "--out-dir", "{tmp}/o", "--epochs", "1"],
     ["SQT01_segment_1", "muscle_driven.mot", "vasmed_l"]),
    ("surrogate_training.py", ["--data-root", "{dyn_activation}", "--out-dir", "{tmp}/o", "--epochs", "1"],
     ["muscle_driven.mot", "activations outside [0, 1]"]),
    ("surrogate_training.py", ["--data-root", "{root}", "--out-dir", "{tmp}/o", "--muscles", "vasmed_x"],
     ["--muscles", "vasmed_x"]),
    ("surrogate_training.py", ["--data-root", "{root}", "--out-dir", "{file}", "--epochs", "1"], ["a_file.txt"]),
    ("surrogate_training.py", ["--eval-only", "--checkpoint", "{evil_pth}", "--out-dir", "{tmp}/o"],
     ["evil.pth", "refused", "posix.system"]),
    ("surrogate_training.py", ["--data-root", "{root}", "--resume", "{garbage_pth}", "--out-dir", "{tmp}/o"],
     ["garbage.pth", "cannot read checkpoint"]),
    ("surrogate_training.py", ["--data-root", "{root}", "--epochs", "0", "--out-dir", "{tmp}/o"], ["--epochs"]),
    ("surrogate_training.py", ["--eval-only", "--eval-data", "{root}", "--eval-body-mass", "-72", "--out-dir",
                               "{tmp}/o"], ["--eval-body-mass", "expected a finite number > 0, got -72"]),
    ("surrogate_training.py", ["--eval-only", "--eval-data", "{root}", "--eval-body-mass", "heavy", "--out-dir",
                               "{tmp}/o"], ["--eval-body-mass", "expected a number > 0, got 'heavy'"]),
]
CHECKPOINT_CASES = [
    ("{tmp}/none.pth", ["none.pth", "does not exist"]),
    ("{folder}", ["a_folder", "found a folder"]),
    ("{garbage_pth}", ["garbage.pth", "cannot read checkpoint"]),
    ("{empty_pth}", ["empty.pth", "empty or cut short"]),
    ("{evil_pth}", ["evil.pth", "refused", "posix.system"]),
]
CHECKPOINT_FLAGS = {
    "MOT_eval.py": lambda c: ["--resume-pth", c, "--out-dir", "{tmp}/o"],
    "generate_vq.py": lambda c: ["--vq-name", c, "--data-root", "{root}", "--out-dir", "{tmp}/o"],
    "LIMO_Surrogate.py": lambda c: ["--vq-name", c, "--surrogate", c, "--data-root", "{root}", "--out-dir", "{tmp}/o"],
    "train_t2m_trans.py": lambda c: ["--vq-name", c, "--data-root", "{root}", "--out-dir", "{tmp}/o"],
    "generate_t2m.py": lambda c: ["--resume-trans", c, "--vq-name", c, "--data-root", "{root}", "--out-dir", "{tmp}/o"],
    "generate_mdm.py": lambda c: ["--model-path", c, "--data-root", "{root}", "--out-dir", "{tmp}/o"],
    "train_vq.py": lambda c: ["--resume", c, "--data-root", "{root}", "--out-dir", "{tmp}/o", "--total-iter", "2"],
    "calculate_guidance.py": lambda c: ["--folder_path", "{root}", "--surrogate", c, "--no-fk", "--out", "{tmp}/g"],
    "plot_samples.py": lambda c: ["{gen}", "--surrogate", c, "--out", "{tmp}/s.png"],
}
CKPT_CASES = [(s, flags(c), words if s not in ("calculate_guidance.py", "plot_samples.py") else words[:1])
              for s, flags in CHECKPOINT_FLAGS.items() for c, words in CHECKPOINT_CASES]
WRONG_KIND_CASES = [(s, CHECKPOINT_FLAGS[s]("{wrong_pth}"), ["wrong.pth"])
                    for s in ("MOT_eval.py", "generate_vq.py", "train_t2m_trans.py", "generate_mdm.py", "train_vq.py")]

OTHER_KIND_CASES = [
    ("LIMO_Surrogate.py", ["--vq-name", "{vq_pth}", "--surrogate", "{vq_pth}", "--data-root", "{root}",
                           "--out-dir", "{tmp}/o"], ["vq/net_last.pth", "not a surrogate checkpoint"]),
    ("calculate_guidance.py", ["--folder_path", "{gen}", "--surrogate", "{vq_pth}", "--no-fk", "--out", "{tmp}/g"],
     ["vq/net_last.pth", "not a surrogate checkpoint"]),
    ("surrogate_training.py", ["--resume", "{vq_pth}", "--data-root", "{root}", "--out-dir", "{tmp}/o"],
     ["vq/net_last.pth", "not a surrogate checkpoint"]),
    ("generate_mdm.py", ["--model-path", "{vq_pth}", "--data-root", "{root}", "--out-dir", "{tmp}/o"],
     ["vq/net_last.pth", "not a train_mdm.py checkpoint"]),
    ("generate_t2m.py", ["--resume-trans", "{vq_pth}", "--vq-name", "{vq_pth}", "--data-root", "{root}",
                         "--out-dir", "{tmp}/o"], ["vq/net_last.pth", "not a train_t2m_trans.py checkpoint"]),
    ("train_mdm.py", ["--resume", "{vq_pth}", "--data-root", "{root}", "--out-dir", "{tmp}/o", "--total-iter", "2"],
     ["vq/net_last.pth", "not a training checkpoint"]),
    ("train_vq.py", ["--resume", "{vq_pth}", "--data-root", "{root}", "--out-dir", "{tmp}/o", "--total-iter", "2"],
     ["vq/net_last.pth", "does not match the options", "nb_code"]),
    ("MOT_eval.py", ["--resume-pth", "{vq_pth}", "--data-root", "{root}", "--out-dir", "{tmp}/o",
                     "--clip-length", "30"], ["--clip-length 30"]),
]

OTHER_CASES = [
    # metric scripts
    ("calculate_wasserstein.py", ["--folder_path", "{tmp}/nowhere", "--data-root", "{root}"], ["nowhere"]),
    ("calculate_wasserstein.py", ["--folder_path", "{empty_dir}", "--data-root", "{root}"], ["empty_dir"]),
    ("calculate_wasserstein.py", ["--folder_path", "{gen}", "--data-root", "{split_unknown}", "--out", "{tmp}/w"],
     ["split.json", "no-such-session"]),
    ("calculate_wasserstein.py", ["--folder_path", "{gen}", "--data-root", "{seg_evil}", "--out", "{tmp}/w"],
     ["refused"]),
    ("wasserstein_mocap.py", ["--folder_path", "{gen}"], ["gen", "not an MCS dataset root"]),
    ("wasserstein_mocap.py", ["--folder_path", "{radians}", "--out", "{tmp}/wm"], ["radians labelled as degrees"]),
    ("wasserstein_mocap.py", ["--folder_path", "{split_json}", "--out", "{tmp}/wm"], ["split.json:2:"]),
    ("calculate_guidance.py", ["--folder_path", "{gen}", "--no-fk", "--low", "0.5", "--high", "0.1"],
     ["--low 0.5 is above --high 0.1"]),
    ("calculate_guidance.py", ["--folder_path", "{gen}", "--osim", "{tmp}/none.osim", "--activations", "none"],
     ["--osim", "none.osim"]),
    ("calculate_guidance.py", ["--folder_path", "{gen}", "--no-fk", "--activations", "simulation"],
     ["--activations simulation"]),
    ("calculate_guidance.py", ["--folder_path", "{millimetres}", "--no-fk", "--activations", "none", "--split",
                               "all", "--out", "{tmp}/g2"], ["pelvis_t", "expected metres"]),
    # renderers
    ("plot_3.py", ["{tmp}/none.mot"], ["none.mot"]),
    ("plot_3.py", ["{folder}"], ["a_folder"]),
    ("plot_3.py", ["{garbage_mot}", "{tmp}/v.gif"], ["garbage.mot"]),
    ("plot_3.py", ["{good_mot}", "{tmp}/v.gif", "--fps", "0"], ["fps"]),
    ("plot_3.py", ["{good_mot}", "{tmp}/v.gif", "--stride", "0"], ["stride"]),
    ("plot_3.py", ["{good_mot}", "{tmp}/v.avi"], ["v.avi"]),
    ("plot_3.py", ["{good_mot}", "{file}/v.gif"], ["a_file.txt"]),
    ("plot_3.py", ["{good_mot}", "{tmp}/t.gif", "--titles", "a", "b"], ["--titles"]),
    ("plot_3.py", ["{good_mot}", "{tmp}/m.gif", "--model", "{file}"], ["a_file.txt", "OpenSim could not load the model"]),
    ("render_compare.py", ["{tmp}/nosub", "{good_mot}", "{tmp}/c.gif"], ["nosub"]),
    ("render_compare.py", ["{folder}", "{good_mot}", "{tmp}/c.gif"], ["a_folder"]),
    ("render_compare.py", ["{root}/Data/" + SESSIONS[0], "{gen}", "{tmp}/c.gif"], ["gen"]),
    ("plot_samples.py", ["{empty_dir}", "--out", "{tmp}/s.png"], ["empty_dir"]),
    ("plot_samples.py", ["{tmp}/nowhere", "--out", "{tmp}/s.png"], ["nowhere"]),
    # the pipeline runner
    ("run_pipeline.py", ["--config", "{tmp}/none.yaml"], ["none.yaml"]),
    ("run_pipeline.py", ["--config", "{bad_yaml}"], ["bad.yaml:3:1: not valid YAML"]),
    ("run_pipeline.py", ["--config", "{evil_pth}"], ["evil.pth", "not a text file"]),
    ("run_pipeline.py", ["--config", "{not_mapping}"], ["list.yaml", "'stages'"]),
    ("run_pipeline.py", ["--config", "{evil_stage}"], ["evil_stage.yaml", "stage name '../../escape'"]),
    ("run_pipeline.py", ["--config", str(REPO / "configs" / "demo.yaml"), "--stage", "nope", "--list"],
     ["unknown stage", "nope"]),
    # the synthetic data generator
    ("dataset.synthetic", ["--out", "{tmp}/syn", "--subjects", "0"], ["n_subjects"]),
    ("dataset.synthetic", ["--out", "{file}/syn", "--subjects", "1", "--no-progress"], ["a_file.txt"]),
    # the repetition segmenter
    ("dataset.segment", ["{tmp}/nowhere"], ["nowhere", "does not exist"]),
    ("dataset.segment", ["{file}"], ["a_file.txt", "no 'Data' folder"]),
    ("dataset.segment", ["{root}", "--min-depth", "-5", "--dry-run"], ["min depth > 0", "min_depth_deg=-5.0"]),
    # training and guidance options
    ("train_vq.py", ["--data-root", "{root}", "--clip-length", "97", "--out-dir", "{tmp}/o"], ["--clip-length 97"]),
    ("train_vq.py", ["--data-root", "{root}", "--lr", "0", "--out-dir", "{tmp}/o"], ["--lr"]),
    ("train_vq.py", ["--data-root", "{root}", "--out-dir", "{file}", "--total-iter", "2", "--no-progress"],
     ["a_file.txt"]),
    ("train_mdm.py", ["--data-root", "{root}", "--heads", "5", "--out-dir", "{tmp}/o"], ["--heads"]),
    ("MOT_eval.py", ["--resume-pth", "{garbage_pth}", "--split", "nope"], ["--split"]),
    ("generate_vq.py", ["--vq-name", "{garbage_pth}", "--num-samples", "0"], ["--num-samples"]),
    ("wasserstein_mocap.py", ["--folder_path", "{root}", "--clip-length", "0"], ["--clip-length", ">= 2"]),
    ("calculate_wasserstein.py", ["--folder_path", "{gen}", "--bootstrap", "-1"], ["--bootstrap", ">= 0"]),
    ("MOT_eval.py", ["--resume-pth", "{garbage_pth}", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("LIMO_Surrogate.py", ["--vq-name", "x", "--surrogate", "y", "--num-runs", "0"], ["--num-runs", ">= 1"]),
    ("train_vq.py", ["--clip-length", "x"], ["--clip-length", "'x'"]),
]

CASES = (COMMON_CASES + TRAINER_DATA_CASES + SURROGATE_CASES + CKPT_CASES + WRONG_KIND_CASES + OTHER_KIND_CASES
         + OTHER_CASES)
"""Every bad input the suite drives (counted in the README's Reliability section)."""


def _case_id(case) -> str:
    script, argv, _ = case
    return f"{script}:{' '.join(argv)[:70]}"


def _fill(arg: str, w: dict[str, Path]) -> str:
    values = {k: str(v) for k, v in w.items()}
    values["root_missing"] = str(w["tmp"] / "missing_root")
    return arg.format(**values)


def _drive(script: str, argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``script``'s ``__main__`` in this process as the command line would;
    returns (exit status, stdout, stderr). Any exception escaping the door (a
    traceback on the command line) propagates and fails the test."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cwd = sys.argv, os.getcwd()
    old_term = signal.getsignal(signal.SIGTERM)
    threads = torch.get_num_threads()
    sys.argv = [script if script.endswith(".py") else f"python -m {script}", *argv]
    os.chdir(cwd)
    imported = None if script.endswith(".py") else sys.modules.pop(script, None)  # run it afresh, as -m does
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if script.endswith(".py"):
                    runpy.run_path(str(REPO / script), run_name="__main__")
                else:
                    runpy.run_module(script, run_name="__main__", alter_sys=False)
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        if imported is not None:
            sys.modules[script] = imported
        sys.argv = old_argv
        os.chdir(old_cwd)
        signal.signal(signal.SIGTERM, old_term)
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case, world, tmp_path) -> None:
    script, argv, words = case
    code, out, err = _drive(script, [_fill(a, world) for a in argv], tmp_path)
    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}; stderr: {err[-800:]}"
    prog = script if script.endswith(".py") else f"python -m {script}"
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{prog}: error: ")]
    assert len(lines) == 1, f"expected one error line, got: {err[-800:]}"
    message = lines[0]
    assert message == err.strip().splitlines()[-1], "the error is the last thing printed"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert not world["mark"].exists(), "a payload from a data file ran"


def test_every_script_is_covered_and_the_count_is_reported() -> None:
    covered = {c[0] for c in CASES}
    assert covered == set(SCRIPTS)
    root_scripts = {p.name for p in REPO.glob("*.py")}
    assert root_scripts == {s for s in SCRIPTS if s.endswith(".py")}, "a root script is not driven by this test"
    readme = (REPO / "README.md").read_text()
    assert f"{len(CASES)} bad inputs" in readme, f"README's Reliability section should say {len(CASES)} bad inputs"


def test_every_root_script_goes_through_the_door() -> None:
    for script in SCRIPTS:
        if script.endswith(".py"):
            main_block = (REPO / script).read_text().split('if __name__ == "__main__":')[-1]
        elif (REPO / script.replace(".", "/")).is_dir():  # a package run with -m: its __main__.py is the door
            main_block = (REPO / script.replace(".", "/") / "__main__.py").read_text()
        else:  # a module run with -m
            main_block = (REPO / f"{script.replace('.', '/')}.py").read_text().split('if __name__ == "__main__":')[-1]
        assert "run(" in main_block or "run_cli(" in main_block, f"{script}: __main__ does not use utils.cli.run"


# ----------------------------------------------------------------------------- real processes


def _run(argv: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, env=env, timeout=300, **kw)


def _limit_file_size() -> None:
    """In the child: files may not grow past 512 bytes (a full disk, as the writer
    sees it: EFBIG instead of ENOSPC), and SIGXFSZ does not kill."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))


def test_real_processes_one_line_exit_2_and_full_disk(world, tmp_path) -> None:
    cases = [
        ([str(REPO / "train_vq.py"), "--no-such-flag"], "unrecognized arguments"),
        ([str(REPO / "MOT_eval.py"), "--resume-pth", str(world["evil_pth"])], "refused"),
        ([str(REPO / "train_vq.py"), "--data-root", str(world["seg_evil"]), "--out-dir", str(tmp_path / "o")],
         "refused"),
        ([str(REPO / "LIMO_Surrogate.py"), "--vq-name", str(world["folder"]), "--surrogate", str(world["folder"]),
          "--data-root", str(world["root"])], "a_folder"),
    ]
    for argv, word in cases:
        proc = _run(argv, tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert len(proc.stderr.strip().splitlines()) == 1 and word in proc.stderr, proc.stderr
    assert not world["mark"].exists()
    # full disk: the metric script's outputs cannot be written
    proc = _run([str(REPO / "wasserstein_mocap.py"), "--folder_path", str(world["root"]), "--out",
                 str(tmp_path / "full"), "--bootstrap", "5", "--projections", "8", "--no-progress"], tmp_path,
                preexec_fn=_limit_file_size)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("wasserstein_mocap.py: error: cannot write ") and "File too large" in last, last
    assert not [p for p in (tmp_path / "full").rglob("*") if p.name.endswith(".tmp")], "no temporary file left"


def test_signal_stops_a_trainer_with_130_and_a_resumable_checkpoint(world, tmp_path) -> None:
    argv = [str(REPO / "train_vq.py"), "--data-root", str(world["root"]), "--out-dir", str(tmp_path), "--exp-name",
            "run", "--total-iter", "100000", "--batch-size", "8", "--width", "16", "--code-dim", "16",
            "--nb-code", "16", "--depth", "1", "--window-size", "64", "--eval-iter", "100000", "--print-iter", "1",
            "--num-threads", "1", "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, *argv], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    log = tmp_path / "run" / "run.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 2:" in log.read_text()):
        time.sleep(0.2)
    assert proc.poll() is None and "step 2:" in log.read_text(), "the trainer did not reach step 2 in 120 s"
    # a second writer into the same run folder is refused while the first lives
    second = _run([*argv, "--overwrite"], tmp_path)  # --overwrite would delete a live run's folder
    assert second.returncode == 2 and "another process" in second.stderr, second.stderr[-800:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]
    assert "Traceback" not in err and "stopped by signal" in err
    ckpt = torch.load(tmp_path / "run" / "net_last.pth", weights_only=True)
    assert ckpt["step"] >= 2
    assert not list((tmp_path / "run").glob(".*.tmp"))
