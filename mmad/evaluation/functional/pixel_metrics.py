"""Every pixel-level metric of a set of anomaly maps from one sort of the normal scores.

P-AUROC, P-AP and the AU-PRO all rank the ground-truth pixels among the normal ones. Sorting the normal scores once
and ranking the ground-truth pixels once serves all three (and every AU-PRO limit), which is what evaluating a test
set per defect type and per branch needs.

Example:
    >>> result = pixel_metrics(anomaly_maps, gt_masks, integration_limits=(0.3, 0.05))
    >>> result.auroc, result.average_precision, result.au_pros
"""
from collections.abc import Sequence
from typing import NamedTuple

from numpy.typing import ArrayLike

from .pro import check_integration_limit, pro_area
from .ranking import auroc_from_counts, average_precision_from_counts, count_greater
from .regions import split_by_regions


class PixelMetrics(NamedTuple):
    """Pixel-level metrics of a set of anomaly maps; NaN where undefined.

    Attributes:
        auroc: AUROC over all pixels (P-AUROC).
        average_precision: Average precision over all pixels (P-AP).
        au_pros: AU-PRO at each requested integration limit, in the order requested.
    """

    auroc: float
    average_precision: float
    au_pros: tuple[float, ...]


def pixel_metrics(anomaly_maps: ArrayLike | Sequence[ArrayLike], gt_masks: ArrayLike | Sequence[ArrayLike],
                  integration_limits: Sequence[float] = (0.3,)) -> PixelMetrics:
    """Compute P-AUROC, P-AP and the AU-PRO at several limits with one sort of the normal scores.

    Args:
        anomaly_maps: Real anomaly scores, shape (N, H, W), or a sequence of N maps of shapes (H_i, W_i).
        gt_masks: Ground truth of the same shapes; non-zero pixels are anomalous. Regions are 8-connected.
        integration_limits: FPR limits of the AU-PRO, each in (0, 1].

    Returns:
        The metrics; each equals :func:`auroc`, :func:`average_precision` and :func:`au_pro` on the same input.

    Raises:
        ValueError: If a limit is out of range, the shapes differ or a score is NaN.
    """
    for limit in integration_limits:
        check_integration_limit(limit)
    regions = split_by_regions(anomaly_maps, gt_masks)
    normal = regions.normal_scores
    normal.sort()
    greater, greater_equal = count_greater(normal, regions.anomalous_scores)
    pixel_auroc = auroc_from_counts(greater, greater_equal, normal.size)
    pixel_ap = average_precision_from_counts(regions.anomalous_scores, greater_equal)
    if normal.size == 0 or regions.num_regions == 0:
        au_pros = tuple(float('nan') for _ in integration_limits)
    else:
        au_pros = tuple(
            pro_area(normal, normal.size, regions, greater, greater_equal, limit)
            for limit in integration_limits)
    return PixelMetrics(pixel_auroc, pixel_ap, au_pros)
