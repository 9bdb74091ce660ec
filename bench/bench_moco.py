"""OpenSim Moco's ``MocoInverse`` against the project's static optimisation.

    OMP_NUM_THREADS=1 python -m bench.bench_moco --reps 2 --mesh 0.05 --tol 1e-2 --out /tmp/bench_moco
    OMP_NUM_THREADS=1 python -m bench.bench_moco --skip-synthetic --real --out /tmp/bench_moco_real

Builds a tiny synthetic dataset itself (``dataset.synthetic.synthesize.build_dataset``,
one subject), capturing the inverse dynamics of the trial (the ground reaction
forces the static optimisation used) and timing the static optimisation of
every repetition. Then, for the first ``--reps`` written repetitions, solves
``MocoInverse`` on the session's scaled model with

- the Dynamics file's (noise-free, 4 Hz filtered) kinematics, prescribed;
- the same ground reaction forces, as OpenSim ``ExternalForce`` s on the calcanei;
- muscles as ``DeGrooteFregly2016Muscle`` (rigid tendons, passive fibre force
  ignored, activation floor 0.05), minimising squared activations;
- reserves as the project's: 1 N m on the 14 lower-limb coordinates (hip
  rotation 30 x sqrt(1e5) N m), nearly free actuators (1000 N m / N) on the
  pelvis, lumbar and arm coordinates that no muscle crosses;

and compares its activations with the Dynamics file's (peak and RMS
differences per muscle group, both sides). ``--real`` also solves the real
OpenCap squat shipped in tests/data (generic model scaled to 1.78 m / 72 kg;
the file has no ground reaction forces, so they come from the whole-body
dynamics as in the generator) with both methods and compares them with
OpenCap's own muscle-driven simulation stored in the file. A benchmark, not a test: prints JSON and writes it
to ``<out>/bench_moco.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GROUPS = {
    "vasti": ("vasmed", "vaslat", "vasint"),
    "soleus": ("soleus",),
    "gastrocnemius": ("gasmed", "gaslat"),
    "tibialis anterior": ("tibant",),
    "gluteus maximus": ("glmax1", "glmax2", "glmax3"),
    "hamstrings": ("semimem", "semiten", "bflh", "bfsh"),
}
FREE_ACTUATOR = 1000.0  # N m / N: pelvis, lumbar and arm coordinates (no muscle), nearly free


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def _load() -> str:
    return open("/proc/loadavg").read().split()[0]


# ----------------------------------------------------------------------------- dataset with captured dynamics


def build_with_capture(root: Path, n_reps: int, seed: int) -> dict:
    """Build a one-subject dataset; return what the static optimisation used:
    model path, the trial's inverse dynamics, segments and per-repetition
    static-optimisation wall and CPU seconds."""
    import dataset.synthetic.muscle_dynamics as md
    from dataset.synthetic.synthesize import build_dataset

    captured: dict = {}

    def simulate_trial(model_path, coords, segments, fs=md.FRAME_RATE, right_share=0.5):
        w, c = time.perf_counter(), _cpu()
        dyn = md.inverse_dynamics(model_path, coords, fs, right_share)
        captured["id_wall_s"], captured["id_cpu_s"] = time.perf_counter() - w, _cpu() - c
        muscles = md.MuscleModel(model_path)
        reps, timing = [], []
        for a, b in segments:
            w, c = time.perf_counter(), _cpu()
            reps.append(md.static_optimization(muscles, dyn, a, b, fs))
            timing.append({"start": a, "end": b, "so_wall_s": time.perf_counter() - w, "so_cpu_s": _cpu() - c})
        captured.update(model_path=model_path, dyn=dyn, timing=timing, fs=fs)
        return dyn, reps

    original = md.simulate_trial
    md.simulate_trial = simulate_trial  # _build_session imports it from the module at call time
    try:
        w, c = time.perf_counter(), _cpu()
        build_dataset(root, n_subjects=1, n_reps=n_reps, seed=seed, workers=1, progress=False)
        captured["build_wall_s"], captured["build_cpu_s"] = time.perf_counter() - w, _cpu() - c
    finally:
        md.simulate_trial = original
    if "dyn" not in captured:
        raise RuntimeError(f"{root}: the dataset already existed; pass an empty --out")
    return captured


# ----------------------------------------------------------------------------- Moco problem


def write_external_loads(folder: Path, grf: dict, times: np.ndarray) -> Path:
    """The project's ground reaction forces as a .mot file and an ExternalLoads XML."""
    import opensim as osim

    from dataset.synthetic.muscle_dynamics import foot_ground_force, grf_columns

    labels, data = grf_columns(grf)
    table = osim.TimeSeriesTable()
    table.setColumnLabels(labels[1:])
    for k, t in enumerate(times):
        table.appendRow(float(t), osim.RowVector.createFromMat(data[k]))
    mot = folder / "grf.mot"
    osim.STOFileAdapter.write(table, str(mot))
    loads = osim.ExternalLoads()
    loads.setDataFileName(str(mot))
    for s in ("r", "l"):
        loads.cloneAndAppend(foot_ground_force(s))
    xml = folder / "external_loads.xml"
    loads.printToXML(str(xml))
    return xml


