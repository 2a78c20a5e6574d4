"""Writing files so that no reader ever sees half of one, and where the package caches data.

Every file the package publishes (configs, vocabularies, sidecars, metrics, verification
reports, warm-up records) is written through `atomic_write`: the bytes go to a hidden
temporary file in the same directory, are flushed to disk, and the file is renamed over the
final name, so a crash leaves either the old file or the new one. Temporary names carry the
writer's process id (`.NAME.tmp-PID`), so that stale ones from dead processes can be found.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from typing import IO, Iterator

# Mode of published files: readable by everyone, like any file `open()` creates under the
# usual umask (tempfile.mkstemp would make them owner-only).
FILE_MODE = 0o644


def temp_path(path: str) -> str:
    """The hidden temporary name `atomic_write` uses for `path`: `.NAME.tmp-PID` beside it."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", *, encoding: str | None = "utf-8",
                 newline: str | None = "\n") -> Iterator[IO]:
    """Opens a temporary file beside `path` and renames it over `path` when the block ends.

    If the block raises, the temporary file is removed and `path` is left as it was.

    Args:
      path: the file to (re)write; its directory is created if missing.
      mode: "w" (text) or "wb" (bytes).
      encoding: text encoding (ignored for "wb").
      newline: newline translation for text mode ("\\n": the same bytes on every platform).

    Example:

    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "hello.txt")
    >>> with atomic_write(target) as f:
    ...     _ = f.write("你好, world\\n")
    >>> open(target, encoding="utf-8").read()
    '你好, world\\n'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temp_path(path)
    kwargs = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically; see `atomic_write`."""
    with atomic_write(path) as f:
        f.write(text)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically; see `atomic_write`."""
    with atomic_write(path, "wb") as f:
        f.write(data)


# `.NAME.tmp-PID` (atomic_write) and any other temporary name ending in `.tmp-PID`.
_TEMP_NAME = re.compile(r"\.tmp-(\d+)$")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Exists, owned by someone else.
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Removes the temporaries (`*.tmp-PID`, files or folders) of dead processes in `directory`.

    A process killed with SIGKILL (or by a full disk) cannot clean up after itself; the next
    run calls this at start. Only names whose PID is not a live process on this machine are
    removed, so a concurrent writer's temporary survives; callers on a shared filesystem
    hold the directory's lock first (see `electra_tf.model_dir.lock_model_dir`).

    Returns:
        The removed paths.

    Example:

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> open(os.path.join(d, ".vocab.txt.tmp-999999999"), "w").close()
    >>> open(os.path.join(d, f".mine.tmp-{os.getpid()}"), "w").close()
    >>> [os.path.basename(p) for p in remove_stale_temporaries(d)]
    ['.vocab.txt.tmp-999999999']
    """
    removed = []
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        match = _TEMP_NAME.search(name)
        if not match or int(match.group(1)) == os.getpid() or process_alive(int(match.group(1))):
            continue
        path = os.path.join(directory, name)
        remove_path(path)
        removed.append(path)
    return removed


def remove_path(path: str) -> None:
    """Removes a file, link or folder tree at `path`, ignoring what is already gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def default_cache_dir() -> str:
    """Where the package caches derived data (the embedded corpus, calibration text).

    `$ELECTRA_TF_CACHE` if set, else `$XDG_CACHE_HOME/electra_tf`, else
    `~/.cache/electra_tf`. Every tool's `--cache_dir` default comes from here.

    Example:

    >>> os.environ["ELECTRA_TF_CACHE"] = "/tmp/electra_cache"
    >>> default_cache_dir()
    '/tmp/electra_cache'
    >>> del os.environ["ELECTRA_TF_CACHE"]
    """
    explicit = os.environ.get("ELECTRA_TF_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "electra_tf")
