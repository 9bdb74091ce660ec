"""Atomic file writing: every output is written to a temporary file in the same
folder and renamed over its final name, so a crash never leaves a partial file
under a final name."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from utils.errors import BigeError, OutputWriteError, describe_os_error

_UMASK = os.umask(0)
os.umask(_UMASK)


class OutputExistsError(BigeError, FileExistsError):
    """Raised when a result would be overwritten without permission."""


TEMP_SUFFIX = ".tmp"
"""Suffix of the temporary siblings :func:`atomic_open` writes (``.<name>.<random>.tmp``)."""

_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path``
    when the block ends without error, delete it otherwise.

    A folder that cannot be created or written, a full disk or a file-size
    limit raise :class:`OutputWriteError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        if err.errno in _WRITE_ERRNOS | {errno.EEXIST, errno.ENOTDIR, errno.ENOENT}:
            raise OutputWriteError(f"cannot write {path}: {describe_os_error(err)}") from None
        raise
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give results the usual mode
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if err.errno in _WRITE_ERRNOS and err.filename in (None, tmp):
            raise OutputWriteError(f"cannot write {path}: {err.strerror or err}") from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted :func:`atomic_open` left in
    ``folder`` (call it only while holding the folder's :class:`RunLock`, so
    no live writer owns them). Returns the files removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.glob(f".*{TEMP_SUFFIX}"):  # files of atomic_open, folders of staged subject results
            with contextlib.suppress(FileNotFoundError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
    return removed


class RunLockedError(BigeError, RuntimeError):
    """Another live process writes into the same run folder."""


class RunLock:
    """One writer per run folder: an exclusive ``fcntl`` lock on the sibling
    file ``.<folder>.lock`` (outside the folder, so ``--overwrite`` deleting
    the folder cannot delete a live writer's lock). The kernel releases the
    lock when its process dies, so a killed run never holds it forever; the
    file records the holder's pid for the message.

        with RunLock(folder):
            ...
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder.parent / f".{self.folder.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as err:
            raise OutputWriteError(f"cannot create the run folder {self.folder}: {describe_os_error(err)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(f"{self.folder}: another process (pid {holder}) is writing this run; wait for it "
                                 f"or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; the file stays (unlinking it would race)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically. Returns the path."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN written as null)."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False)
    return atomic_write_text(path, text + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)
    return Path(path)


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Save arrays as an uncompressed ``.npz`` atomically."""
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically. The bytes are built in memory
    first, so a full disk surfaces as :class:`OutputWriteError` naming ``path``
    (torch's own writer would turn it into an anonymous ``RuntimeError``)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getbuffer())
    return Path(path)


@contextlib.contextmanager
def staged_dir(folder: str | os.PathLike) -> Iterator[Path]:
    """Build a folder of results under a temporary sibling and put it in place
    of ``folder`` only when the block ends without error, so ``--overwrite``
    never deletes old results before the new ones are complete. A failed or
    interrupted block leaves ``folder`` as it was; staging folders left by a
    dead process are removed on the next call.

        with staged_dir(out) as tmp:
            write(tmp / "errors.csv", ...)
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.staging-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    staging = folder.parent / f".{folder.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def exclusive_run(folder: str | os.PathLike, enabled: bool = True) -> Iterator[list[Path]]:
    """Hold ``folder``'s :class:`RunLock` for the block and first delete the
    temporary files a dead writer left there; yields the files removed. With
    ``enabled`` false (a non-main rank) does nothing."""
    if not enabled:
        yield []
        return
    with RunLock(folder):
        yield remove_stale_temps(folder)


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Raise :class:`OutputExistsError` if ``path`` exists (and is not an empty
    folder) and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        if path.is_dir() and not any(path.iterdir()):
            return path
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")
    return path


def _json_safe(obj: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats to JSON-friendly values."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if np.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