def moco_model(model_path: str, loads_xml: Path | None):
    """The scaled model as MocoInverse sees it (see the module docstring)."""
    import opensim as osim

    from dataset.synthetic.muscle_dynamics import ACTIVATION_FLOOR, HIP_ROTATION_RESERVE, RESERVE_OPTIMAL_MOMENT, SO_COORDINATES

    proc = osim.ModelProcessor(str(model_path))
    if loads_xml is not None:
        proc.append(osim.ModOpAddExternalLoads(str(loads_xml)))
    proc.append(osim.ModOpIgnoreTendonCompliance())
    proc.append(osim.ModOpReplaceMusclesWithDeGrooteFregly2016())
    proc.append(osim.ModOpIgnorePassiveFiberForcesDGF())
    model = proc.process()
    forces = model.updForceSet()
    for i in reversed(range(forces.getSize())):  # the model's own torque actuators are replaced below
        if osim.CoordinateActuator.safeDownCast(forces.get(i)) is not None:
            forces.remove(i)
    model.initSystem()
    muscles = model.updMuscles()
    for i in range(muscles.getSize()):
        m = osim.DeGrooteFregly2016Muscle.safeDownCast(muscles.get(i))
        m.set_min_control(ACTIVATION_FLOOR)
        m.set_ignore_activation_dynamics(False)
    coupled = set()
    cons = model.getConstraintSet()
    for i in range(cons.getSize()):
        cc = osim.CoordinateCouplerConstraint.safeDownCast(cons.get(i))
        if cc is not None:
            coupled.add(cc.getDependentCoordinateName())
    cs = model.getCoordinateSet()
    for i in range(cs.getSize()):
        name = cs.get(i).getName()
        if name in coupled:
            continue
        if name in SO_COORDINATES:
            f = HIP_ROTATION_RESERVE if name.startswith("hip_rotation") else RESERVE_OPTIMAL_MOMENT
        else:
            f = FREE_ACTUATOR
        act = osim.CoordinateActuator(name)
        act.setName(f"reserve_{name}")
        act.setOptimalForce(f)
        act.setMinControl(-1e4)
        act.setMaxControl(1e4)
        model.addForce(act)
    model.finalizeConnections()
    return model


def kinematics_table(model, times: np.ndarray, coords_deg: np.ndarray, names: list[str]):
    """TimeSeriesTable of coordinate values (radians / metres) with the
    coupled coordinates set by their couplers."""
    import opensim as osim

    from utils.constants import TRANSLATIONS

    q = np.array(coords_deg, dtype=float, copy=True)
    rot = [i for i, n in enumerate(names) if n not in TRANSLATIONS]
    q[:, rot] = np.deg2rad(q[:, rot])
    cs = model.getCoordinateSet()
    cols, labels = [], []
    for j, n in enumerate(names):
        labels.append(cs.get(n).getAbsolutePathString() + "/value")
        cols.append(q[:, j])
    cons = model.getConstraintSet()
    for i in range(cons.getSize()):
        cc = osim.CoordinateCouplerConstraint.safeDownCast(cons.get(i))
        if cc is None:
            continue
        ind = cc.getIndependentCoordinateNames().get(0)
        fn = cc.getFunction()
        x = q[:, names.index(ind)]
        cols.append(np.array([fn.calcValue(osim.Vector(1, float(v))) for v in x]))
        labels.append(cs.get(cc.getDependentCoordinateName()).getAbsolutePathString() + "/value")
    table = osim.TimeSeriesTable()
    table.setColumnLabels(labels)
    data = np.stack(cols, axis=1)
    for k, t in enumerate(times):
        table.appendRow(float(t), osim.RowVector.createFromMat(data[k]))
    table.addTableMetaDataString("inDegrees", "no")
    return table


