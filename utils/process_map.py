"""Map a function over items in worker processes, results in item order.

    for out in process_map(work, items, processes=2, initializer=setup, initargs=(big_state,)):
        ...  # out of items[0], then items[1], ...

Built for work that holds torch / OpenMP thread pools: a forked copy of a
process whose OpenMP pool has run can hang, so workers are never forked from
the caller. By default they are forked from multiprocessing's *forkserver*, a
fresh process that has only imported the main module and the ``preload``
modules (torch, OpenSim, ...: seconds of imports paid once, not once per
worker) and never computed anything; ``context="spawn"`` starts each worker
as a new interpreter instead. Each runs ``initializer(*initargs)`` once (load
the shared state there, not once per item) and then takes one item at a time
from the parent, so a slow item never holds back a queue of others.

Errors and stopping:

* an exception raised by ``fn`` or ``initializer`` is raised again in the
  parent as the same exception (same type and message, the worker's
  traceback attached as a note), once every earlier item has been yielded; no
  further item is started after it. An exception that cannot be pickled
  arrives as :class:`WorkerError` with its type name and message;
* a worker that dies (killed, crashed) raises :class:`WorkerError` naming the
  item it was working on;
* when the loop ends or is left (break, an exception, Ctrl-C, SIGTERM) every
  worker is told to finish; an idle one exits on its own, one still working
  gets SIGTERM, which it turns into ``KeyboardInterrupt`` (once), so its
  clean-up (``finally`` blocks, ``atexit`` handlers such as stopping its own
  simulation pool) runs; the parent waits for them (killing any still there
  after :data:`STOP_TIMEOUT_S`). Workers ignore SIGINT (Ctrl-C reaches the
  whole process group): the parent decides. On Linux a worker also gets
  SIGTERM when the parent dies without clean-up (:func:`die_with_parent`),
  so no worker outlives it (a forkserver worker's parent is the server, so
  a thread of it watches the owner instead: :func:`die_with`).

The forkserver is one per process: the preload list of the first
:func:`process_map` (or other forkserver user) that starts it is the one it
keeps.
"""
from __future__ import annotations

import atexit
import ctypes
import multiprocessing as mp
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Sequence, TypeVar

from utils.errors import EXIT_SIGNAL
from utils.fileio import pid_alive

T = TypeVar("T")
R = TypeVar("R")

STOP_TIMEOUT_S = 60.0
"""Seconds a stopped worker may take to clean up (finish a running simulation) before it is killed."""

_PR_SET_PDEATHSIG = 1


class WorkerError(RuntimeError):
    """A worker process died, or raised an exception that cannot be sent to the parent
    (the message holds its type, message and the worker's traceback)."""


_slot: int | None = None
"""This worker's slot (0 .. processes - 1), None outside a worker."""


def worker_slot() -> int | None:
    """The slot (0 .. processes - 1) of the worker process calling it, None in
    any other process: e.g. the terminal line of the worker's progress bar."""
    return _slot


