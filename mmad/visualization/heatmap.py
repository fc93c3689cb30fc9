"""Heatmap overlays of anomaly maps, drawn with OpenCV (no display needed)."""
from __future__ import annotations

import cv2
import numpy as np


def colorize(anomaly_map: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map scores to an RGB jet colour image.

    Args:
        anomaly_map: Scores of shape (H, W).
        vmin: Score drawn as the coldest colour.
        vmax: Score drawn as the hottest colour.

    Returns:
        uint8 RGB image of shape (H, W, 3).
    """
    scale = max(vmax - vmin, 1e-12)
    normed = np.clip((anomaly_map.astype(np.float32) - vmin) / scale, 0.0, 1.0)
    bgr = cv2.applyColorMap((normed * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour heatmap over an RGB image of the same size; both uint8 (H, W, 3)."""
    return cv2.addWeighted(image, 1.0 - alpha, heatmap, alpha, 0.0)


def _titled(tile: np.ndarray, title: str) -> np.ndarray:
    """Put a title bar above an RGB tile (H, W, 3) -> (H + 18, W, 3)."""
    bar = np.full((18, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], axis=0)


def draw_sample_panel(image: np.ndarray, gt_mask: np.ndarray | None, maps: dict[str, np.ndarray],
                      ranges: dict[str, tuple[float, float]], title: str = '') -> np.ndarray:
    """Draw one sample: the image, its ground truth and one overlay per anomaly map, side by side.

    Args:
        image: uint8 RGB image (H, W, 3), at the maps' size.
        gt_mask: Binary mask (H, W) or None.
        maps: Name -> scores (H, W), e.g. ``{'fused': ..., 'rgb': ..., 'depth': ...}``.
        ranges: Name -> (vmin, vmax) used to colour that map, shared by all samples of a test set.
        title: Text over the image tile (e.g. defect type and score).

    Returns:
        uint8 RGB panel of shape (H + 18, W * (2 + len(maps)), 3).
    """
    tiles = [_titled(image, title)]
    if gt_mask is not None:
        gt = np.repeat((gt_mask > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)
        tiles.append(_titled(gt, 'ground truth'))
    for name, anomaly_map in maps.items():
        tiles.append(_titled(overlay(image, colorize(anomaly_map, *ranges[name])), name))
    return np.concatenate(tiles, axis=1)