def solve_moco(model, table, t0: float, t1: float, mesh: float, tol: float, max_iter: int, log: Path) -> dict:
    """Solve MocoInverse single-threaded; activations on the solution's time grid."""
    import opensim as osim

    inverse = osim.MocoInverse()
    inverse.setName("bige_moco")
    inverse.setModel(osim.ModelProcessor(model))
    inverse.setKinematics(osim.TableProcessor(table))
    inverse.set_initial_time(t0)
    inverse.set_final_time(t1)
    inverse.set_mesh_interval(mesh)
    inverse.set_kinematics_allow_extra_columns(True)
    inverse.set_minimize_sum_squared_activations(True)
    inverse.set_convergence_tolerance(tol)
    inverse.set_constraint_tolerance(1e-3)
    inverse.set_max_iterations(max_iter)
    study = inverse.initialize()
    solver = osim.MocoCasADiSolver.safeDownCast(study.updSolver())
    solver.set_parallel(0)
    solver.set_optim_max_iterations(max_iter)
    w, c, load0 = time.perf_counter(), _cpu(), _load()
    solution = study.solve()
    wall, cpu = time.perf_counter() - w, _cpu() - c
    solution.unseal()
    out = {"wall_s": wall, "cpu_s": cpu, "load_before": load0, "load_after": _load(),
           "success": bool(solution.success()), "status": solution.getStatus(),
           "iterations": int(solution.getNumIterations()), "objective": float(solution.getObjective()),
           "mesh_points": int(solution.getNumTimes())}
    solution.write(str(log))
    t = np.asarray(solution.getTimeMat()).ravel()
    acts = {}
    for name in solution.getStateNames():
        if name.endswith("/activation"):
            acts[name.split("/")[2]] = np.asarray(solution.getStateMat(name)).ravel()
    res = {}
    for name in solution.getControlNames():
        if "reserve_" in name:
            res[name.rsplit("/", 1)[-1][len("reserve_"):]] = np.asarray(solution.getControlMat(name)).ravel()
    out.update(time=t, activations=acts, reserve_controls=res)
    return out


def compare(t_moco: np.ndarray, acts_moco: dict, t_ref: np.ndarray, acts_ref: dict) -> dict:
    """Per group (both sides, every muscle of the group): max |peak difference|
    and RMS difference of Moco minus reference, on the reference's frames."""
    rows = {}
    for group, bases in GROUPS.items():
        peak_d, sq, n, peaks_m, peaks_r = [], 0.0, 0, [], []
        for b in bases:
            for s in ("r", "l"):
                m = f"{b}_{s}"
                if m not in acts_moco or m not in acts_ref:
                    continue
                mo = np.interp(t_ref, t_moco, acts_moco[m])
                ref = acts_ref[m]
                peak_d.append(float(mo.max() - ref.max()))
                peaks_m.append(float(mo.max()))
                peaks_r.append(float(ref.max()))
                sq += float(np.sum((mo - ref) ** 2))
                n += ref.size
        i = int(np.argmax(np.abs(peak_d)))
        rows[group] = {"peak_moco_mean": float(np.mean(peaks_m)), "peak_ref_mean": float(np.mean(peaks_r)),
                       "peak_diff_max_abs": peak_d[i], "rms_diff": float(np.sqrt(sq / n))}
    return rows


