"""Checkpoints that load with ``torch.load(weights_only=True)``.

mmengine 0.10.7 saves numpy arrays and scalars (inside ``HistoryBuffer`` objects of the message hub) and loads
with a bare ``torch.load``; on torch >= 2.6 that refuses such checkpoints, and turning ``weights_only`` off would
let a crafted file run code. mmad keeps ``weights_only=True`` and instead changes what is saved:

- :func:`to_safe_checkpoint` turns numpy values into tensors / Python scalars and each ``HistoryBuffer`` into a
  tagged dict of tensors (done by ``SafeCheckpointHook.before_save_checkpoint``);
- :func:`restore_history_buffers` turns the tagged dicts back (``SafeCheckpointHook.after_load_checkpoint``);
- :func:`load_from_local_safely` replaces mmengine's loader for local paths: ``weights_only=True`` with the small
  allow-list :data:`SAFE_GLOBALS`, and a clear :class:`UnsafeCheckpointError` for anything else. A file that is no
  checkpoint at all (a text file, an empty or a truncated file) is a :class:`NotACheckpointError` naming it;
- :func:`update_checkpoint_state` rewrites some state-dict entries of a saved checkpoint atomically;
- :func:`publish_checkpoint` keeps what inference needs (``meta``, ``state_dict``) and names the file by its hash.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

from .fileio import atomic_open

#: Globals, beyond torch's own tensor/storage types, that a checkpoint may reference. Plain data only.
SAFE_GLOBALS: list[Callable] = [OrderedDict]

_HISTORY_BUFFER_TAG = '__mmad_history_buffer__'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint refers to a global that ``weights_only=True`` does not allow (it could run code)."""


class NotACheckpointError(ValueError):
    """A file given as a checkpoint is none: empty, truncated, or of another kind (text, image...)."""


#: First bytes of a ``torch.save`` file: a zip archive (torch >= 1.6) or a pickle (legacy format, protocol >= 2).
ZIP_MAGIC = b'PK\x03\x04'
PICKLE_MAGIC = b'\x80'


