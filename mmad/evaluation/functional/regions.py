"""Split anomaly maps by their ground truth: the normal scores, and the ground-truth scores weighed by region.

The per-region overlap of the AU-PRO weighs each ground-truth pixel by ``1 / size`` of its 8-connected region;
pixel-level AUROC and AP only need the two groups of scores. When only the highest normal scores matter (the AU-PRO
up to an FPR limit), a score floor estimated from a regular subsample of the maps skips copying the rest; the exact
count of kept scores is checked, and every normal score is kept when the estimate falls short.

Example:
    >>> regions = split_by_regions(anomaly_maps, gt_masks)
    >>> regions.num_normal, regions.anomalous_scores.shape, regions.num_regions
"""
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

# 8-connectivity of ground-truth regions, as in the MVTec evaluation code.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# The same within each map of an (N, H, W) stack, which is labelled LABEL_BLOCK maps at a time (bounding the int32
# labels to LABEL_BLOCK maps).
STACKED_EIGHT_CONNECTED = np.zeros((3, 3, 3), dtype=bool)
STACKED_EIGHT_CONNECTED[1] = True
LABEL_BLOCK = 64
# Rows and columns between the pixels sampled to estimate a score floor, and the smallest sample that is used.
SAMPLE_STRIDE = 7
MIN_SAMPLE_SIZE = 1000
# Fraction of the normal scores kept beyond the requested one, against the error of the sampled estimate.
FLOOR_MARGIN = 0.02


class RegionScores(NamedTuple):
    """The scores of a set of anomaly maps, split by their ground truth.

    Attributes:
        normal_scores: Scores of pixels outside the ground-truth regions, unsorted, shape (num_kept,): all of them,
            or (see :func:`split_by_regions`) those at or above a floor, which include the requested highest ones.
        num_normal: Number of pixels outside the ground-truth regions.
        anomalous_scores: Scores of every ground-truth pixel sorted in ascending order, shape (num_anomalous,).
        anomalous_weights: ``1 / size`` of the 8-connected region of each pixel of ``anomalous_scores``, float64,
            shape (num_anomalous,).
        num_regions: Number of ground-truth regions over all maps.
    """

    normal_scores: np.ndarray
    num_normal: int
    anomalous_scores: np.ndarray
    anomalous_weights: np.ndarray
    num_regions: int


def num_highest_to_reach(fraction: float, num: int) -> int:
    """The smallest count ``k`` with ``k / num >= fraction`` in float64 arithmetic, at least 1.

    Args:
        fraction: A fraction in (0, 1], e.g. an FPR limit.
        num: The whole count, at least 1, e.g. the number of normal pixels.

    Returns:
        ``k`` in [1, num].
    """
    count = min(max(math.ceil(fraction * num), 1), num)
    while count > 1 and (count - 1) / num >= fraction:
        count -= 1
    while count / num < fraction:
        count += 1
    return count


def as_map_list(maps: ArrayLike | Sequence[ArrayLike], name: str) -> list[np.ndarray]:
    """Turn an (N, H, W) array or a sequence of (H_i, W_i) arrays into a list of 2-D arrays (views, no copies).

    Raises:
        ValueError: Naming ``name``, if the array is not 3-D or an item is not 2-D.
    """
    if isinstance(maps, np.ndarray):
        if maps.ndim != 3:
            raise ValueError(f'{name} must have shape (N, H, W), got {maps.shape}.')
        return list(maps)
    map_list = [np.asarray(item) for item in maps]
    for index, item in enumerate(map_list):
        if item.ndim != 2:
            raise ValueError(f'{name}[{index}] must be a 2-D map (H, W), got shape {item.shape}.')
    return map_list


def _check_pairs(maps: list[np.ndarray], masks: list[np.ndarray]) -> None:
    """Raise a ValueError naming the first map that does not match its mask, is not real or holds NaN."""
    if len(maps) != len(masks):
        raise ValueError(f'anomaly_maps and gt_masks must hold as many maps, got {len(maps)} and {len(masks)}.')
    for index, (score_map, mask) in enumerate(zip(maps, masks)):
        if score_map.shape != mask.shape:
            raise ValueError(f'anomaly_maps[{index}] has shape {score_map.shape} but gt_masks[{index}] has '
                             f'shape {mask.shape}; expected equal shapes.')
        _check_scores(score_map, index)