def read_mot(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(times, labels without time, values) of a .mot/.sto file, values as written."""
    lines = Path(path).read_text().splitlines()
    end = next(i for i, l in enumerate(lines) if l.strip().lower() == "endheader")
    labels = lines[end + 1].split("\t")
    data = np.loadtxt(lines[end + 2:], ndmin=2)
    return data[:, 0], [l.strip() for l in labels[1:]], data[:, 1:]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/bench_moco", help="empty work folder (dataset, Moco files, JSON)")
    p.add_argument("--reps", type=int, default=2, help="repetitions to solve with Moco")
    p.add_argument("--first-rep", type=int, default=1, help="first written repetition to solve (1-based)")
    p.add_argument("--dataset-reps", type=int, default=2, help="squats in the synthetic trial")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mesh", type=float, default=0.05, help="MocoInverse mesh interval, s")
    p.add_argument("--tol", type=float, default=1e-2, help="MocoInverse convergence tolerance")
    p.add_argument("--max-iter", type=int, default=500)
    p.add_argument("--real", action="store_true", help="also solve the real OpenCap squat")
    p.add_argument("--skip-synthetic", action="store_true")
    args = p.parse_args(argv)

    import opensim as osim

    from utils.constants import COORDINATES

    osim.Logger.setLevelString("warn")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu_model = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True)
                      .stdout.splitlines() if l.startswith("Model name")), platform.processor())
    report = {"command": " ".join(sys.argv), "cpu": cpu_model, "nproc": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "opensim": osim.__version__,
              "mesh_interval_s": args.mesh, "convergence_tolerance": args.tol, "repetitions": []}

    if not args.skip_synthetic:
        root = out / "dataset"
        cap = build_with_capture(root, args.dataset_reps, args.seed)
        report.update(build_wall_s=cap["build_wall_s"], build_cpu_s=cap["build_cpu_s"],
                      inverse_dynamics_wall_s=cap["id_wall_s"], inverse_dynamics_cpu_s=cap["id_cpu_s"])
        dyn, fs = cap["dyn"], cap["fs"]
        times_all = np.arange(dyn.moments.shape[0]) / fs
        loads = write_external_loads(out, dyn.grf, times_all)
        model = moco_model(cap["model_path"], loads)
        sid = next((root / "Data").iterdir()).name
        kept = np.load(root / "squat-segmentation-data" / f"{sid}.npy", allow_pickle=True).item()["SQT01"]
        so_time = {(t["start"], t["end"]): t for t in cap["timing"]}
        for k, (a, b) in enumerate(kept, start=1):
            if not args.first_rep <= k < args.first_rep + args.reps:
                continue
            dyn_file = (root / "Data" / sid / "OpenSimData" / "Dynamics" / f"SQT01_segment_{k}"
                        / f"kinematics_activations_SQT01_segment_{k}_muscle_driven.mot")
            t_ref, labels, values = read_mot(dyn_file)
            coord_cols = [labels.index(lab) for lab in labels if lab.endswith("/value")]
            names = [labels[i].split("/")[3] for i in coord_cols]
            assert sorted(names) == sorted(COORDINATES), names
            acts_ref = {labels[i].split("/")[2]: values[:, i] for i in range(len(labels))
                        if labels[i].endswith("/activation")}
            table = kinematics_table(model, t_ref, values[:, coord_cols], names)
            print(f"repetition {k}: {len(t_ref)} frames, {t_ref[-1] - t_ref[0]:.2f} s; solving MocoInverse",
                  file=sys.stderr, flush=True)
            row = {"session": sid, "segment": k, "frames": [int(a), int(b)],
                   "duration_s": float(t_ref[-1] - t_ref[0]), **{kk: so_time[(a, b)][kk] for kk in
                                                                  ("so_wall_s", "so_cpu_s")}}
            try:
                sol = solve_moco(model, table, float(t_ref[0]), float(t_ref[-1]), args.mesh, args.tol, args.max_iter,
                                 out / f"moco_segment_{k}.sto")
            except Exception as exc:  # recorded: the document reports failures as measured
                row["moco_error"] = f"{type(exc).__name__}: {exc}"
                report["repetitions"].append(row)
                print(json.dumps(row), file=sys.stderr)
                continue
            row.update({f"moco_{kk}": sol[kk] for kk in ("wall_s", "cpu_s", "load_before", "load_after", "success",
                                                         "status", "iterations", "objective", "mesh_points")})
            row["groups"] = compare(sol["time"], sol["activations"], t_ref, acts_ref)
            row["moco_max_abs_reserve_Nm"] = {c: float(np.abs(v).max() * (1.0 if not c.startswith("hip_rotation")
                                                                           else 30.0 * 1e5 ** 0.5))
                                              for c, v in sol["reserve_controls"].items()
                                              if not c.startswith(("pelvis", "lumbar", "arm", "elbow", "pro_sup"))}
            report["repetitions"].append(row)
            print(json.dumps(row, indent=1), file=sys.stderr, flush=True)

    if args.real:
        report["real"] = run_real(out, args)
    (out / "bench_moco.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


REAL_FILE = REPO / "tests" / "data" / "real_opencap" / "opencap-to-nwb" / "Squats_0_1_kinematics_activations.mot"


def run_real(out: Path, args) -> dict:
    """The real OpenCap squat (subject 1.78 m / 72 kg): the generic model
    scaled as the generator scales it (``subject_model``: ScaleTool plus sole
    stations), the project's ground reaction forces and inverse dynamics from
    the file's kinematics, then static optimisation and MocoInverse, both
    against the activations OpenCap's muscle-driven simulation stored in the file."""
    import dataset.synthetic.muscle_dynamics as md
    from dataset.synthetic.opencap_model import MODEL_FILE, subject_model
    from utils.constants import COORDINATES

    folder = out / "real"
    folder.mkdir(parents=True, exist_ok=True)
    model_path = str(subject_model(folder / MODEL_FILE, 1.78, 72.0, name="real_opencap_squat"))
    t, labels, values = read_mot(REAL_FILE)
    coords = np.stack([values[:, labels.index(c)] for c in COORDINATES], axis=1)
    acts_ref = {l.split("/")[0]: values[:, i] for i, l in enumerate(labels) if l.endswith("/activation")}
    fs = 1.0 / float(np.median(np.diff(t)))
    knee = coords[:, [COORDINATES.index("knee_angle_r"), COORDINATES.index("knee_angle_l")]]
    share = np.clip(0.5 + 0.004 * (knee[:, 0] - knee[:, 1]), 0.3, 0.7)  # as dataset.synthetic.synthesize
    w, c = time.perf_counter(), _cpu()
    dyn = md.inverse_dynamics(model_path, coords, fs, share)
    row = {"frames": int(len(t)), "duration_s": float(t[-1] - t[0]), "frame_rate": fs,
           "peak_knee_flexion_deg": float(knee.mean(1).max()),
           "id_wall_s": time.perf_counter() - w, "id_cpu_s": _cpu() - c}
    w, c = time.perf_counter(), _cpu()
    so = md.static_optimization(md.MuscleModel(model_path), dyn, 0, len(t), fs)
    row.update(so_wall_s=time.perf_counter() - w, so_cpu_s=_cpu() - c,
               so_summary={k: so.summary[k] for k in ("max_activation", "max_activation_muscle",
                                                      "saturated_antagonist_frames", "max_abs_reserve_Nm")})
    so_acts = {m: so.activations[:, i] for i, m in enumerate(so.muscles)}
    row["so_vs_opencap"] = compare(t, so_acts, t, acts_ref)
    times_all = t - t[0]
    loads = write_external_loads(folder, dyn.grf, times_all)
    model = moco_model(model_path, loads)
    table = kinematics_table(model, times_all, dyn.coords_filtered, list(COORDINATES))
    print(f"real squat: {len(t)} frames, {row['duration_s']:.2f} s; solving MocoInverse", file=sys.stderr, flush=True)
    try:
        sol = solve_moco(model, table, 0.0, float(times_all[-1]), args.mesh, args.tol, args.max_iter,
                         folder / "moco_real.sto")
    except Exception as exc:
        row["moco_error"] = f"{type(exc).__name__}: {exc}"
        return row
    row.update({f"moco_{kk}": sol[kk] for kk in ("wall_s", "cpu_s", "load_before", "load_after", "success",
                                                 "status", "iterations", "objective", "mesh_points")})
    row["moco_vs_opencap"] = compare(sol["time"], sol["activations"], times_all, acts_ref)
    row["moco_vs_so"] = compare(sol["time"], sol["activations"], times_all, so_acts)
    return row


if __name__ == "__main__":
    sys.exit(main())
