"""Checkpoints that load with ``torch.load(weights_only=True)``.

mmengine 0.10.7 saves numpy arrays and scalars (inside ``HistoryBuffer`` objects of the message hub) and loads
with a bare ``torch.load``; on torch >= 2.6 that refuses such checkpoints, and turning ``weights_only`` off would
let a crafted file run code. mmad keeps ``weights_only=True`` and instead changes what is saved:

- :func:`to_safe_checkpoint` turns numpy values into tensors / Python scalars and each ``HistoryBuffer`` into a
  tagged dict of tensors (done by ``SafeCheckpointHook.before_save_checkpoint``);
- :func:`restore_history_buffers` turns the tagged dicts back (``SafeCheckpointHook.after_load_checkpoint``);
- :func:`load_from_local_safely` replaces mmengine's loader for local paths: ``weights_only=True`` with the small
  allow-list :data:`SAFE_GLOBALS`, and a clear :class:`UnsafeCheckpointError` for anything else.
"""
from __future__ import annotations

import os.path as osp
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

#: Globals, beyond torch's own tensor/storage types, that a checkpoint may reference. Plain data only.
SAFE_GLOBALS: list[Callable] = [OrderedDict]

_HISTORY_BUFFER_TAG = '__mmad_history_buffer__'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint refers to a global that ``weights_only=True`` does not allow (it could run code)."""


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
        UnsafeCheckpointError: The pickle refers to a global outside the allow-list; nothing of it was executed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename} can not be found.')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
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


def register_safe_checkpoint_loader() -> None:
    """Make :func:`load_from_local_safely` mmengine's loader for local paths (``load_from``, resume, test)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safely, force=True)
