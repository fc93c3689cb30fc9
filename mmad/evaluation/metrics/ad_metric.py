"""``ADMetric``: image- and pixel-level anomaly-detection metrics, per defect type, for the fused and branch scores.

For the fused prediction (``pred_score`` / ``anomaly_map``) and for each branch (``branch_scores`` /
``branch_maps``, named by modality), on every subset (``all``, and each defect type together with the good
samples) it reports I-AUROC, I-AP (image label = the ground truth holds an anomalous pixel; score = the image
score), P-AUROC and P-AP over all pixels, and AU-PRO at each integration limit (``AUPRO@0.3``).

Example:
    >>> val_evaluator = dict(type='ADMetric', integration_limits=(0.3, 0.05), out_dir='work_dirs/crd')
"""
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import cv2
import mmcv
import numpy as np
import torch
from mmengine import fileio
from mmengine.dist import broadcast_object_list, collect_results, get_world_size, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmad.registry import METRICS
from mmad.structures import binarise_mask

from ..functional import auroc, average_precision, pixel_metrics
from .evaluated_samples import EvaluatedSamples
from .result_files import scores_csv, source_curves, write_result_files
from .results_table import format_metrics_table
from .run_record import run_record, write_metrics_files

FUSED = 'fused'
RESOLUTIONS = ('map', 'native')
RECORD_KEYS = ('notes', 'run')
"""Keys of ``metrics.json`` beside the scores (``fused`` and the modalities); no modality may be named so."""
MAX_LISTED_SAMPLES = 10
MapStack = np.ndarray | list[np.ndarray]
"""Maps or masks of a set of samples: one (N, H, W) array, or a list of (H_i, W_i) arrays of different sizes."""