def _check_stacks(anomaly_maps: np.ndarray, gt_masks: np.ndarray) -> None:
    """:func:`_check_pairs` of two (N, H, W) arrays, with one pass over each array instead of one per map."""
    if len(anomaly_maps) != len(gt_masks) or anomaly_maps.shape[1:] != gt_masks.shape[1:]:
        _check_pairs(list(anomaly_maps), list(gt_masks))
    if anomaly_maps.size:
        _check_scores(anomaly_maps, 0)


def _check_scores(scores: np.ndarray, index: int) -> None:
    """Raise a ValueError naming ``anomaly_maps[index]`` (or the first map with NaN of a stack) if not real or NaN."""
    if scores.dtype.kind not in 'biuf':
        raise ValueError(f'anomaly_maps[{index}] must hold real numbers, got dtype {scores.dtype}.')
    if scores.dtype.kind == 'f' and scores.size and np.isnan(scores.min()):
        if scores.ndim == 3:
            index = int(np.isnan(scores.reshape(len(scores), -1)).any(axis=1).argmax())
        raise ValueError(f'anomaly_maps[{index}] contains NaN; expected real scores (infinities are allowed).')


def region_weights(is_anomalous: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Label the 8-connected regions of each mask; weigh each anomalous pixel by ``1 / size`` of its region.

    Args:
        is_anomalous: Bool masks, an (N, H, W) array (labelled :data:`LABEL_BLOCK` maps at a time, never connected
            across maps) or a sequence of (H_i, W_i) masks.

    Returns:
        ``(weights, num_regions)``: float64 weights of the anomalous pixels in mask order (row-major within a
        mask), shape (num_anomalous,), and the number of regions over all masks.
    """
    if isinstance(is_anomalous, np.ndarray):
        blocks, structure = [is_anomalous[start:start + LABEL_BLOCK]
                             for start in range(0, len(is_anomalous), LABEL_BLOCK)], STACKED_EIGHT_CONNECTED
    else:
        blocks, structure = is_anomalous, EIGHT_CONNECTED
    weights = [np.empty(0, dtype=np.float64)]
    num_regions = 0
    for mask in blocks:
        if not mask.any():
            continue
        region_ids, mask_regions = ndimage.label(mask, structure=structure)
        pixel_region_ids = region_ids[mask]
        weights.append(1.0 / np.bincount(pixel_region_ids, minlength=mask_regions + 1)[pixel_region_ids])
        num_regions += mask_regions
    return np.concatenate(weights), num_regions


def estimate_normal_floor(maps: np.ndarray | list[np.ndarray], is_anomalous: np.ndarray | list[np.ndarray],
                          fraction: float) -> float | None:
    """Estimate a score with a little more than ``fraction`` of the normal pixels at or above it.

    Args:
        maps: Anomaly maps, (N, H, W) or a list of (H_i, W_i).
        is_anomalous: Bool ground truth of the same shapes (both stacked or both lists).
        fraction: Fraction of the highest normal scores that is needed, in (0, 1].

    Returns:
        The floor, from a regular subsample (every ``SAMPLE_STRIDE``-th row and column) with ``FLOOR_MARGIN`` more
        scores kept; None when the sample is too small or nearly every score would be kept anyway.
    """
    kept_fraction = fraction + FLOOR_MARGIN
    if kept_fraction >= 1.0:
        return None
    if isinstance(maps, np.ndarray) and isinstance(is_anomalous, np.ndarray):
        sample = maps[:, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE][~is_anomalous[:, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE]]
    else:
        sample = [score_map[::SAMPLE_STRIDE, ::SAMPLE_STRIDE][~mask[::SAMPLE_STRIDE, ::SAMPLE_STRIDE]]
                  for score_map, mask in zip(maps, is_anomalous)]
        sample = np.concatenate(sample) if sample else np.empty(0)
    if sample.size < MIN_SAMPLE_SIZE:
        return None
    floor_index = int((1.0 - kept_fraction) * sample.size)
    return sample[np.argpartition(sample, floor_index)[floor_index]]


def _gather(maps: list[np.ndarray], keep_masks: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Concatenate the kept scores of every map, in map order, into one new array of ``dtype``."""
    counts = [int(np.count_nonzero(keep)) for keep in keep_masks]
    scores = np.empty(sum(counts), dtype=dtype)
    end = 0
    for score_map, keep, count in zip(maps, keep_masks, counts):
        start, end = end, end + count
        scores[start:end] = score_map[keep]
    return scores


def _normal_scores(anomaly_maps: ArrayLike | Sequence[ArrayLike], maps: np.ndarray | list[np.ndarray],
                   is_anomalous: np.ndarray | list[np.ndarray], floor: float | None, dtype: np.dtype) -> np.ndarray:
    """The normal scores at or above ``floor`` (all when None), one boolean index per (N, H, W) block."""
    if isinstance(anomaly_maps, np.ndarray) and isinstance(is_anomalous, np.ndarray):
        if floor is None:
            keep = ~is_anomalous
        else:
            keep = anomaly_maps >= floor
            keep[is_anomalous] = False
        return anomaly_maps[keep].astype(dtype, copy=False)
    if floor is None:
        keep_masks = [~mask for mask in is_anomalous]
    else:
        keep_masks = [(score_map >= floor) & ~mask for score_map, mask in zip(maps, is_anomalous)]
    return _gather(maps, keep_masks, dtype)


def split_by_regions(anomaly_maps: ArrayLike | Sequence[ArrayLike], gt_masks: ArrayLike | Sequence[ArrayLike],
                     normal_fraction: float = 1.0) -> RegionScores:
    """Label the 8-connected ground-truth regions of each map and split its scores into normal and anomalous.

    Args:
        anomaly_maps: Real anomaly scores, shape (N, H, W), or a sequence of N maps of shapes (H_i, W_i).
        gt_masks: Ground truth of the same shapes; non-zero pixels are anomalous.
        normal_fraction: Fraction of the highest normal scores that must be kept, in (0, 1]; below 1, normal scores
            under an estimated floor may be left out (at least ``num_highest_to_reach(normal_fraction,
            num_normal)`` of the highest ones, with all their ties, are kept).

    Returns:
        The split scores, in the maps' dtype promoted to at least float32 (float32 maps are never copied to
        float64, float16 ones are widened).

    Raises:
        ValueError: If the shapes differ, a score is not real or is NaN.
    """
    stacked = isinstance(anomaly_maps, np.ndarray) and isinstance(gt_masks, np.ndarray)
    if stacked:
        for name, array in (('anomaly_maps', anomaly_maps), ('gt_masks', gt_masks)):
            if array.ndim != 3:
                raise ValueError(f'{name} must have shape (N, H, W), got {array.shape}.')
        _check_stacks(anomaly_maps, gt_masks)
        score_dtype = np.result_type(np.float32, anomaly_maps.dtype)
        maps = anomaly_maps
        is_anomalous = mask_list = gt_masks if gt_masks.dtype == bool else gt_masks != 0
        anomalous_scores = anomaly_maps[is_anomalous].astype(score_dtype, copy=False)
        num_pixels = is_anomalous.size
    else:
        maps = as_map_list(anomaly_maps, 'anomaly_maps')
        masks = as_map_list(gt_masks, 'gt_masks')
        _check_pairs(maps, masks)
        score_dtype = np.result_type(np.float32, *(score_map.dtype for score_map in maps))
        is_anomalous = mask_list = [mask if mask.dtype == bool else mask != 0 for mask in masks]
        anomalous_scores = _gather(maps, mask_list, score_dtype)
        num_pixels = sum(mask.size for mask in mask_list)
    num_normal = num_pixels - anomalous_scores.size

    floor = None
    if normal_fraction < 1.0 and num_normal > 0:
        floor = estimate_normal_floor(maps, mask_list, normal_fraction)
    normal_scores = _normal_scores(anomaly_maps, maps, is_anomalous, floor, score_dtype)
    if normal_scores.size < num_highest_to_reach(normal_fraction, max(num_normal, 1)):
        normal_scores = _normal_scores(anomaly_maps, maps, is_anomalous, None, score_dtype)

    weights, num_regions = region_weights(mask_list)
    order = np.argsort(anomalous_scores)
    return RegionScores(normal_scores, num_normal, anomalous_scores[order], weights[order], num_regions)
