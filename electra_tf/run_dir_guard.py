"""Writing a run directory safely: its lock, the writability check, full disks, leftovers.

Every binary that writes a directory (training's model dir, fine-tuning's output dir) takes
its exclusive lock first (`lock_model_dir`), checks that it can write there before any work
(`check_writable_dir`), turns a failed write into one line (`output_error`) and removes what
crashed writers left behind (`remove_stale_temporaries`); docs/architecture.md, "The model
dir". `electra_tf.model_dir` re-exports all of it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re

from electra_tf import files


class ModelDirError(ValueError):
    """The model directory is missing something or disagrees with the run (one line)."""


def describe_error(error: BaseException) -> str:
    """The first line of an exception, with its type, for a one-line message."""
    text = str(getattr(error, "message", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}".rstrip(": ")


LOCK_FILE = ".lock"


class ModelDirLock:
    """An exclusive `flock` on `model_dir/.lock`, held until `release()` or process death.

    The OS drops the lock when the process dies (even by SIGKILL), so a crash never leaves a
    stale lock behind; the file itself stays (it holds the last owner's process id).
    """

    def __init__(self, model_dir: str, fd: int):
        self.model_dir = model_dir
        self._fd = fd

    def release(self) -> None:
        """Drops the lock (idempotent)."""
        if self._fd is not None:
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def lock_model_dir(model_dir: str, *, flag: str = "--model_dir") -> ModelDirLock:
    """Takes the exclusive lock of a model dir (created if missing) for one writing run.

    Two runs writing one model dir would overwrite each other's checkpoints and metrics
    (docs/architecture.md, "The model dir"); the second one is refused instead.

    Args:
      model_dir: the directory a run is about to write.
      flag: the flag that named it (for the message).

    Returns:
      A `ModelDirLock`; use it as a context manager or call `release()`.

    Raises:
      ModelDirError: another live process holds the lock, or the directory cannot be
        created or locked.
    """
    import fcntl

    check_writable_dir(model_dir, flag=flag)
    path = os.path.join(model_dir, LOCK_FILE)
    try:
        os.makedirs(model_dir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, files.FILE_MODE)
    except OSError as e:
        raise output_error(e, flag=flag, path=model_dir) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (process {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ModelDirError(
                f"{flag}={model_dir} is in use by another run{holder}: two runs would "
                "overwrite each other's checkpoints; wait for it to finish, stop it, or "
                "pass another directory") from None
        raise ModelDirError(f"{flag}={model_dir}: cannot lock {path} ({e.strerror}); use a "
                            "directory on a local (or NFSv4) filesystem") from None
    with contextlib.suppress(OSError):  # Who holds it, for the next run's message.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return ModelDirLock(model_dir, fd)


def check_writable_dir(path: str, *, flag: str = "--model_dir") -> None:
    """Refuses an output directory that is a file or cannot be created or written.

    Checked before any work (docs/architecture.md, "The model dir"): the directory, or the
    nearest existing folder above a directory still to be created, must be a writable
    directory.

    Raises:
      ModelDirError: one line naming the path and the fix.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise ModelDirError(f"{flag}={path} is a file; pass a directory (it is created if "
                            "missing)")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ModelDirError(f"{flag}={path} cannot be created: {existing} is a file; pass a "
                            "directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == os.path.abspath(path) else \
            f"cannot be created: {existing} is not writable"
        raise ModelDirError(f"{flag}={path} {what} (by this user, or a read-only "
                            "filesystem); pass a writable directory")


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(error: BaseException) -> bool:
    """Whether an exception from writing means the disk (or quota) is full."""
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
        return True
    message = str(getattr(error, "message", "") or error)
    return "No space left on device" in message or "Disk quota exceeded" in message


def output_error(error: BaseException, *, flag: str = "--model_dir", path: str = "",
                 what: str = "writing", then: str = "") -> "ModelDirError":
    """The one-line ModelDirError for a failed write under an output directory.

    Args:
      error: the OSError or TF error of the write.
      flag: the flag naming the output directory (for the fix).
      path: what was being written, when the error does not say.
      what: the action, e.g. "saving checkpoint".
      then: what is left and how to go on, replacing the default advice.
    """
    where = path or getattr(error, "filename", None) or "the output"
    if is_disk_full(error):
        reason = "the disk is full"
        fix = "free space (or pass a directory on a larger disk) and run the same command"
    elif isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM,
                                                        errno.EROFS):
        reason = "permission denied"
        fix = f"make it writable or pass another {flag}"
    else:
        reason = getattr(error, "strerror", None) or describe_error(error)
        fix = f"check {flag} and run the same command again"
    return ModelDirError(f"{what} {where} failed: {reason}; {then or fix}")


# TF's own temporaries: `ckpt-N_temp/` (a sharded save's parts, renamed when complete) and
# `checkpoint.tmp<hex>` (its atomic rewrite of the `checkpoint` index); and the private save
# folder of a non-chief worker (`.worker-<i>-tmp/`, training/checkpointing.py).
_TF_TEMPORARY = re.compile(r"^([\w.]+-\d+_temp|checkpoint\.tmp[0-9a-f]+|\.worker-\d+-tmp)$")


def remove_stale_temporaries(model_dir: str) -> list[str]:
    """Removes what crashed writers left in a model dir; call it holding `lock_model_dir`.

    `*.tmp-PID` files and folders of dead processes (`files.remove_stale_temporaries`); TF's
    checkpoint temporaries (`ckpt-N_temp/`, `checkpoint.tmp<hex>`) and non-chief workers'
    save folders (`.worker-<i>-tmp/`), which carry no process id but are stale once the lock
    is held, since only the holder (and its workers, during its saves) writes here. The
    per-worker folders (`worker-<i>/`) and fine-tuning's `seed-<n>/` and `seed-<n>/best/`
    are cleaned the same way.

    Returns:
      The removed paths.
    """
    removed = []
    folders = [model_dir] + sorted(
        glob.glob(os.path.join(model_dir, "worker-*"))
        + glob.glob(os.path.join(model_dir, "seed-*"))
        + glob.glob(os.path.join(model_dir, "seed-*", "best")))
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        removed += files.remove_stale_temporaries(folder)
        for name in sorted(os.listdir(folder)):
            if not _TF_TEMPORARY.match(name):
                continue
            path = os.path.join(folder, name)
            files.remove_path(path)
            removed.append(path)
    return removed
