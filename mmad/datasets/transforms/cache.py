"""A disk cache for the expensive load-and-derive steps of a pipeline (xyz tiff -> plane fit -> depth/normals).

:class:`CachedTransforms` wraps pipeline steps that read files and derive arrays from them. The first time a
sample passes, the steps run and the arrays they produce (``keys``) are written to one ``.npz`` entry; later
passes (every epoch, every run) read that entry instead. An entry is keyed by

- the files of the sample: real path, size and modification time (ns) of each ``*_path`` of the results;
- the wrapped steps' parameters (their ``repr``, which every mmad transform writes with all its arguments);
- the code that computes them (the source files of the wrapped steps' package), the numpy and OpenCV versions
  and :data:`CACHE_FORMAT_VERSION`;

so a changed file, parameter or algorithm is computed again, never served stale. Entries are written atomically
(:func:`mmad.utils.fileio.write_bytes`: a temporary file renamed over the entry), so dataloader workers and
concurrent runs filling the same entry never read a torn file; an unreadable entry is computed again with a
warning, and an entry that cannot be written (full or read-only disk) only costs the speed-up.

Layout: ``<cache_dir>/<parameters hash>/<sample hash>.npz``, with ``<cache_dir>/<parameters hash>/transforms.txt``
naming the steps and parameters of the folder; deleting a folder (or the whole cache) is always safe. The
temporary files of writers killed mid-write are removed by the next process that writes to the folder.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import os.path as osp
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS
from mmad.utils.fileio import remove_temp_files, write_bytes, write_text

from .loading import LOADED_SIZES, check_same_size

CACHE_FORMAT_VERSION = 1
"""Version of the entry format; part of every key, so raising it retires every existing entry."""

CACHE_DIR_ENV = 'MMAD_CACHE_DIR'
"""Environment variable naming the default cache folder."""

META_KEY = '__meta__'
"""Name of the JSON meta information (the loaded sizes) inside an entry."""

_DEFAULT_REPR = re.compile(r' at 0x[0-9a-fA-F]+>')


def default_cache_dir() -> Path:
    """The cache folder used when none is given: ``$MMAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmad/derived``.

    Returns:
        The folder (``~/.cache/mmad/derived`` when neither variable is set).
    """
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache').expanduser() / 'mmad' / 'derived'


def _code_digest(transforms: Sequence[Callable]) -> str:
    """SHA-256 of the ``.py`` files of the packages that define ``transforms`` (their helpers live beside them)."""
    folders = set()
    for transform in transforms:
        source = inspect.getsourcefile(type(transform))
        if source:
            folders.add(osp.dirname(osp.realpath(source)))
    digest = hashlib.sha256()
    for folder in sorted(folders):
        for name in sorted(os.listdir(folder)):
            if name.endswith('.py'):
                with open(osp.join(folder, name), 'rb') as file:
                    digest.update(name.encode() + b'\0' + file.read())
    return digest.hexdigest()


def uncached_steps(pipeline: Sequence[dict]) -> list[dict]:
    """The step configs of a pipeline with each ``CachedTransforms`` replaced by the steps it wraps, in order.

    Args:
        pipeline: Transform configs, e.g. ``cfg.test_dataloader.dataset.pipeline``.

    Returns:
        The same configs (not copies), without the cache wrappers.
    """
    steps = []
    for step in pipeline:
        steps.extend(uncached_steps(step['transforms']) if step.get('type') == 'CachedTransforms' else [step])
    return steps


@TRANSFORMS.register_module()
class CachedTransforms(BaseTransform):
    """Run ``transforms`` once per sample and keep their output arrays ``keys`` in a disk cache.

    Only ``keys`` leave the wrapper, whether the entry was computed or read: intermediate results of the wrapped
    steps (e.g. ``xyz``, ``points``, ``foreground``) are dropped, so a cache hit and a miss give the same results.
    The sizes the wrapped loaders record (``loaded_sizes``, see :func:`~mmad.datasets.transforms.check_same_size`)
    are kept in the entry and checked again on every pass, so a later loader (the mask) still compares its size
    with the point cloud. The wrapped steps must depend only on the files named by the ``source_keys`` and on
    their parameters (loaders and what derives from them), and those files must be on the local disk (any other
    path is computed without the cache).

    Required Keys:
        - every key the wrapped steps need; the ``source_keys``.

    Added Keys:
        - every key of ``keys``: the arrays the wrapped steps produce, identical bit for bit with and without
          the cache.
        - loaded_sizes, ori_shape (when absent): as the wrapped loaders add them.

    Args:
        transforms: The steps to cache (configs or callables), run in order; each must have a ``repr`` stating its
            parameters (every mmad transform has), which keys the cache.
        keys: Result keys of the numpy arrays to keep, e.g. ``('depth', 'normals')``.
        cache_dir: Cache folder; None is :func:`default_cache_dir` (``$MMAD_CACHE_DIR`` or
            ``~/.cache/mmad/derived``); False runs the steps without a cache. It must lie outside the dataset
            tree (checked by mmad's datasets when they are built, see :meth:`check_outside`).
        source_keys: Result keys of the files the steps read; None takes every ``*_path`` key with a value.

    Example:
        >>> dict(type='CachedTransforms', keys=('depth', ), transforms=[
        ...     dict(type='LoadXYZFromFile'), dict(type='XYZToDepth', size=256)])
    """

    def __init__(self,
                 transforms: Sequence[dict | Callable],
                 keys: Sequence[str],
                 cache_dir: str | Path | bool | None = None,
                 source_keys: Sequence[str] | None = None):
        if isinstance(keys, str) or not keys:
            raise ValueError(f'keys must be a non-empty sequence of result keys, got {keys!r}')
        if META_KEY in keys:
            raise ValueError(f'keys must not contain {META_KEY!r}, the name of the entry\'s meta information')
        if cache_dir is True:
            raise ValueError('cache_dir must be a folder, None (the default folder) or False (no cache), got True')
        self.transforms = [TRANSFORMS.build(transform) if isinstance(transform, dict) else transform
                           for transform in transforms]
        if not self.transforms:
            raise ValueError('transforms must hold at least one step to cache')
        for transform in self.transforms:
            if not callable(transform) or _DEFAULT_REPR.search(repr(transform)):
                raise ValueError(f'{transform!r} cannot be cached: a cached step must be a transform whose repr '
                                 'states its parameters (define __repr__), which keys the cache')
        self.keys = tuple(keys)
        self.source_keys = None if source_keys is None else tuple(source_keys)
        self.cache_dir = None if cache_dir is False else Path(default_cache_dir() if cache_dir is None else cache_dir)
        description = dict(format=CACHE_FORMAT_VERSION, transforms=[repr(t) for t in self.transforms],
                            keys=self.keys, source_keys=self.source_keys, code=_code_digest(self.transforms),
                            numpy=np.__version__, opencv=cv2.__version__)
        self._description = json.dumps(description, indent=1)
        self._parameters_digest = hashlib.sha256(self._description.encode()).hexdigest()
        self._described = False
        self._warned_write = False

    @property
    def entry_dir(self) -> Path | None:
        """Folder of this wrapper's entries (``<cache_dir>/<parameters hash>``); None without a cache."""
        return None if self.cache_dir is None else self.cache_dir / self._parameters_digest[:16]

    def check_outside(self, data_root: str | Path) -> None:
        """Refuse a cache folder inside the dataset tree ``data_root`` (the data stays as it was delivered).

        Args:
            data_root: Root folder of a dataset whose pipeline holds this wrapper; an empty root is not checked.

        Raises:
            ValueError: ``cache_dir`` is ``data_root`` or lies below it.
        """
        if self.cache_dir is None or not str(data_root):
            return
        cache, root = osp.realpath(self.cache_dir), osp.realpath(data_root)
        if osp.commonpath([cache, root]) == root:
            raise ValueError(f'CachedTransforms: cache_dir {self.cache_dir} is inside the dataset tree {data_root}; '
                             f'expected a folder outside it (the default is ${CACHE_DIR_ENV} or '
                             '~/.cache/mmad/derived)')

    def transform(self, results: dict) -> dict | None:
        """Add ``keys`` from the cache entry of the sample, computing and writing it when absent or unreadable."""
        entry = self._entry_path(results)
        cached = self._read(entry) if entry is not None else None
        if cached is None:
            cached = self._compute(results)
            if cached is None:
                return None
            if entry is not None:
                self._write(entry, *cached)
        arrays, sizes = cached
        for key, size in sizes.items():
            check_same_size(results, key, size, results.get(f'{key}_path'))
        results.update(arrays)
        return results

    def _entry_path(self, results: dict) -> Path | None:
        """The entry of the sample's files, None without a cache or when a file cannot be stat'ed (not local)."""
        if self.cache_dir is None:
            return None
        names = self.source_keys or sorted(key for key, value in results.items()
                                           if key.endswith('_path') and isinstance(value, (str, Path)) and value)
        digest = hashlib.sha256(self._parameters_digest.encode())
        for name in names:
            try:
                path = osp.realpath(results[name])
                stat = os.stat(path)
            except (KeyError, TypeError, OSError):
                return None
            digest.update(f'\0{name}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}'.encode())
        return self.entry_dir / f'{digest.hexdigest()[:32]}.npz'

    def _compute(self, results: dict) -> tuple[dict[str, np.ndarray], dict[str, tuple]] | None:
        """Run the wrapped steps on a copy of ``results``; return their ``keys`` arrays and the sizes they loaded."""
        loaded_before = dict(results.get(LOADED_SIZES, {}))
        work = dict(results, **{LOADED_SIZES: dict(loaded_before)})
        for transform in self.transforms:
            work = transform(work)
            if work is None:
                return None
        arrays = {}
        for key in self.keys:
            if key not in work:
                raise KeyError(f'CachedTransforms: the wrapped steps {[type(t).__name__ for t in self.transforms]} '
                               f'did not add {key!r} for {results.get("sample_name", "the sample")}; they added '
                               f'{sorted(work.keys() - results.keys())}')
            if not isinstance(work[key], np.ndarray) or work[key].dtype.hasobject:
                raise TypeError(f'CachedTransforms: {key!r} must be a numeric numpy array to be cached, got '
                                f'{type(work[key]).__name__}')
            arrays[key] = work[key]
        sizes = {key: tuple(size) for key, size in work[LOADED_SIZES].items() if key not in loaded_before}
        return arrays, sizes

    def _read(self, entry: Path) -> tuple[dict[str, np.ndarray], dict[str, tuple]] | None:
        """The arrays and loaded sizes of an entry; None when it is absent, or unreadable (with a warning)."""
        try:
            with np.load(entry, allow_pickle=False) as data:
                meta = json.loads(str(data[META_KEY]))
                arrays = {key: data[key] for key in self.keys}
            return arrays, {key: tuple(size) for key, size in meta[LOADED_SIZES].items()}
        except (FileNotFoundError, NotADirectoryError):
            return None
        except Exception as error:  # a damaged zip/npy raises many types; every one means "compute it again"
            warnings.warn(f'{entry}: unreadable cache entry ({type(error).__name__}: {error}); computing it again',
                          stacklevel=2)
            return None

    def _write(self, entry: Path, arrays: dict[str, np.ndarray], sizes: dict[str, tuple]) -> None:
        """Write an entry atomically; a failure warns once and leaves the sample uncached.

        The first write of the wrapper also names its parameters in ``transforms.txt`` and removes the temporary
        files that killed writers left in the folder.
        """
        buffer = io.BytesIO()
        np.savez(buffer, **arrays, **{META_KEY: np.array(json.dumps({LOADED_SIZES: sizes}))})
        try:
            if not self._described:
                description = entry.parent / 'transforms.txt'
                if not description.exists():
                    write_text(description, self._description + '\n')
                remove_temp_files(entry.parent)
                self._described = True
            write_bytes(entry, buffer.getvalue())
        except OSError as error:
            if not self._warned_write:
                warnings.warn(f'CachedTransforms: cannot write the cache entry {entry} ({error}); samples are '
                              'computed without the cache (further failures are not reported)', stacklevel=2)
                self._warned_write = True

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(transforms={self.transforms}, keys={self.keys}, '
                f'cache_dir={self.cache_dir}, source_keys={self.source_keys})')
