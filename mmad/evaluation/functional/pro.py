"""Exact area under the per-region overlap (PRO) curve, as defined by the MVTec 3D-AD evaluation code.

Definition (Bergmann et al., MVTec 3D-AD): every distinct score of the whole data set is a threshold. At a
threshold, the false positive rate (FPR) is the fraction of all normal pixels scored at or above it, and the PRO is
the mean, over every 8-connected ground-truth region of the data set, of the fraction of that region scored at or
above it. The curve runs from (0, 0) through these points in order of decreasing threshold to (1, 1); its
trapezoid area up to ``FPR = integration_limit`` (interpolating linearly at the limit) divided by the limit is the
AU-PRO.

The straightforward computation sorts every pixel. Here only the normal pixels above the threshold where the FPR
reaches the limit are sorted (a sampled floor and ``np.partition`` find them), and the area is summed in closed
form: a normal pixel at score ``s`` widens the curve by ``1 / num_normal`` at the height halfway between the PRO
just above ``s`` and the PRO at ``s`` (the two differ only when ground-truth pixels are tied with it). Summed over
the normal pixels above the last threshold ``v``, this is, for every ground-truth pixel ``p`` above ``v`` (score
``a_p``, weight ``w_p = 1 / |region of p|``),
``w_p * ((#normal > v - #normal >= a_p) + (#normal > v - #normal > a_p)) / 2``, so the ground-truth pixels only need
their rank among the sorted normal ones. The last threshold's own segment is cut at the limit by interpolation.

Example:
    >>> maps = np.array([[[0.9, 0.5, 0.8], [0.3, 0.2, 0.1]]])
    >>> masks = np.array([[[1, 1, 0], [0, 0, 0]]])
    >>> round(au_pro(maps, masks, integration_limit=0.3), 6)
    0.583333
"""
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .ranking import count_greater
from .regions import RegionScores, num_highest_to_reach, split_by_regions


def check_integration_limit(integration_limit: float) -> None:
    """Raise a ValueError unless ``0 < integration_limit <= 1``."""
    if not 0.0 < integration_limit <= 1.0:
        raise ValueError(f'integration_limit must lie in (0, 1], got {integration_limit}.')


def pro_area(sorted_top_normal: np.ndarray, num_normal_at_least_lowest: int, regions: RegionScores,
             normal_greater: np.ndarray, normal_greater_equal: np.ndarray, integration_limit: float) -> float:
    """Normalised area under the PRO curve up to an FPR limit, given the highest normal scores sorted.

    Args:
        sorted_top_normal: The K highest normal scores sorted in ascending order, shape (K,); K must reach the limit
            (``K >= num_highest_to_reach(integration_limit, regions.num_normal)``).
        num_normal_at_least_lowest: Number of normal pixels scored at or above ``sorted_top_normal[0]`` (K plus the
            normal pixels outside the K tied with it).
        regions: The split scores (at least one region and one normal pixel); ``normal_scores`` is not read.
        normal_greater: Number of pixels of ``sorted_top_normal`` above each anomalous score, shape (num_anomalous,).
        normal_greater_equal: Same, at or above each anomalous score, shape (num_anomalous,).
        integration_limit: FPR limit in (0, 1].

    Returns:
        The AU-PRO in [0, 1].
    """
    num_normal, top_size = regions.num_normal, sorted_top_normal.size
    # The last threshold that matters: the first one (from the top) whose FPR reaches the limit.
    last_threshold = sorted_top_normal[top_size - num_highest_to_reach(integration_limit, num_normal)]
    normal_above = top_size - int(np.searchsorted(sorted_top_normal, last_threshold, side='right'))
    if last_threshold == sorted_top_normal[0]:
        normal_at_or_above = num_normal_at_least_lowest
    else:
        normal_at_or_above = top_size - int(np.searchsorted(sorted_top_normal, last_threshold, side='left'))
    scores, weights = regions.anomalous_scores, regions.anomalous_weights
    first_above = int(np.searchsorted(scores, last_threshold, side='right'))
    first_at = int(np.searchsorted(scores, last_threshold, side='left'))
    weights_above = weights[first_above:]
    overlap_above = float(weights_above.sum())
    overlap_at_or_above = float(weights[first_at:].sum())
    # Area of the curve over every normal pixel above the last threshold, in units of pixels x overlap.
    rank_sums = (normal_greater[first_above:] + normal_greater_equal[first_above:]).astype(np.float64)
    area = normal_above * overlap_above - 0.5 * float(np.dot(weights_above, rank_sums))
    area /= num_normal * regions.num_regions
    # The segment of the last threshold, from (fpr_above, pro_above) to (fpr_at, pro_at), cut at the limit.
    fpr_above, fpr_at = normal_above / num_normal, normal_at_or_above / num_normal
    pro_above, pro_at = overlap_above / regions.num_regions, overlap_at_or_above / regions.num_regions
    pro_at_limit = pro_above + (pro_at - pro_above) * (integration_limit - fpr_above) / (fpr_at - fpr_above)
    area += 0.5 * (pro_above + pro_at_limit) * (integration_limit - fpr_above)
    return area / integration_limit


def au_pro(anomaly_maps: ArrayLike | Sequence[ArrayLike], gt_masks: ArrayLike | Sequence[ArrayLike],
           integration_limit: float = 0.3) -> float:
    """Exact area under the PRO curve up to an FPR limit, divided by the limit (MVTec 3D-AD definition).

    Copies only the normal scores above an estimated floor (about the highest ``integration_limit + 2 %``, in the
    maps' dtype: float32 stays float32), partitions them and sorts the part above the limit's threshold; memory
    beyond the inputs is one bool mask of the maps' size plus these copies.

    Args:
        anomaly_maps: Real anomaly scores, shape (N, H, W), or a sequence of N maps of shapes (H_i, W_i).
        gt_masks: Ground truth of the same shapes; non-zero pixels are anomalous. Regions are 8-connected.
        integration_limit: FPR up to which the curve is integrated, in (0, 1].

    Returns:
        The AU-PRO in [0, 1], or NaN when the ground truth holds no region or no normal pixel.

    Raises:
        ValueError: If the limit is out of range, the shapes differ or a score is NaN.
    """
    check_integration_limit(integration_limit)
    regions = split_by_regions(anomaly_maps, gt_masks, normal_fraction=integration_limit)
    if regions.num_normal == 0 or regions.num_regions == 0:
        return float('nan')
    normal = regions.normal_scores
    top_start = normal.size - num_highest_to_reach(integration_limit, regions.num_normal)
    normal.partition(top_start)
    top = normal[top_start:]
    top.sort()
    # Normal scores left out by split_by_regions lie below every kept one, so ties of top[0] are all in `normal`.
    num_at_least_lowest = top.size + int(np.count_nonzero(normal[:top_start] == top[0]))
    greater, greater_equal = count_greater(top, regions.anomalous_scores)
    return pro_area(top, num_at_least_lowest, regions, greater, greater_equal, integration_limit)
