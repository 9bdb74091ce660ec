"""utils.process_map: results in item order from spawned workers, a worker's
exception raised again as itself, a dead worker named, workers stopped when
the loop is left."""
from __future__ import annotations

import os
import time

import pytest

from utils.errors import UserError
from utils.process_map import WorkerError, process_map, worker_slot


class _NeedsTwoArguments(Exception):
    def __init__(self, a: str, b: str):
        super().__init__(f"{a} {b}")


def _square_slowly(x: int) -> int:
    time.sleep(0.05 * (3 - x % 3))  # later items often finish first
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise UserError(f"item {x}: bad data")
    return x


def _unpicklable_error(x: int) -> int:
    raise _NeedsTwoArguments("odd", str(x))


def _die(x: int) -> int:
    if x == 1:
        os._exit(9)
    return x


def _pid(x: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def _slot(x: int) -> int | None:
    time.sleep(0.2)
    return worker_slot()


def test_results_come_in_item_order() -> None:
    assert list(process_map(_square_slowly, list(range(7)), processes=3)) == [x * x for x in range(7)]


def test_each_worker_knows_its_slot() -> None:
    assert sorted(process_map(_slot, [0, 1], processes=2)) == [0, 1] and worker_slot() is None


def test_a_worker_exception_is_raised_as_itself_after_the_items_before_it() -> None:
    seen = []
    with pytest.raises(UserError) as info:
        for out in process_map(_fail_on_three, list(range(8)), processes=2):
            seen.append(out)
    assert seen == [0, 1, 2] and str(info.value) == "item 3: bad data"
    assert "raised in a worker process" in "".join(info.value.__notes__)


def test_an_exception_that_cannot_be_pickled_arrives_with_its_type_and_message() -> None:
    with pytest.raises(WorkerError, match="_NeedsTwoArguments: odd 0"):
        list(process_map(_unpicklable_error, [0, 1], processes=2))


def test_a_dead_worker_is_reported_with_its_item() -> None:
    with pytest.raises(WorkerError, match=r"died with exit code 9 while working on item 1"):
        list(process_map(_die, [0, 1, 2], processes=2))


def test_leaving_the_loop_stops_the_workers() -> None:
    outputs = process_map(_pid, list(range(6)), processes=2)
    first = next(outputs)
    outputs.close()
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(first, 0)


def test_at_least_one_process() -> None:
    with pytest.raises(ValueError, match="at least one process"):
        list(process_map(_pid, [1], processes=0))


def _slow_cleanup_at_exit(flag: str) -> None:
    import atexit

    def cleanup() -> None:
        time.sleep(1.0)  # e.g. a simulation pool finishing
        open(f"{flag}.{worker_slot()}", "w").close()

    atexit.register(cleanup)


def test_workers_finish_their_clean_up_when_the_items_are_done(tmp_path) -> None:
    flag = tmp_path / "cleaned"
    assert list(process_map(_square_slowly, [1, 2], processes=2, initializer=_slow_cleanup_at_exit,
                            initargs=(str(flag),))) == [1, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cleaned.0", "cleaned.1"], \
        "an idle worker is let exit on its own, not stopped in its clean-up"


def _start_a_child(flag: str) -> None:
    import multiprocessing

    multiprocessing.get_context("fork").Process(target=time.sleep, args=(3600,), name="sleeper").start()


def _stop_the_child() -> None:
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()


def test_the_finalizer_stops_what_a_worker_started() -> None:
    """A child process of a worker still running at its end would hang it
    (multiprocessing joins it before any atexit handler); the finalizer stops it."""
    start = time.perf_counter()
    out = list(process_map(_square_slowly, [1, 2], processes=2, initializer=_start_a_child, initargs=("",),
                           finalizer=_stop_the_child))
    assert out == [1, 4] and time.perf_counter() - start < 30


_OWNER = """
import os, sys, time
sys.path.insert(0, {root!r})
from utils.process_map import process_map

def report(x):
    path = {out!r} + f".{{x}}"
    with open(path + ".tmp", "w") as f:  # renamed when written: the test polls for the file
        f.write(f"{{os.getpid()}} {{'xml.dom.minidom' in sys.modules}}")
    os.replace(path + ".tmp", path)
    time.sleep(float(x))
    return x

if __name__ == "__main__":
    print(list(process_map(report, sys.argv[2:], processes=2, preload=["xml.dom.minidom"], context=sys.argv[1])))
"""


def _owner_script(tmp_path) -> tuple[str, str]:
    import textwrap
    from pathlib import Path

    out = str(tmp_path / "seen")
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(_OWNER.format(root=str(Path(__file__).resolve().parents[1]), out=out)))
    return str(script), out


@pytest.mark.parametrize("context, preloaded", [("forkserver", "True"), ("spawn", "False")])
def test_forkserver_workers_start_with_the_preloaded_modules(tmp_path, context, preloaded) -> None:
    """Run in a new interpreter: the forkserver is one per process, and another
    test may have started this one's with other modules."""
    import subprocess
    import sys

    script, out = _owner_script(tmp_path)
    done = subprocess.run([sys.executable, script, context, "0", "0.0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['0', '0.0']"
    pids = set()
    for name in ("seen.0", "seen.0.0"):
        pid, seen = (tmp_path / name).read_text().split()
        assert seen == preloaded
        pids.add(int(pid))
    assert len(pids) == 2, "one worker per item"


def test_forkserver_workers_die_with_their_owner(tmp_path) -> None:
    """The owner killed without clean-up: its forkserver exits, and with it
    (PR_SET_PDEATHSIG) the workers it forked."""
    import signal
    import subprocess
    import sys

    script, out = _owner_script(tmp_path)
    owner = subprocess.Popen([sys.executable, script, "forkserver", "600", "601"])
    try:
        deadline = time.time() + 60
        while not all((tmp_path / f"seen.{x}").exists() for x in ("600", "601")):
            assert time.time() < deadline, "the workers never started"
            time.sleep(0.1)
        workers = [int((tmp_path / f"seen.{x}").read_text().split()[0]) for x in ("600", "601")]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.time() + 20
        while any(_running(pid) for pid in workers):
            assert time.time() < deadline, "a worker outlived its owner"
            time.sleep(0.1)
    finally:
        owner.kill()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except (FileNotFoundError, ProcessLookupError):
        # The process can vanish between the open and the read (ESRCH).
        return False
