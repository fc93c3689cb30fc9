"""Per-sample scores and curve points of a test run, written beside ``metrics.json`` (format in docs/metrics.md).

``scores.csv``: one row per test sample. ``curves.npz``: for the fused map and each branch, on the ``all`` subset,
the image ROC and PR curves (every distinct score), the pixel ROC and PR curves and the PRO curve (at most
:data:`MAX_CURVE_POINTS` points each), keys ``<source>/<curve>/<axis>``.
"""
from __future__ import annotations

import csv
import io
import os.path as osp
from collections.abc import Mapping, Sequence

import numpy as np

from mmad.evaluation.functional.regions import split_by_regions
from mmad.utils.fileio import atomic_open, write_text

from .evaluated_samples import NO_PRED_LABEL, EvaluatedSamples

SCORES_FILE = 'scores.csv'
CURVES_FILE = 'curves.npz'
MAX_CURVE_POINTS = 1000


def ranking_curve(labels: np.ndarray, scores: np.ndarray, max_points: int | None = None) -> dict[str, np.ndarray]:
    """ROC and PR points of scores against binary labels, one point per distinct score (descending).

    A point at threshold ``t`` calls every score ``>= t`` positive. The ROC starts at (0, 0) with threshold +inf.

    Args:
        labels: Bool (N,).
        scores: Real (N,).
        max_points: Keep at most this many points (evenly spaced, first and last kept); None keeps all.

    Returns:
        ``threshold``, ``fpr``, ``tpr`` (= recall) and ``precision``, float64 arrays of one length.
    """
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-scores, kind='stable')
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_tie].astype(np.float64)
    called = (last_of_tie + 1).astype(np.float64)
    positives, negatives = max(labels.sum(), 1), max((~labels).sum(), 1)
    curve = dict(threshold=np.r_[np.inf, sorted_scores[last_of_tie]],
                 fpr=np.r_[0.0, (called - true_positives) / negatives],
                 tpr=np.r_[0.0, true_positives / positives],
                 precision=np.r_[1.0, true_positives / called])
    return _thinned(curve, max_points)


def pro_curve(maps: np.ndarray | Sequence[np.ndarray], gt_masks: np.ndarray | Sequence[np.ndarray],
              max_points: int = MAX_CURVE_POINTS) -> dict[str, np.ndarray]:
    """PRO curve: mean per-region overlap against the false-positive rate of the normal pixels.

    Thresholds are quantiles of the normal pixel scores, so the FPR is sampled evenly in [0, 1].

    Args:
        maps: Anomaly maps, (N, H, W) or a sequence of (H_i, W_i).
        gt_masks: Bool masks of the same shapes.
        max_points: Number of thresholds.

    Returns:
        ``threshold`` (descending), ``fpr`` and ``pro``, float64; empty arrays without anomalous or normal pixels.
    """
    regions = split_by_regions(maps, gt_masks)
    if regions.num_regions == 0 or regions.num_normal == 0:
        return dict(threshold=np.empty(0), fpr=np.empty(0), pro=np.empty(0))
    normal = np.sort(regions.normal_scores.astype(np.float64))
    thresholds = np.unique(np.quantile(normal, np.linspace(0, 1, max_points)))[::-1]
    fpr = (normal.size - np.searchsorted(normal, thresholds, side='left')) / regions.num_normal
    anomalous = regions.anomalous_scores.astype(np.float64)
    weight_above = np.r_[np.cumsum(regions.anomalous_weights[::-1])[::-1], 0.0]
    pro = weight_above[np.searchsorted(anomalous, thresholds, side='left')] / regions.num_regions
    return dict(threshold=thresholds, fpr=fpr, pro=pro)