def _to_numpy(value: Any) -> np.ndarray:
    """Convert a tensor (any device) or array-like to a numpy array (a view of CPU tensors and arrays).

    bfloat16 tensors (maps predicted under CPU autocast), which numpy cannot hold, become float32.
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _per_sample(masks: MapStack, reduce: Callable[..., Any]) -> np.ndarray:
    """``reduce`` (``np.any`` or ``np.all``) of each mask, bool (N,)."""
    if isinstance(masks, np.ndarray):
        return reduce(masks.reshape(len(masks), -1), axis=1)
    return np.array([reduce(mask) for mask in masks], dtype=bool)


def _take(items: MapStack, indices: np.ndarray) -> MapStack:
    """The items at sorted distinct ``indices``: ``items`` itself (no copy) when they are all of them."""
    if len(indices) == len(items):
        return items
    if isinstance(items, np.ndarray):
        return items[indices]
    return [items[index] for index in indices]


def _stack_per_sample(shapes: np.ndarray, dtype: type, make: Callable[[int], np.ndarray]) -> MapStack:
    """``make(index)`` of every sample, stacked into one (N, H, W) array when every (H, W) of ``shapes`` agrees."""
    if not (shapes == shapes[0]).all():
        return [make(index) for index in range(len(shapes))]
    stacked = np.empty((len(shapes), *(int(size) for size in shapes[0])), dtype=dtype)
    for index in range(len(shapes)):
        stacked[index] = make(index)
    return stacked


def _sample_name(sample: Mapping) -> str:
    """A name of a data sample for error messages: its image path, sample name or index."""
    for key in ('img_path', 'sample_name', 'sample_idx'):
        if sample.get(key) is not None:
            return str(sample[key])
    return '<unnamed sample>'


def read_native_mask(gt_path: str | None, ori_shape: Sequence[int]) -> np.ndarray:
    """Read a ground-truth mask at its native size and binarise it (non-zero = anomalous).

    Args:
        gt_path: Path (or backend URI) of the mask image; None for a good sample.
        ori_shape: Native (H0, W0) of the sample.

    Returns:
        Bool mask of shape (H0, W0); all False when ``gt_path`` is None.

    Raises:
        ValueError: If the file cannot be decoded or its size differs from ``ori_shape``.
    """
    ori_shape = tuple(int(size) for size in ori_shape)
    if gt_path is None:
        return np.zeros(ori_shape, dtype=bool)
    image = mmcv.imfrombytes(fileio.get(gt_path), flag='unchanged')
    if image is None:
        raise ValueError(f'{gt_path}: cannot decode the ground-truth mask; expected an image file.')
    mask = binarise_mask(image)
    if mask.shape != ori_shape:
        raise ValueError(f'{gt_path}: ground-truth mask has shape {mask.shape}, expected ori_shape {ori_shape}.')
    return mask


@METRICS.register_module()
class ADMetric(BaseMetric):
    """Anomaly-detection metrics of the fused and per-branch predictions, per defect type.

    ``process`` copies, per sample, the image scores, the anomaly maps at the maps' size (``map_dtype``, never
    float64), the bool ground-truth mask, the defect type, ``gt_path`` and ``ori_shape`` into ``samples``
    (:class:`EvaluatedSamples`: one contiguous (N, H, W) array per source and for the masks, flat arrays for the
    rest, no per-sample arrays); ``evaluate`` merges the ``samples`` of every rank. ``compute_metrics``
    evaluates either at the maps' size against ``gt_mask`` (``resolution='map'``, the paper's protocol), or at each
    sample's native size (``resolution='native'``, the official MVTec 3D-AD protocol): maps are upsampled bilinearly
    to ``ori_shape`` and compared with the mask read from ``gt_path`` (binarised > 0, all zero when None).

    The image label comes from the ground truth at the evaluated resolution (an anomalous pixel makes an anomalous
    image), as in the CRD code and the official Eyecandies evaluation, also for a sample in a defect folder: such a
    sample with an all-zero mask counts as normal, and a note names it. A sample whose meta information has
    ``mask_missing=True`` (an anomalous sample without mask, e.g. from ``FolderDataset``) is anomalous in the image
    metrics and left out of the pixel metrics; a note says so, and why pixel metrics are null where they are.

    Results are fractions; undefined metrics (e.g. one class only) are NaN, written as null in ``metrics.json``,
    and a note says why. ``metrics.json`` (the latest run; each run also keeps ``metrics_<time>.json``) holds
    ``{"fused": {"all": {"I-AUROC": .., "P-AUROC": .., "AUPRO@0.3": .., "I-AP": .., "P-AP": ..},
    "<defect>": {...}}, "<modality>": {...}, "notes": [...], "run": {"checkpoint": .., "config": ..,
    "git_revision": .., "time": .., ...}}``. Beside it, ``scores.csv`` (one row per sample: scores, ground-truth
    label, decision ``pred_label`` when the model has a threshold) and ``curves.npz`` (image and pixel ROC and PR
    points and the PRO curve of the fused map and each branch) are written, so plots need no re-run; their format
    is in docs/metrics.md.

    Args:
        integration_limits: FPR limits of the AU-PRO, each in (0, 1]; one ``AUPRO@<limit>`` entry per limit.
        resolution: ``'map'`` or ``'native'``.
        out_dir: Folder that receives ``metrics.json`` and ``metrics_<time>.json`` (created if missing); nothing is
            written when None.
        normal_defect_type: Defect type of the good samples, added to every per-defect subset.
        map_dtype: ``'float32'`` or ``'float16'``, the dtype the maps are kept in until ``compute_metrics``.
        checkpoint: The evaluated checkpoint, recorded in ``metrics.json``; None: the runner's ``load_from``.
        config: The config file, recorded in ``metrics.json``.
        collect_device: Device used to collect results across ranks, ``'cpu'`` or ``'gpu'``.
        prefix: Prefix of the metric names; none by default (``default_prefix = ''``), so that keys read
            ``fused/all/I-AUROC``.
        collect_dir: Folder used to collect results across ranks with ``collect_device='cpu'``.
    """

    default_prefix = ''

    def __init__(self,
                 integration_limits: Sequence[float] = (0.3,),
                 resolution: str = 'map',
                 out_dir: str | None = None,
                 normal_defect_type: str = 'good',
                 map_dtype: str = 'float32',
                 checkpoint: str | None = None,
                 config: str | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.integration_limits = tuple(float(limit) for limit in integration_limits)
        if not self.integration_limits:
            raise ValueError('integration_limits must hold at least one FPR limit, e.g. (0.3,).')
        for limit in self.integration_limits:
            if not 0.0 < limit <= 1.0:
                raise ValueError(f'integration_limits must lie in (0, 1], got {limit}.')
        if resolution not in RESOLUTIONS:
            raise ValueError(f'resolution must be one of {RESOLUTIONS}, got {resolution!r}.')
        if map_dtype not in ('float32', 'float16'):
            raise ValueError(f"map_dtype must be 'float32' or 'float16', got {map_dtype!r}.")
        self.resolution = resolution
        self.out_dir = out_dir
        self.checkpoint = checkpoint
        self.config = config
        self.normal_defect_type = normal_defect_type
        self.map_dtype = np.dtype(map_dtype)
        self.samples = EvaluatedSamples(self.map_dtype)

    @property
    def metric_names(self) -> list[str]:
        """Names of the reported metrics, in table order."""
        au_pro_names = [f'AUPRO@{limit:g}' for limit in self.integration_limits]
        return ['I-AUROC', 'P-AUROC', *au_pro_names, 'I-AP', 'P-AP']

    def process(self, data_batch: Any, data_samples: Sequence[Mapping]) -> None:
        """Copy the scores, maps and ground truth of a batch of predicted data samples (as dicts) into ``samples``.

        Args:
            data_batch: The batch from the dataloader (not used).
            data_samples: ``ADDataSample.to_dict()`` of each sample: ``pred_score`` (tensor ()), ``anomaly_map``
                (tensor (S, S)), optional ``branch_scores`` / ``branch_maps`` (dict modality -> tensor () /
                (S, S)), ``gt_mask`` (bool tensor (S, S)), ``defect_type``, ``gt_path`` and ``ori_shape``.
        """
        for sample in data_samples:
            self._append(sample)

    def _append(self, sample: Mapping) -> None:
        """Check one data sample and copy what the metrics need into ``samples``."""
        name = _sample_name(sample)
        required = ['pred_score', 'anomaly_map', 'gt_mask', 'defect_type']
        if self.resolution == 'native':
            required += ['gt_path', 'ori_shape']
        missing = [key for key in required if key not in sample]
        if missing:
            raise KeyError(f'ADMetric: data sample {name} lacks {missing}; expected the predictions of the model '
                           '(pred_score, anomaly_map) and the packed ground truth (gt_mask, defect_type, gt_path, '
                           'ori_shape).')
        branch_scores = dict(sample.get('branch_scores') or {})
        branch_maps = dict(sample.get('branch_maps') or {})
        if set(branch_maps) & {FUSED, *RECORD_KEYS} or set(branch_scores) != set(branch_maps):
            raise ValueError(f'ADMetric: data sample {name} has branch_scores for {sorted(branch_scores)} and '
                             f'branch_maps for {sorted(branch_maps)}; expected the same modalities, none named '
                             f'{(FUSED, *RECORD_KEYS)}.')
        gt_mask = _to_numpy(sample['gt_mask'])
        scores = {FUSED: float(sample['pred_score'])}
        maps = {FUSED: _to_numpy(sample['anomaly_map'])}
        for modality, branch_map in branch_maps.items():
            scores[modality] = float(branch_scores[modality])
            maps[modality] = _to_numpy(branch_map)
        for source, score_map in maps.items():
            if score_map.shape != gt_mask.shape:
                raise ValueError(f'ADMetric: data sample {name}: the {source} map has shape {score_map.shape} but '
                                 f'gt_mask has shape {gt_mask.shape}; expected equal shapes.')
        pred_label = sample.get('pred_label')
        # Copied into the arrays of ``samples``: nothing keeps the model's batch tensors alive.
        self.samples.append(name=name, defect_type=str(sample['defect_type']), gt_path=sample.get('gt_path'),
                            ori_shape=sample.get('ori_shape'),
                            pred_label=None if pred_label is None else int(pred_label),
                            mask_missing=bool(sample.get('mask_missing', False)), gt_mask=gt_mask, scores=scores,
                            maps=maps)

    def evaluate(self, size: int) -> dict[str, float]:
        """Collect the samples of every rank, compute the metrics on the main process and share them.

        Each rank sends its ``samples`` as one object through ``mmengine.dist.collect_results``; the main process
        merges them in the order per-sample results had (see :meth:`EvaluatedSamples.interleaved`).

        Args:
            size: Length of the dataset; samples beyond it pad the last ranks and are dropped.

        Returns:
            The metrics of :meth:`compute_metrics`, with ``prefix`` when one is set, on every rank.
        """
        tmpdir = self.collect_dir if self.collect_device == 'cpu' else None
        parts = collect_results([self.samples], get_world_size(), self.collect_device, tmpdir=tmpdir)
        # The main process holds its own part twice with several ranks (kept and collected): release one.
        self.samples = EvaluatedSamples(self.map_dtype)
        metrics = [None]
        if is_main_process():
            computed = self.compute_metrics(EvaluatedSamples.interleaved(parts, size))
            metrics = [{'/'.join((self.prefix, key)) if self.prefix else key: value for key, value in computed.items()}]
        del parts
        broadcast_object_list(metrics)
        return metrics[0]

    def compute_metrics(self, results: EvaluatedSamples) -> dict[str, float]:
        """Compute every metric, log the table and the notes, write ``metrics.json`` to ``out_dir``.

        Args:
            results: The samples of the whole test set (from every rank), in dataset order.

        Returns:
            Flat ``{'<scores>/<subset>/<metric>': fraction}``, e.g. ``fused/all/I-AUROC`` or ``rgb/color/P-AP``.
        """
        if not len(results):
            raise ValueError('ADMetric: no data sample was processed; expected the predictions of the test set.')
        gt_masks = self._ground_truths(results)
        mask_any, mask_all = _per_sample(gt_masks, np.any), _per_sample(gt_masks, np.all)
        has_mask = ~results.mask_missing
        image_labels = mask_any | ~has_mask
        self._pixel_samples = np.flatnonzero(has_mask) if has_mask.any() else np.arange(len(results))
        subsets = self._subsets(results.defect_types)
        metrics, curves = {}, {}
        for source in results.sources:
            maps = self._maps(results, source)
            image_scores = results.scores(source)
            metrics[source] = {
                subset: self._subset_metrics(indices, maps, gt_masks, image_labels, image_scores)
                for subset, indices in subsets.items()
            }
            if self.out_dir is not None:
                pixel = self._pixel_samples
                curves.update(source_curves(source, image_scores, _take(maps, pixel), image_labels,
                                            _take(gt_masks, pixel)))
            del maps
        print_log('\n' + format_metrics_table(metrics), logger='current')
        notes = self._notes(results, mask_any, mask_all, image_labels, subsets, metrics)
        for note in notes:
            print_log(f'ADMetric: {note}', logger='current', level=logging.WARNING)
        if self.out_dir is not None:
            self._write_json(metrics, notes)
            paths = write_result_files(self.out_dir, scores_csv(results, image_labels), curves)
            print_log(f'ADMetric: per-sample scores and curve points written to {paths[0]} and {paths[1]}',
                      logger='current')
        return {
            f'{source}/{subset}/{name}': value
            for source, source_metrics in metrics.items()
            for subset, values in source_metrics.items()
            for name, value in values.items()
        }

    def _subsets(self, defect_types: list[str]) -> dict[str, np.ndarray]:
        """Indices of ``all`` and of each defect type together with the good samples, by name."""
        defect_types = np.array(defect_types)
        is_normal = defect_types == self.normal_defect_type
        subsets = {'all': np.arange(defect_types.size)}
        for defect in sorted(set(defect_types.tolist()) - {self.normal_defect_type}):
            subsets[defect] = np.flatnonzero(is_normal | (defect_types == defect))
        return subsets

    def _ground_truths(self, results: EvaluatedSamples) -> MapStack:
        """Bool ground-truth masks at the evaluation resolution: (N, H, W), or a list of (H0_i, W0_i) masks.

        At the native resolution the masks are read from ``gt_path``; they are stacked when every sample has the
        same ``ori_shape``.
        """
        if self.resolution == 'map':
            return results.gt_masks
        ori_shapes = results.ori_shapes
        return _stack_per_sample(ori_shapes, bool, lambda index: read_native_mask(results.gt_paths[index],
                                                                                  ori_shapes[index]))

    def _maps(self, results: EvaluatedSamples, source: str) -> MapStack:
        """Anomaly maps of one source at the evaluation resolution: (N, H, W), or a list of (H0_i, W0_i) maps.

        At the native resolution the maps are upsampled bilinearly to ``ori_shape`` in float32; they are stacked
        when every sample has the same ``ori_shape``.
        """
        maps = results.maps(source)
        if self.resolution == 'map':
            return maps
        ori_shapes = results.ori_shapes

        def upsampled(index: int) -> np.ndarray:
            height, width = ori_shapes[index]
            return cv2.resize(maps[index].astype(np.float32, copy=False), (int(width), int(height)),
                              interpolation=cv2.INTER_LINEAR)

        return _stack_per_sample(ori_shapes, np.float32, upsampled)

    def _subset_metrics(self, indices: np.ndarray, maps: MapStack, gt_masks: MapStack, image_labels: np.ndarray,
                        image_scores: np.ndarray) -> dict[str, float]:
        """Every metric of one source on the samples at ``indices``, keyed as :attr:`metric_names`."""
        pixel_indices = np.intersect1d(indices, self._pixel_samples)
        pixel_indices = pixel_indices if pixel_indices.size else indices
        pixel = pixel_metrics(_take(maps, pixel_indices), _take(gt_masks, pixel_indices), self.integration_limits)
        labels, scores = image_labels[indices], image_scores[indices]
        values = [auroc(labels, scores), pixel.auroc, *pixel.au_pros, average_precision(labels, scores),
                  pixel.average_precision]
        return dict(zip(self.metric_names, values))

    def _notes(self, results: EvaluatedSamples, mask_any: np.ndarray, mask_all: np.ndarray, image_labels: np.ndarray,
               subsets: dict[str, np.ndarray], metrics: dict) -> list[str]:
        """Why metrics are undefined, once per reason, and which defect samples count as normal images."""
        notes = []
        defect_types = np.array(results.defect_types)
        normal_in_defect = np.flatnonzero(~image_labels & (defect_types != self.normal_defect_type))
        if normal_in_defect.size:
            listed = [results.names[index] for index in normal_in_defect[:MAX_LISTED_SAMPLES]]
            more = f' and {normal_in_defect.size - len(listed)} more' if normal_in_defect.size > len(listed) else ''
            notes.append(f'{normal_in_defect.size} sample(s) of a defect type other than '
                         f'{self.normal_defect_type!r} have no anomalous pixel in their ground truth at the evaluated '
                         f'resolution ({self.resolution!r}) and count as normal images: {", ".join(listed)}{more}.')
        unmasked = results.mask_missing
        if unmasked.any():
            defects = sorted(set(defect_types[unmasked].tolist()))
            notes.append(f'{np.count_nonzero(unmasked)} anomalous sample(s) have no ground-truth mask (defect types '
                         f'{defects}): they count in the image metrics; pixel metrics are computed on the samples '
                         'with masks and are not available where none of them is anomalous.')
        undefined: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for subset, indices in subsets.items():
            names = tuple(name for name in self.metric_names
                          if any(math.isnan(values[subset][name]) for values in metrics.values()))
            if names:
                reason = self._why_undefined(indices, mask_any, mask_all, image_labels)
                undefined.setdefault((reason, names), []).append(subset)
        for (reason, names), where in undefined.items():
            place = 'every subset' if len(where) == len(subsets) else 'subset ' + ', '.join(repr(s) for s in where)
            notes.append(f'{", ".join(names)} null in {place}: {reason}.')
        return notes

    def _why_undefined(self, indices: np.ndarray, mask_any: np.ndarray, mask_all: np.ndarray,
                       image_labels: np.ndarray) -> str:
        """Why a subset has undefined metrics: the class (image or pixel) it lacks."""
        reasons = []
        labels = image_labels[indices]
        if not labels.any():
            reasons.append('it holds no anomalous image (no ground-truth mask of its samples has an anomalous pixel)')
        if labels.all():
            reasons.append(f'it holds no normal image (every sample has an anomalous pixel; the test set has '
                           f'{np.count_nonzero(~image_labels)} normal images in all), so I-AP is 1 whatever the scores')
        if mask_all[indices].all():
            reasons.append('it holds no normal pixel')
        masked = np.intersect1d(indices, self._pixel_samples)
        if labels.any() and not mask_any[masked].any():
            reasons.append('its anomalous samples have no ground-truth mask, so pixel metrics are not available')
        return '; '.join(reasons) or 'undefined for these scores'

    def _write_json(self, metrics: dict, notes: list[str]) -> None:
        """Write the nested metrics (NaN as null), the notes and the run record as ``metrics.json`` in ``out_dir``."""
        now = datetime.now(timezone.utc)
        content = {
            source: {
                subset: {name: None if math.isnan(value) else value for name, value in values.items()}
                for subset, values in source_metrics.items()
            }
            for source, source_metrics in metrics.items()
        }
        content['notes'] = notes
        content['run'] = run_record(self.checkpoint, self.config, self.dataset_meta, now)
        run_file, latest_file = write_metrics_files(self.out_dir, content, now)
        print_log(f'ADMetric: metrics written to {latest_file} and {run_file}', logger='current')
