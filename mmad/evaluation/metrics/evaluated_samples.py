"""``EvaluatedSamples``: the predictions and ground truth of a test set, kept in preallocated contiguous arrays.

``ADMetric`` appends each data sample as it comes. The maps of each source (the fused map and each branch) go into
one ``(capacity, H, W)`` array per source and the masks into one bool ``(capacity, H, W)`` array; scores, predicted
labels, ``mask_missing`` flags and native shapes into flat arrays; only the strings (name, defect type, ground-truth
path) are Python lists. When an array is full, every array grows by :data:`GROWTH` (in place: ``realloc``), so a
test set of N maps of H x W costs about ``N * H * W * itemsize`` bytes per source, and no Python object per sample
holds an array.

The parts kept on several ranks are merged in the order ``mmengine.dist.collect_results`` gives per-sample results:
the first sample of every rank in rank order, then the second of every rank, and so on, cut to the dataset size
(with mmengine's ``DefaultSampler`` this is the dataset order, without the samples that pad the last rank).

Example:
    >>> samples = EvaluatedSamples('float32')
    >>> samples.append(name='good/000.png', defect_type='good', gt_path=None, ori_shape=(800, 800),
    ...                pred_label=None, mask_missing=False, gt_mask=mask, scores={'fused': 0.3}, maps={'fused': m})
    >>> samples.maps('fused').shape, samples.gt_masks.shape
    ((1, 256, 256), (1, 256, 256))
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

GROWTH = 1.5
"""Factor by which the arrays grow when full."""
INITIAL_CAPACITY = 16
NO_PRED_LABEL = -1
"""``pred_labels`` entry of a sample without a decision (the model has no threshold)."""
UNKNOWN_SHAPE = -1
"""``ori_shapes`` entries of a sample without ``ori_shape``."""


class EvaluatedSamples:
    """Scores, maps and ground truth of the evaluated samples, in the order they were appended.

    Args:
        map_dtype: dtype the maps are kept in (``'float32'`` or ``'float16'``).
    """

    def __init__(self, map_dtype: str | np.dtype = 'float32') -> None:
        self.map_dtype = np.dtype(map_dtype)
        self.sources: tuple[str, ...] = ()
        self.names: list[str] = []
        self.defect_types: list[str] = []
        self.gt_paths: list[str | None] = []
        self._arrays: dict[str, np.ndarray] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Number of samples the arrays hold before they grow."""
        return len(self._arrays['gt_mask']) if self._arrays else 0

    @property
    def allocated_nbytes(self) -> int:
        """Bytes of every array at its capacity (the Python lists of strings not counted)."""
        return sum(array.nbytes for array in self._arrays.values())

    @property
    def gt_masks(self) -> np.ndarray:
        """Bool ground-truth masks at the maps' size, shape (N, H, W) (a view)."""
        return self._arrays['gt_mask'][:self._size]

    @property
    def pred_labels(self) -> np.ndarray:
        """int8 decisions (N,), :data:`NO_PRED_LABEL` where the sample has none (a view)."""
        return self._arrays['pred_label'][:self._size]

    @property
    def mask_missing(self) -> np.ndarray:
        """Bool (N,): the sample is anomalous but has no ground-truth mask (a view)."""
        return self._arrays['mask_missing'][:self._size]

    @property
    def ori_shapes(self) -> np.ndarray:
        """int64 native (H0, W0) of each sample, shape (N, 2), :data:`UNKNOWN_SHAPE` where unknown (a view)."""
        return self._arrays['ori_shape'][:self._size]

    def maps(self, source: str) -> np.ndarray:
        """Anomaly maps of one source (``fused`` or a branch) in ``map_dtype``, shape (N, H, W) (a view)."""
        return self._arrays[f'map/{source}'][:self._size]

    def scores(self, source: str) -> np.ndarray:
        """float64 image scores of one source, shape (N,) (a view)."""
        return self._arrays[f'score/{source}'][:self._size]

    def clear(self) -> None:
        """Forget every sample and release the arrays."""
        self.sources = ()
        self.names, self.defect_types, self.gt_paths = [], [], []
        self._arrays = {}
        self._size = 0

    def append(self, *, name: str, defect_type: str, gt_path: str | None, ori_shape: Sequence[int] | None,
               pred_label: int | None, mask_missing: bool, gt_mask: np.ndarray, scores: Mapping[str, float],
               maps: Mapping[str, np.ndarray]) -> None:
        """Copy one sample into the arrays.

        Args:
            name: Name of the sample in messages and ``scores.csv``.
            defect_type: Its defect type.
            gt_path: Path of its ground-truth mask, None without one.
            ori_shape: Its native (H0, W0), None when unknown.
            pred_label: The model's decision (0/1), None without one.
            mask_missing: Whether it is anomalous without a ground-truth mask.
            gt_mask: Ground truth at the maps' size, shape (H, W); non-zero is anomalous.
            scores: Image score of each source, ``fused`` first, then the branches.
            maps: Anomaly map of each source, shape (H, W), same keys as ``scores``.

        Raises:
            ValueError: Naming the sample, if its sources or map size differ from those of the first sample.
        """
        if not self._arrays:
            self._allocate(tuple(maps), gt_mask.shape, INITIAL_CAPACITY)
        if tuple(maps) != self.sources:
            raise ValueError(f'ADMetric: data sample {name} has maps {list(maps)}, but the first sample has '
                             f'{list(self.sources)}; expected the same branches for every sample.')
        if tuple(gt_mask.shape) != self.gt_masks.shape[1:]:
            raise ValueError(f'ADMetric: data sample {name} has maps and gt_mask of shape {tuple(gt_mask.shape)}, '
                             f'but the first sample has {self.gt_masks.shape[1:]}; expected one map size for the '
                             'test set.')
        if self._size == self.capacity:
            self._resize(max(math.ceil(self.capacity * GROWTH), INITIAL_CAPACITY))
        index = self._size
        arrays = self._arrays
        arrays['gt_mask'][index] = gt_mask
        for source in self.sources:
            arrays[f'map/{source}'][index] = maps[source]
            arrays[f'score/{source}'][index] = scores[source]
        arrays['pred_label'][index] = NO_PRED_LABEL if pred_label is None else pred_label
        arrays['mask_missing'][index] = mask_missing
        arrays['ori_shape'][index] = (UNKNOWN_SHAPE, UNKNOWN_SHAPE) if ori_shape is None else ori_shape
        self.names.append(name)
        self.defect_types.append(defect_type)
        self.gt_paths.append(gt_path)
        self._size += 1

    @classmethod
    def interleaved(cls, parts: Sequence[EvaluatedSamples], size: int) -> EvaluatedSamples:
        """Merge the parts of several ranks as ``collect_results`` orders per-sample results, cut to ``size``.

        Args:
            parts: The samples of each rank, in rank order; empty parts are allowed.
            size: Number of samples of the dataset; samples beyond it pad the last ranks and are dropped.

        Returns:
            The merged samples: the only non-empty part itself, cut to ``size`` (its spare capacity released), when
            there is one; otherwise new arrays, filled one array at a time while the parts' arrays are released (the
            parts are left empty), so that the merge needs little more memory than the parts.

        Raises:
            ValueError: If two parts have different sources, map sizes or map dtypes.
        """
        filled = [part for part in parts if len(part)]
        if len(filled) <= 1:
            merged = filled[0] if filled else (parts[0] if parts else cls())
            merged._size = min(merged._size, size)
            del merged.names[size:], merged.defect_types[size:], merged.gt_paths[size:]
            merged._resize(merged._size)  # release the spare capacity before the metrics need memory
            return merged
        first = filled[0]
        for part in filled[1:]:
            if (part.sources, part.gt_masks.shape[1:], part.map_dtype) != (
                    first.sources, first.gt_masks.shape[1:], first.map_dtype):
                raise ValueError(f'ADMetric: the ranks kept maps {list(part.sources)} of shape '
                                 f'{part.gt_masks.shape[1:]} ({part.map_dtype}) and {list(first.sources)} of shape '
                                 f'{first.gt_masks.shape[1:]} ({first.map_dtype}); expected the same on every rank.')
        part_of = np.concatenate([np.full(len(part), rank, dtype=np.int64) for rank, part in enumerate(parts)])
        index_in_part = np.concatenate([np.arange(len(part)) for part in parts])
        order = np.lexsort((part_of, index_in_part))[:size]
        merged = cls(first.map_dtype)
        merged._allocate(first.sources, first.gt_masks.shape[1:], order.size)
        starts = np.cumsum([0] + [len(part) for part in parts])
        placement = [(part, np.flatnonzero((order >= start) & (order < start + len(part))), start)
                     for part, start in zip(parts, starts) if len(part)]
        for key, array in merged._arrays.items():
            for part, taken, start in placement:
                array[taken] = part._arrays.pop(key)[order[taken] - start]
        for key in ('names', 'defect_types', 'gt_paths'):
            strings = [string for part in parts for string in getattr(part, key)]
            setattr(merged, key, [strings[item] for item in order])
        for part in parts:
            part.clear()
        merged._size = int(order.size)
        return merged

    def __getstate__(self) -> dict:
        """Pickle only the kept samples, not the spare capacity (ranks exchange their parts by pickling)."""
        state = dict(self.__dict__)
        state['_arrays'] = {key: array[:self._size] for key, array in self._arrays.items()}
        return state

    def _allocate(self, sources: tuple[str, ...], map_shape: tuple[int, ...], capacity: int) -> None:
        """Create empty arrays for ``capacity`` samples."""
        self.sources = sources
        map_shape = tuple(int(size) for size in map_shape)
        self._arrays = {'gt_mask': np.empty((capacity, *map_shape), dtype=bool)}
        for source in sources:
            self._arrays[f'map/{source}'] = np.empty((capacity, *map_shape), dtype=self.map_dtype)
            self._arrays[f'score/{source}'] = np.empty(capacity, dtype=np.float64)
        self._arrays['pred_label'] = np.empty(capacity, dtype=np.int8)
        self._arrays['mask_missing'] = np.empty(capacity, dtype=bool)
        self._arrays['ori_shape'] = np.empty((capacity, 2), dtype=np.int64)

    def _resize(self, capacity: int) -> None:
        """Enlarge or shrink every array to ``capacity`` (at least ``len(self)``) samples, keeping the stored ones.

        In place where possible (``ndarray.resize``: ``realloc``, which moves a large block without copying it;
        growing zero-fills the new part); by a copy into a new array when a view of the old one is alive or the
        array does not own its memory (e.g. after unpickling).
        """
        for key in self._arrays:
            shape = (capacity, *self._arrays[key].shape[1:])
            try:
                self._arrays[key].resize(shape)
            except ValueError:
                grown = np.empty(shape, dtype=self._arrays[key].dtype)
                grown[:self._size] = self._arrays[key][:self._size]
                self._arrays[key] = grown