def _flat(arrays: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Every value of an (N, H, W) array or of a sequence of arrays, in order, as one 1-D array."""
    if isinstance(arrays, np.ndarray):
        return arrays.reshape(-1)
    return np.concatenate([array.ravel() for array in arrays])


def source_curves(source: str, scores: np.ndarray, maps: np.ndarray | Sequence[np.ndarray],
                  image_labels: np.ndarray, gt_masks: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Every curve of one source (``fused`` or a branch), keyed ``<source>/<curve>/<axis>``.

    Args:
        source: Name of the scores.
        scores: Image scores (N,).
        maps: Its maps at the evaluated resolution, (M, H, W) or a sequence of (H_i, W_i).
        image_labels: Bool image labels (N,).
        gt_masks: Bool masks at the evaluated resolution, of the maps' shapes.

    Returns:
        Arrays for ``np.savez``: ``image_roc`` and ``pixel_roc`` (``threshold``, ``fpr``, ``tpr``), ``image_pr``
        and ``pixel_pr`` (``threshold``, ``precision``, ``recall``) and ``pro`` (``threshold``, ``fpr``, ``pro``).
    """
    arrays = {}
    for level, labels, values, limit in (('image', image_labels, scores, None),
                                         ('pixel', _flat(gt_masks), _flat(maps), MAX_CURVE_POINTS)):
        curve = ranking_curve(labels, values, limit)
        arrays[f'{source}/{level}_roc/threshold'] = curve['threshold']
        arrays[f'{source}/{level}_roc/fpr'] = curve['fpr']
        arrays[f'{source}/{level}_roc/tpr'] = curve['tpr']
        arrays[f'{source}/{level}_pr/threshold'] = curve['threshold'][1:]
        arrays[f'{source}/{level}_pr/precision'] = curve['precision'][1:]
        arrays[f'{source}/{level}_pr/recall'] = curve['tpr'][1:]
    for axis, values in pro_curve(maps, gt_masks).items():
        arrays[f'{source}/pro/{axis}'] = values
    return arrays


def scores_csv(samples: EvaluatedSamples, labels: np.ndarray) -> str:
    """The text of ``scores.csv``.

    Args:
        samples: The evaluated samples: names, defect types, scores of ``fused`` and each branch, decisions
            (``pred_label``, or none) and ``gt_path``.
        labels: Bool (N,) ground-truth image labels at the evaluated resolution.

    Returns:
        CSV with the header ``name,defect_type,label,score,pred_label,<branch>_score...,gt_path``.
    """
    branch_names = [source for source in samples.sources if source != 'fused']
    columns = [samples.scores(source).tolist() for source in ('fused', *branch_names)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['name', 'defect_type', 'label', 'score', 'pred_label',
                     *(f'{name}_score' for name in branch_names), 'gt_path'])
    for index, (name, defect_type, label, pred_label, gt_path) in enumerate(zip(
            samples.names, samples.defect_types, labels.tolist(), samples.pred_labels.tolist(), samples.gt_paths)):
        score, *branch_scores = (column[index] for column in columns)
        writer.writerow([name, defect_type, int(label), repr(score), '' if pred_label == NO_PRED_LABEL else pred_label,
                         *(repr(branch_score) for branch_score in branch_scores), gt_path or ''])
    return buffer.getvalue()


def write_result_files(out_dir: str, csv_text: str, arrays: Mapping[str, np.ndarray]) -> tuple[str, str]:
    """Write ``scores.csv`` and ``curves.npz`` into ``out_dir`` atomically.

    Returns:
        The two paths.
    """
    scores_path, curves_path = osp.join(out_dir, SCORES_FILE), osp.join(out_dir, CURVES_FILE)
    write_text(scores_path, csv_text)
    with atomic_open(curves_path, 'wb') as file:
        np.savez(file, **arrays)
    return scores_path, curves_path


def _thinned(curve: dict[str, np.ndarray], max_points: int | None) -> dict[str, np.ndarray]:
    length = len(curve['threshold'])
    if max_points is None or length <= max_points:
        return curve
    keep = np.unique(np.linspace(0, length - 1, max_points).round().astype(int))
    return {key: values[keep] for key, values in curve.items()}
