"""Straightforward exact AU-PRO, the reference the fast ``mmad.evaluation.functional.au_pro`` is checked against.

It follows the MVTec 3D-AD evaluation code step by step: each pixel gets the FPR change (1 for a normal pixel) and
the PRO change (1 / size of its 8-connected ground-truth region) it causes when it becomes positive; one argsort of
every pixel, float64 cumulative sums, one (FPR, PRO) point per distinct score (the last of a run of equal scores),
(0, 0) and (1, 1) added at the ends, trapezoid area up to the limit with linear interpolation at the limit,
divided by the limit. Slow (about 30 s and 5.5 GB for 1,197 maps of 256 x 256), used by the tests and by
tools/analysis_tools/benchmark_aupro.py.
"""
import numpy as np
from scipy import ndimage


def reference_pro_curve(anomaly_maps, gt_masks) -> tuple[np.ndarray, np.ndarray]:
    """The full PRO curve of N maps and masks ((N, H, W) or N maps of any shapes): float64 FPRs and PROs."""
    fp_changes, pro_changes, num_regions = [], [], 0
    for mask in gt_masks:
        region_ids, map_regions = ndimage.label(np.asarray(mask) != 0, structure=np.ones((3, 3), dtype=int))
        num_regions += map_regions
        fp_change = (region_ids == 0).astype(np.uint32)
        pro_change = np.zeros(region_ids.shape, dtype=np.float64)
        for region in range(1, map_regions + 1):
            in_region = region_ids == region
            pro_change[in_region] = 1.0 / np.count_nonzero(in_region)
        fp_changes.append(fp_change.ravel())
        pro_changes.append(pro_change.ravel())
    fp_changes, pro_changes = np.concatenate(fp_changes), np.concatenate(pro_changes)
    num_normal = int(fp_changes.sum(dtype=np.int64))

    scores = np.concatenate([np.asarray(score_map).ravel() for score_map in anomaly_maps])
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    fprs = np.cumsum(fp_changes[order], dtype=np.int64) / num_normal
    pros = np.cumsum(pro_changes[order]) / num_regions
    del order
    last_of_each_score = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    fprs = np.clip(fprs[last_of_each_score], None, 1.0)
    pros = np.clip(pros[last_of_each_score], None, 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def trapezoid_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under the curve (x ascending, repeats allowed) up to ``x_max``, interpolating at ``x_max``."""
    correction = 0.0
    if x_max not in x:
        insert_at = int(np.searchsorted(x, x_max, side='right'))
        assert 0 < insert_at < len(x)
        x0, x1, y0, y1 = x[insert_at - 1], x[insert_at], y[insert_at - 1], y[insert_at]
        y_at_max = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        correction = 0.5 * (y0 + y_at_max) * (x_max - x0)
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def reference_au_pro(anomaly_maps, gt_masks, integration_limit: float = 0.3) -> float:
    """Exact AU-PRO of N maps and masks up to ``integration_limit``, divided by the limit."""
    fprs, pros = reference_pro_curve(anomaly_maps, gt_masks)
    return trapezoid_up_to(fprs, pros, integration_limit) / integration_limit