def to_safe_checkpoint(obj: Any) -> Any:
    """Return ``obj`` with every value that needs a non-allow-listed global replaced by plain data.

    numpy arrays become tensors, numpy scalars Python scalars, ``HistoryBuffer`` a tagged dict of tensors.
    Containers are rebuilt with the same type (dict, OrderedDict, list, tuple).
    """
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {_HISTORY_BUFFER_TAG: True, 'log_history': torch.from_numpy(np.asarray(log_history, np.float64)),
                'count_history': torch.from_numpy(np.asarray(count_history, np.float64)),
                'max_length': int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((key, to_safe_checkpoint(value)) for key, value in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(to_safe_checkpoint(value) for value in obj)
    return obj


def restore_history_buffers(obj: Any) -> Any:
    """Inverse of the ``HistoryBuffer`` conversion of :func:`to_safe_checkpoint`."""
    if isinstance(obj, dict):
        if obj.get(_HISTORY_BUFFER_TAG, False):
            return HistoryBuffer(obj['log_history'].numpy().tolist(), obj['count_history'].numpy().tolist(),
                                 max_length=obj['max_length'])
        return type(obj)((key, restore_history_buffers(value)) for key, value in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(restore_history_buffers(value) for value in obj)
    return obj


def load_from_local_safely(filename: str, map_location: str | torch.device | None = None) -> dict:
    """Load a local checkpoint with ``weights_only=True`` and the allow-list :data:`SAFE_GLOBALS`.

    Args:
        filename: Path of the checkpoint.
        map_location: As in :func:`torch.load`.

    Returns:
        The loaded checkpoint.

    Raises:
        FileNotFoundError: The file does not exist.
        NotACheckpointError: The file is empty, truncated or not a ``torch.save`` file.
        UnsafeCheckpointError: The pickle refers to a global outside the allow-list; nothing of it was executed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename} can not be found.')
    check_is_checkpoint_file(filename)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except EOFError:
        raise NotACheckpointError(f'Checkpoint {filename} is truncated: it ends before the end of its data '
                                  f'({osp.getsize(filename)} bytes); the write was interrupted or the copy is '
                                  'incomplete.') from None
    except pickle.UnpicklingError as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        except Exception:  # noqa: BLE001 - the listing is only a hint for the message
            unsafe = []
        unsafe = [name for name in unsafe if name not in {f'{g.__module__}.{g.__qualname__}' for g in SAFE_GLOBALS}]
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename}: it refers to global(s) {unsafe or "(see below)"} that '
            'torch.load(weights_only=True) does not allow, because unpickling them can run arbitrary code. '
            'mmad writes checkpoints that need none of them. If you trust this file, load it yourself with '
            'torch.load(..., weights_only=False) and re-save only its tensors and plain data. '
            f'Original error: {str(err).splitlines()[0]}') from None


def check_is_checkpoint_file(filename: str) -> None:
    """Raise a one-line :class:`NotACheckpointError` unless ``filename`` starts like a ``torch.save`` file.

    Reads the first bytes only (and, for a zip archive, its central directory at the end).

    Args:
        filename: An existing file.

    Raises:
        NotACheckpointError: The file is empty, a truncated zip archive, or neither a zip archive nor a pickle.
    """
    size = osp.getsize(filename)
    if size == 0:
        raise NotACheckpointError(f'Checkpoint {filename} is empty (0 bytes): not a checkpoint; the write was '
                                  'interrupted or the file was created empty.')
    with open(filename, 'rb') as file:
        head = file.read(64)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(filename):
            raise NotACheckpointError(f'Checkpoint {filename} is truncated: a zip archive without its end '
                                      f'(central directory), {size} bytes; the write was interrupted or the copy '
                                      'is incomplete.')
        return
    if not head.startswith(PICKLE_MAGIC):
        raise NotACheckpointError(f'{filename} is not a checkpoint: {_describe_content(head)}, while a torch.save '
                                  'file starts with a zip or pickle header.')


def _describe_content(head: bytes) -> str:
    """A few words on what a file starting with ``head`` is."""
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return f'binary data starting with {head[:8]!r}'
    first_line = text.strip().splitlines()[0] if text.strip() else ''
    return f'a text file starting with {first_line[:40]!r}'


def update_checkpoint_state(filename: str, state: dict[str, torch.Tensor]) -> None:
    """Replace entries of a saved checkpoint's ``state_dict`` and rewrite the file atomically.

    Everything else (meta, optimiser, schedulers, message hub) is kept as it is. Until the rename the old file is
    untouched, so a failure leaves the checkpoint as it was.

    Args:
        filename: A checkpoint written by mmad (loadable by :func:`load_from_local_safely`).
        state: State-dict key -> tensor (on the CPU) to set.
    """
    checkpoint = load_from_local_safely(filename, map_location='cpu')
    checkpoint['state_dict'].update(state)
    with atomic_open(filename, 'wb') as file:
        torch.save(checkpoint, file)


#: Checkpoint entries that only resuming a training needs; a published checkpoint drops them.
TRAINING_ONLY_KEYS = ('optimizer', 'param_schedulers', 'message_hub')
HASH_LENGTH = 8


def publish_checkpoint(in_file: str, out_file: str) -> str:
    """Write ``in_file`` without its training-only state, named ``<out stem>-<first 8 hex of its SHA-256>.pth``.

    The optimiser state (Adam's two moments double the size), the parameter schedulers and the message hub are
    dropped; ``meta`` (modalities, branches, teacher, image size, config) and ``state_dict`` (weights and the fitted
    aggregator state) are kept, so the result loads strictly for testing and inference but cannot be resumed.

    Args:
        in_file: A checkpoint written by mmad.
        out_file: Output path; a ``.pth`` suffix is replaced by ``-<hash8>.pth``.

    Returns:
        The path written.
    """
    checkpoint = load_from_local_safely(in_file, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise ValueError(f'{in_file} holds no state_dict: expected a checkpoint written by mmad\'s training.')
    published = {key: value for key, value in checkpoint.items() if key not in TRAINING_ONLY_KEYS}
    stem = out_file[:-len('.pth')] if out_file.endswith('.pth') else out_file
    temp = f'{stem}.unhashed.pth'
    with atomic_open(temp, 'wb') as file:
        torch.save(published, file)
    digest = hashlib.sha256()
    with open(temp, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    final = f'{stem}-{digest.hexdigest()[:HASH_LENGTH]}.pth'
    os.replace(temp, final)
    return final


def register_safe_checkpoint_loader() -> None:
    """Make :func:`load_from_local_safely` mmengine's loader for local paths (``load_from``, resume, test)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safely, force=True)