def die_with_parent(parent_pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask Linux to send this process ``sig`` when its parent (``parent_pid``,
    the process that started it) dies; exit at once if it already has. Does
    nothing where ``prctl(PR_SET_PDEATHSIG)`` does not exist (there the
    parent's clean-up alone stops its children)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def die_with(owner_pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """Get ``sig`` when the process ``owner_pid`` that asked for this one ends:
    :func:`die_with_parent` when it is this process's parent (``fork``,
    ``spawn``), else :func:`die_with_owner` (a ``forkserver`` child, whose
    parent is the server: it lives on while any of its children hold its pipe,
    so it cannot be what ends them)."""
    if os.getppid() == owner_pid:
        die_with_parent(owner_pid, sig)
    else:
        die_with_owner(owner_pid, sig)


def die_with_owner(owner_pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send this process ``sig`` when the process ``owner_pid`` (not
    necessarily its parent) ends: a daemon thread waits on a pidfd of it (or,
    without pidfd support, checks every half second); exit at once if it has
    already ended."""
    try:
        fd: int | None = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None

    def wait() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while pid_alive(owner_pid):
                time.sleep(0.5)
        os.kill(os.getpid(), sig)

    threading.Thread(target=wait, name=f"watch-owner-{owner_pid}", daemon=True).start()


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM in a worker: unwind once as ``KeyboardInterrupt`` (clean-up runs);
    a second SIGTERM (the parent dying meanwhile) must not interrupt the clean-up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _error_message(err: BaseException, what: str) -> tuple[str, Any]:
    """``("error", payload)`` for the parent: the pickled exception with the
    worker's traceback as a note, else its type name and message."""
    tb = "".join(traceback.format_exception(err)).rstrip()
    try:
        err.add_note(f"(raised in a worker process while {what}; its traceback:)\n{tb}")
        blob = pickle.dumps(err)
        pickle.loads(blob)  # an exception whose __init__ needs other arguments fails here, not in the parent
        return "error", blob
    except Exception:
        return "error", f"{type(err).__name__}: {err}\n{tb}"


def _serve(slot: int, conn: Connection, owner_pid: int, fn: Callable[[Any], Any],
           initializer: Callable[..., None] | None, initargs: tuple,
           finalizer: Callable[[], None] | None, forked: bool) -> None:
    """Worker ``slot`` of the process ``owner_pid``: run ``initializer`` once,
    then ``fn`` on every ``(index, item)`` the owner sends until it sends None;
    answers ``("done", result)`` or ``("error", payload)`` per item (and once
    for a failed initializer); runs ``finalizer`` last, however it ends, then
    (``forked``) the ``atexit`` handlers."""
    global _slot
    _slot = slot
    die_with(owner_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _serve_items(conn, fn, initializer, initargs)
    finally:
        try:
            if finalizer is not None:
                finalizer()
        finally:
            if forked:  # a forked worker ends in os._exit, which skips atexit: run the handlers
                # here, so it cleans up as a spawned worker (a new interpreter) does at exit
                atexit._run_exitfuncs()


def _serve_items(conn: Connection, fn: Callable[[Any], Any], initializer: Callable[..., None] | None,
                 initargs: tuple) -> None:
    try:
        try:
            if initializer is not None:
                initializer(*initargs)
        except Exception as err:
            conn.send(_error_message(err, "starting"))
            return
        while (task := conn.recv()) is not None:
            index, item = task
            try:
                conn.send(("done", fn(item)))
            except Exception as err:
                conn.send(_error_message(err, f"working on item {index} ({item!r})"))
                return
    except (KeyboardInterrupt, EOFError, BrokenPipeError):  # stopped by the parent, or the parent is gone
        sys.exit(EXIT_SIGNAL)


def _raise(payload: Any) -> None:
    if isinstance(payload, bytes):
        raise pickle.loads(payload) from None
    raise WorkerError(payload)


def process_map(fn: Callable[[T], R], items: Sequence[T], processes: int,
                initializer: Callable[..., None] | None = None, initargs: tuple = (),
                finalizer: Callable[[], None] | None = None, name: str = "worker",
                preload: Sequence[str] = (), context: str = "forkserver") -> Iterator[R]:
    """``fn(item)`` for every item, computed in ``min(processes, len(items))``
    worker processes and yielded in item order (see the module docstring for
    errors and stopping). ``fn``, ``initializer``, ``initargs`` and
    ``finalizer`` must pickle (module-level functions). ``finalizer`` runs
    last in every worker, however it ends: stop there what the worker started
    (a process pool: multiprocessing joins a worker's child processes before
    ``atexit`` handlers run, so a pool stopped only at exit hangs the worker).
    ``name`` names the processes. ``context`` is ``"forkserver"`` (workers
    forked from a server that imported the main module and ``preload``) or
    ``"spawn"`` (each worker a new interpreter; ``preload`` unused)."""
    if processes < 1:
        raise ValueError(f"need at least one process, got {processes}")
    if context not in ("forkserver", "spawn"):
        raise ValueError(f"context must be 'forkserver' or 'spawn', got {context!r}")
    ctx = mp.get_context(context)
    if context == "forkserver":
        ctx.set_forkserver_preload(["__main__", *preload])
    workers: list[tuple[Any, Connection]] = []
    busy: dict[int, int] = {}          # worker slot -> index of the item it works on
    finished: dict[int, R] = {}        # results not yet yielded
    failure: tuple[int, Any] | None = None  # (item index, error payload) of the first error
    next_index, emitted = 0, 0

    def dispatch(slot: int) -> None:
        nonlocal next_index
        if failure is None and next_index < len(items):
            workers[slot][1].send((next_index, items[next_index]))
            busy[slot] = next_index
            next_index += 1

    try:
        for slot in range(min(processes, len(items))):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(slot, there, os.getpid(), fn, initializer, initargs, finalizer,
                                                   context != "spawn"),
                               name=f"{name}-{slot}")
            proc.start()
            there.close()
            workers.append((proc, here))
        for slot in range(len(workers)):
            dispatch(slot)
        while emitted < len(items):
            if emitted in finished:
                yield finished.pop(emitted)
                emitted += 1
                continue
            if failure is not None and (failure[0] <= emitted or not busy):
                _raise(failure[1])
            by_conn = {workers[s][1]: s for s in busy}
            by_sentinel = {workers[s][0].sentinel: s for s in busy}
            for ready in wait([*by_conn, *by_sentinel]):
                slot = by_conn.get(ready, by_sentinel.get(ready))
                if slot not in busy:
                    continue
                proc, conn = workers[slot]
                if ready is conn or conn.poll():
                    try:
                        kind, payload = conn.recv()
                    except EOFError:
                        kind, payload = "died", None
                else:
                    kind, payload = "died", None
                index = busy.pop(slot)
                if kind == "done":
                    finished[index] = payload
                    dispatch(slot)
                    continue
                if kind == "died":
                    proc.join(STOP_TIMEOUT_S)  # a forkserver child's exit code arrives once the forkserver reaps it
                    payload = (f"{proc.name} (pid {proc.pid}) died with exit code {proc.exitcode} while working "
                               f"on item {index} ({items[index]!r})")
                if failure is None or index < failure[0]:
                    failure = (index, payload)
    finally:
        _stop(workers, busy=set(busy))


def _stop(workers: list[tuple[Any, Connection]], busy: set[int]) -> None:
    """Tell every worker to finish (None; an idle one exits and cleans up on
    its own), SIGTERM the ``busy`` slots (still working on an item), wait
    :data:`STOP_TIMEOUT_S` for each, then kill the stragglers."""
    for slot, (proc, conn) in enumerate(workers):
        try:
            conn.send(None)
        except (OSError, ValueError):
            pass
        if slot in busy and proc.is_alive():
            proc.terminate()
    for proc, conn in workers:
        proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
        conn.close()
