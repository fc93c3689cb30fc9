"""Atomic file writes, so that a crash or a full disk never leaves a truncated checkpoint behind.

:func:`atomic_open` writes into a temporary file beside the target (``.<name>.<pid>.tmp``), flushes and fsyncs it,
then renames it over the target with ``os.replace`` (atomic on POSIX and Windows within one file system). Until the
rename the old file is untouched; when the write fails the temporary file is removed and the error propagates.

:class:`AtomicLocalBackend` is mmengine's ``LocalBackend`` with atomic ``put`` / ``put_text``, registered as the
file backend ``'atomic_local'``. mmengine's ``CheckpointHook`` writes checkpoints through the backend named in its
``backend_args``; ``configs/_base_/default_runtime.py`` sets::

    default_hooks = dict(checkpoint=dict(type='CheckpointHook', backend_args=dict(backend='atomic_local')))

Example:
    >>> with atomic_open('work_dirs/run/state.json', 'w') as file:
    ...     file.write('{}')
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mmengine.fileio import LocalBackend, register_backend

TEMP_SUFFIX = '.tmp'
BACKEND_NAME = 'atomic_local'


def temp_path_for(path: str | Path) -> str:
    """The temporary file that :func:`atomic_open` writes before renaming it to ``path``.

    Args:
        path: The target file.

    Returns:
        ``<dir>/.<name>.<pid>.tmp``: hidden, beside the target (same file system), unique per process.
    """
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.{os.getpid()}{TEMP_SUFFIX}')


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = 'wb', encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` only when the block ends without error.

    Missing parent folders are created. On success the data is flushed and fsynced, the file renamed over
    ``path`` and the folder fsynced, so after a crash ``path`` holds either its old or its new content. On error
    (``OSError`` such as ``ENOSPC``, or any exception raised inside the block) the temporary file is removed and
    ``path`` keeps its old content.

    Args:
        path: Target file.
        mode: ``'wb'`` or ``'w'``.
        encoding: Text encoding with ``mode='w'``.

    Yields:
        The open temporary file.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r} for {path}.")
    target = osp.abspath(path)
    os.makedirs(osp.dirname(target), exist_ok=True)
    temp = temp_path_for(target)
    try:
        with open(temp, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    _fsync_folder(osp.dirname(target))


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_temp_files(folder: str | Path) -> list[str]:
    """Delete the temporary files that writes interrupted by a crash (e.g. SIGKILL) left in ``folder``.

    Only files named like :func:`temp_path_for`'s, directly in ``folder``, whose writing process no longer runs
    are removed.

    Args:
        folder: A folder, e.g. a work dir; nothing happens when it does not exist.

    Returns:
        The removed paths.
    """
    if not osp.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        pid = _writer_pid(name)
        if pid is None or _process_exists(pid):
            continue
        path = osp.join(folder, name)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
            removed.append(path)
    return removed


def _writer_pid(name: str) -> int | None:
    """The writer's process id encoded in a temporary file name, None for other names."""
    if not (name.startswith('.') and name.endswith(TEMP_SUFFIX)):
        return None
    pid = name[:-len(TEMP_SUFFIX)].rpartition('.')[2]
    return int(pid) if pid.isdigit() else None


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@register_backend(BACKEND_NAME, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local-disk backend whose writes are atomic (see :func:`atomic_open`).

    Use it with ``backend_args=dict(backend='atomic_local')`` wherever mmengine takes ``backend_args`` (e.g.
    ``CheckpointHook``). Reading, listing and removing are ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath: str | Path) -> None:
        """Write bytes to ``filepath`` atomically, creating missing folders.

        Args:
            obj: Data to write.
            filepath: Target file.
        """
        with atomic_open(filepath, 'wb') as file:
            file.write(obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically, creating missing folders.

        Args:
            obj: Text to write.
            filepath: Target file.
            encoding: Text encoding.
        """
        with atomic_open(filepath, 'w', encoding=encoding) as file:
            file.write(obj)
