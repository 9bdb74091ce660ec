"""run_pipeline.py: stages skip when done, pass --resume,
report failures, and an interrupted run completes when run again."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from run_pipeline import run_stages
from utils.pipeline_config import PipelineError, load_config

REPO = Path(__file__).resolve().parents[1]

# A stage that counts to --steps, checkpointing after every step (atomically),
# and resumes from --resume; it writes its final output only when finished.
COUNTER = textwrap.dedent("""
    import argparse, json, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--out"); p.add_argument("--steps", type=int); p.add_argument("--resume")
    p.add_argument("--sleep", type=float, default=0.0); p.add_argument("--fail", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    if a.fail:
        sys.exit(3)
    step = json.load(open(a.resume))["step"] if a.resume else 0
    log = open(a.out + ".log", "a"); log.write(f"start {step}\\n"); log.close()
    while step < a.steps:
        time.sleep(a.sleep); step += 1
        tmp = a.out + ".ckpt.tmp"; json.dump({"step": step}, open(tmp, "w")); os.replace(tmp, a.out + ".ckpt")
    tmp = a.out + ".tmp"; open(tmp, "w").write(str(step)); os.replace(tmp, a.out)
""")


def _config(tmp: Path, steps: int = 3, sleep: float = 0.0, fail: bool = False) -> Path:
    (tmp / "counter.py").write_text(COUNTER)
    out = tmp / "result.txt"
    cfg = tmp / "p.yaml"
    cfg.write_text(textwrap.dedent(f"""
        out_dir: {tmp}
        stages:
          - name: count
            script: {tmp / 'counter.py'}
            args: {{out: "{{out_dir}}/result.txt", steps: {steps}, sleep: {sleep}, fail: {str(fail).lower()}}}
            resume: "{out}.ckpt"
            outputs: ["{out}"]
    """))
    return cfg


def test_stage_runs_then_is_skipped_when_outputs_exist(tmp_path: Path, capsys) -> None:
    _, stages = load_config(_config(tmp_path))
    times = run_stages(stages, times_file=tmp_path / "times.json")
    assert (tmp_path / "result.txt").read_text() == "3"
    assert "count" in times and (tmp_path / "times.json").is_file()
    run_stages(stages)
    assert "done, outputs" in capsys.readouterr().out
    assert (tmp_path / "result.txt.log").read_text().count("start") == 1


def test_failing_stage_is_reported(tmp_path: Path) -> None:
    _, stages = load_config(_config(tmp_path, fail=True))
    with pytest.raises(PipelineError, match=r"stage 'count' failed \(exit 3\)"):
        run_stages(stages)


def test_bad_config_and_unknown_stage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - {name: x}\n")
    with pytest.raises(PipelineError, match="stage 1 needs 'name' and 'script' or 'module'"):
        load_config(bad)
    _, stages = load_config(_config(tmp_path))
    with pytest.raises(PipelineError, match="unknown stage"):
        run_stages(stages, only=["nope"])


def test_interrupted_run_resumes_and_leaves_no_partial_output(tmp_path: Path) -> None:
    cfg = _config(tmp_path, steps=40, sleep=0.05)
    cmd = [sys.executable, str(REPO / "run_pipeline.py"), "--config", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    ckpt = tmp_path / "result.txt.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "the stage wrote no checkpoint in 120 s"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "result.txt").exists(), "no final output after an interrupted stage"
    subprocess.run(cmd, cwd=REPO, check=True)
    assert (tmp_path / "result.txt").read_text() == "40"
    starts = (tmp_path / "result.txt.log").read_text().split()
    assert starts[0] == "start" and starts[1] == "0" and int(starts[3]) > 0, "second run resumed from its checkpoint"
    assert not list(tmp_path.glob("*.tmp"))


def test_stage_names_cannot_leave_the_output_folder(tmp_path: Path) -> None:
    for name in ("../../escape", "a/b", "..", ".hidden", ""):
        cfg = tmp_path / "p.yaml"
        cfg.write_text(f"out_dir: {tmp_path}\nstages:\n  - {{name: '{name}', script: x.py}}\n")
        with pytest.raises(PipelineError, match="stage name .*no path separators"):
            load_config(cfg)


def test_a_training_killed_before_its_first_checkpoint_restarts(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _, stages = load_config(cfg)
    (tmp_path / "result.txt.log").write_text("start 0\n")  # the run began, no checkpoint yet
    assert stages[0].argv()[-1] == "--overwrite"
    (tmp_path / "result.txt.ckpt").write_text('{"step": 1}')
    assert stages[0].argv()[-2:] == ["--resume", str(tmp_path / "result.txt.ckpt")]


def test_one_runner_per_output_folder_and_a_stopped_runner_stops_its_stage(tmp_path: Path) -> None:
    cfg = _config(tmp_path, steps=400, sleep=0.05)
    cmd = [sys.executable, str(REPO / "run_pipeline.py"), "--config", str(cfg)]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "result.txt.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "the stage wrote no checkpoint in 120 s"
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2, second.stderr
    assert second.stderr.startswith("run_pipeline.py: error: ") and "another process" in second.stderr
    first.send_signal(signal.SIGTERM)  # the runner passes it on to its stage and waits for it
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130 and "Traceback" not in err, err
    time.sleep(0.3)
    step = int(ckpt.read_text().split(":")[1].strip(" }"))
    time.sleep(0.3)
    assert int(ckpt.read_text().split(":")[1].strip(" }")) == step, "the stage stopped with the runner"


# A stage that records when it ran (perf-counter-free wall times) and may fail.
SPAN = textwrap.dedent("""
    import argparse, json, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--out"); p.add_argument("--sleep", type=float); p.add_argument("--fail", action="store_true")
    p.add_argument("--peer", default="")
    a = p.parse_args()
    start = time.monotonic(); print("working on", a.out, flush=True)
    saw_peer = False
    if a.peer:  # meet the stage that should run beside this one: each sees the other start while it runs
        open(a.out + ".started", "w").close()
        deadline = start + 60
        while not (saw_peer := os.path.exists(a.peer + ".started")) and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(a.sleep)
    if a.fail:
        print("bad input in line 7", flush=True); sys.exit(4)
    tmp = a.out + ".tmp"; json.dump([start, time.monotonic(), saw_peer], open(tmp, "w")); os.replace(tmp, a.out)
""")


def _dag_config(tmp: Path, fail_a: bool = False, jobs: int | None = None, meet: bool = False) -> Path:
    """Stages a and b independent, c needs both, d (no needs) waits for all
    before it. With ``meet``, a and b each wait (up to 60 s) for the other to
    start, which proves that they ran side by side without timing either."""
    (tmp / "span.py").write_text(SPAN)

    def stage(name: str, needs: list[str] | None, fail: bool = False) -> str:
        peer = {"a": "b", "b": "a"}.get(name) if meet else None
        sleep = 0.3 if name in "ab" else 0.1
        args = f'out: "{{out_dir}}/{name}.json", sleep: {sleep}, fail: {str(fail).lower()}'
        if peer:
            args += f', peer: "{{out_dir}}/{peer}.json"'
        lines = [f"  - name: {name}", f"    script: {tmp / 'span.py'}", f"    args: {{{args}}}",
                 f'    outputs: ["{tmp}/{name}.json"]']
        return "\n".join(lines + ([f"    needs: {needs}"] if needs is not None else [])) + "\n"
    cfg = tmp / "dag.yaml"
    cfg.write_text(f"out_dir: {tmp}\n" + (f"jobs: {jobs}\n" if jobs else "") + "stages:\n" +
                   stage("a", [], fail_a) + stage("b", []) + stage("c", ["a", "b"]) + stage("d", None))
    return cfg


def _span(tmp: Path, name: str) -> tuple[float, float, bool]:
    """(start, end, saw its peer start) of a stage, on the system-wide monotonic clock."""
    import json
    start, end, saw_peer = json.loads((tmp / f"{name}.json").read_text())
    return start, end, saw_peer


def test_needs_run_stages_side_by_side_and_in_dependency_order(tmp_path: Path) -> None:
    from utils.pipeline_config import config_jobs
    variables, stages = load_config(_dag_config(tmp_path, jobs=2, meet=True))
    assert config_jobs(variables, "dag.yaml") == 2
    assert [s.needs for s in stages] == [[], [], ["a", "b"], ["a", "b", "c"]]
    times = run_stages(stages, jobs=2, times_file=tmp_path / "times.json")
    a, b, c, d = (_span(tmp_path, n) for n in "abcd")
    assert a[2] and b[2], "a and b ran at the same time (each saw the other start)"
    assert c[0] >= max(a[1], b[1]) and d[0] >= c[1], "c waited for a and b, d for c"
    assert set(times) == set("abcd") and all((tmp_path / ".pipeline" / f"{n}.done").is_file() for n in "abcd")
    assert "working on" in (tmp_path / ".pipeline" / "a.log").read_text()
    # one at a time: a finishes before b starts
    for n in "abcd":
        (tmp_path / ".pipeline" / f"{n}.done").unlink()
    _, stages = load_config(_dag_config(tmp_path, jobs=2))  # a and b no longer wait for each other
    run_stages(stages, jobs=1)
    a, b = _span(tmp_path, "a"), _span(tmp_path, "b")
    assert a[1] <= b[0]


def test_a_done_stage_whose_command_changed_is_named_not_silently_skipped(tmp_path: Path, capsys) -> None:
    cfg = _dag_config(tmp_path)
    _, stages = load_config(cfg)
    run_stages(stages, jobs=1)
    first = (tmp_path / "a.json").read_text()
    cfg.write_text(cfg.read_text().replace("a.json\", sleep: 0.3", "a.json\", sleep: 0.2", 1))
    _, stages = load_config(cfg)
    capsys.readouterr()
    run_stages(stages, jobs=1)
    out = capsys.readouterr().out
    assert "[a] warning: its command changed since it ran (0.2 (no longer 0.3)); not run again: use --stage a " \
           "--force" in out
    assert "[b] warning" not in out and (tmp_path / "a.json").read_text() == first, "a was not run again"
    run_stages(stages, only=["a"], force=True)
    capsys.readouterr()
    run_stages(stages, jobs=1)
    assert "warning" not in capsys.readouterr().out, "the forced run recorded the new command"


def test_a_failed_stage_stops_what_needs_it_and_lets_the_others_finish(tmp_path: Path, capsys) -> None:
    _, stages = load_config(_dag_config(tmp_path, fail_a=True))
    with pytest.raises(PipelineError, match=r"stage 'a' failed \(exit 4\)"):
        run_stages(stages, jobs=2)
    out = capsys.readouterr().out
    assert "bad input in line 7" in out and "not started: c, d" in out
    assert (tmp_path / "b.json").is_file() and (tmp_path / ".pipeline" / "b.done").is_file()
    assert not (tmp_path / "c.json").exists()


def test_bad_needs_and_jobs_are_named(tmp_path: Path) -> None:
    from utils.pipeline_config import config_jobs
    cfg = tmp_path / "p.yaml"
    cfg.write_text("stages:\n  - {name: a, script: x.py, needs: [b]}\n  - {name: b, script: x.py}\n")
    with pytest.raises(PipelineError, match=r"p.yaml: stage 'a' needs 'b', which is not a stage before it"):
        load_config(cfg)
    cfg.write_text("stages:\n  - {name: a, script: x.py, needs: b}\n")
    with pytest.raises(PipelineError, match="'needs' must be a list of stage names, found 'b'"):
        load_config(cfg)
    with pytest.raises(PipelineError, match="'jobs' must be a whole number >= 1, found 'two'"):
        config_jobs({"jobs": "two"}, cfg)


def test_a_stopped_runner_stops_every_stage_running_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "counter.py").write_text(COUNTER)
    cfg = tmp_path / "two.yaml"
    cfg.write_text(f"out_dir: {tmp_path}\njobs: 2\nstages:\n" + "".join(
        f"  - {{name: {n}, script: {tmp_path / 'counter.py'}, needs: [], "
        f"args: {{out: '{tmp_path / n}', steps: 400, sleep: 0.05}}, resume: '{tmp_path / n}.ckpt'}}\n"
        for n in ("one", "two")))
    runner = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), "--config", str(cfg)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpts = [tmp_path / "one.ckpt", tmp_path / "two.ckpt"]
    deadline = time.time() + 30
    while not all(c.exists() for c in ckpts) and time.time() < deadline:
        time.sleep(0.05)
    assert all(c.exists() for c in ckpts), "both stages started at once"
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "Traceback" not in err, err
    steps = [c.read_text() for c in ckpts]
    time.sleep(0.3)
    assert [c.read_text() for c in ckpts] == steps, "both stages stopped with the runner"
