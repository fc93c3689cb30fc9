"""Atomic file writes, so that a crash or a full disk never leaves a truncated checkpoint behind.

:func:`atomic_open` writes into a temporary file beside the target (``.<name>.<pid>.tmp``), flushes and fsyncs it,
then renames it over the target with ``os.replace`` (atomic on POSIX and Windows within one file system). Until the
rename the old file is untouched; when the write fails the temporary file is removed and the error propagates.

:class:`AtomicLocalBackend` is mmengine's ``LocalBackend`` with atomic ``put`` / ``put_text``, registered as the
file backend ``'atomic_local'``. mmengine's ``CheckpointHook`` writes checkpoints through the backend named in its
``backend_args``; ``configs/_base_/default_runtime.py`` sets::

    default_hooks = dict(checkpoint=dict(type='CheckpointHook', backend_args=dict(backend='atomic_local')))

:func:`write_bytes`, :func:`write_text` and :func:`write_image` are the one place where mmad writes its result
files (metrics, heatmaps): each write is atomic and a failure raises ``OSError`` naming the file (a full disk is
never a warning on stderr and a missing file).

Example:
    >>> with atomic_open('work_dirs/run/state.json', 'w') as file:
    ...     file.write('{}')
    >>> write_image('work_dirs/run/heatmaps/good_000.png', np.zeros((8, 8, 3), np.uint8))
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import cv2
import numpy as np
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


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`), creating missing folders.

    Args:
        path: Target file.
        data: The whole content.

    Raises:
        OSError: The write failed (e.g. ``ENOSPC``); the error keeps its ``errno`` and names ``path``. The target
            keeps its old content (or stays absent).
    """
    try:
        with atomic_open(path, 'wb') as file:
            file.write(data)
    except OSError as error:
        raise OSError(error.errno, f'{error.strerror or error} while writing', str(path)) from error


def write_text(path: str | Path, text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically; a failure raises ``OSError`` naming ``path`` (see :func:`write_bytes`).

    Args:
        path: Target file.
        text: The whole content.
        encoding: Text encoding.
    """
    write_bytes(path, text.encode(encoding))


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Encode an image with OpenCV in the format of the path's extension and write it atomically.

    Unlike ``cv2.imwrite``, which returns False (and libpng prints "Write Error") when the disk is full, every
    failure raises.

    Args:
        path: Target file; its extension (``.png``, ``.jpg``, ...) chooses the format.
        image: uint8 (H, W) grey or (H, W, 3) BGR image (or what OpenCV can encode in that format).

    Raises:
        ValueError: OpenCV cannot encode the image in that format.
        OSError: The write failed; the error names ``path`` (see :func:`write_bytes`).
    """
    extension = osp.splitext(str(path))[1]
    problem = f'cannot encode an image of shape {image.shape} and dtype {image.dtype} as {extension or "(none)"} ' \
              f'for {path}; expected an extension OpenCV writes (e.g. .png) and an image it can store'
    try:
        encoded, buffer = cv2.imencode(extension, image)
    except cv2.error as error:
        raise ValueError(f'{problem} (OpenCV: {str(error).strip()})') from None
    if not encoded:
        raise ValueError(problem)
    write_bytes(path, buffer.tobytes())


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
