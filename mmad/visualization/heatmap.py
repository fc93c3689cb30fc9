"""Heatmap panels of anomaly maps, drawn with OpenCV (no display needed).

A panel shows one sample left to right: the image (its title: defect type, score and, with a threshold, the
decision, also shown as a red (anomalous) or green (normal) frame), one tile per other input modality as the model
sees it (depth as grey, normals as colour), the ground truth, then per anomaly map its jet overlay followed by a
colour bar labelled with the map's range. With a decision threshold, the fused map's region above it is outlined on
its overlay (the predicted contour).
"""
from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

TITLE_BAR = 18
#: Width of the colour bar drawn right of each map tile: the gradient and its value labels.
COLOUR_BAR_WIDTH = 46
_GRADIENT_WIDTH = 8
CONTOUR_COLOUR = (255, 255, 255)
#: RGB frame of the image tile for the decision: anomalous, normal.
DECISION_COLOURS = {True: (255, 0, 0), False: (0, 200, 0)}
DECISION_FRAME = 2


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


def colour_bar(height: int, vmin: float, vmax: float) -> np.ndarray:
    """A vertical jet colour bar, hottest at the top, with ``vmax``, the middle and ``vmin`` written beside it.

    Args:
        height: Height in pixels.
        vmin: Value of the bottom row.
        vmax: Value of the top row.

    Returns:
        uint8 RGB image of shape (height, COLOUR_BAR_WIDTH, 3) on white.
    """
    bar = np.full((height, COLOUR_BAR_WIDTH, 3), 255, np.uint8)
    column = np.linspace(vmax, vmin, height, dtype=np.float32)[:, None]
    bar[:, 1:1 + _GRADIENT_WIDTH] = colorize(np.repeat(column, _GRADIENT_WIDTH, axis=1), vmin, vmax)
    for value, y in ((vmax, 8), ((vmin + vmax) / 2, height // 2 + 3), (vmin, height - 2)):
        cv2.putText(bar, f'{value:.3g}', (_GRADIENT_WIDTH + 3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return bar


def input_tile(image: np.ndarray) -> np.ndarray:
    """An input modality as the model sees it, as a uint8 RGB image.

    Args:
        image: (C, H, W) with C 1 or 3, as ``PackADInputs`` gives it, or (H, W). Values in [0, 1] (depth, normals)
            are scaled by 255, values up to 255 (rgb) kept; other ranges are stretched from their minimum to maximum.

    Returns:
        uint8 RGB image (H, W, 3); a 1-channel input is grey.
    """
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    else:
        array = array[..., None]
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high <= 1:
        array = array * 255
    elif low < 0 or high > 255:
        array = (array - low) / max(high - low, 1e-12) * 255
    tile = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return np.repeat(tile, 3, axis=2) if tile.shape[2] == 1 else tile


def outline(tile: np.ndarray, region: np.ndarray, colour: tuple[int, int, int] = CONTOUR_COLOUR) -> np.ndarray:
    """Draw the 1-pixel outline of a binary region on a copy of an RGB tile.

    Args:
        tile: uint8 RGB (H, W, 3).
        region: Boolean (H, W).
        colour: RGB of the outline.

    Returns:
        The tile with the region's contours drawn.
    """
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    drawn = np.ascontiguousarray(tile.copy())
    cv2.drawContours(drawn, contours, -1, colour, 1)
    return drawn


def _titled(tile: np.ndarray, title: str) -> np.ndarray:
    """Put a title bar above an RGB tile (H, W, 3) -> (H + TITLE_BAR, W, 3)."""
    bar = np.full((TITLE_BAR, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], axis=0)


def draw_sample_panel(image: np.ndarray, gt_mask: np.ndarray | None, maps: Mapping[str, np.ndarray],
                      ranges: Mapping[str, tuple[float, float]], title: str = '',
                      inputs: Mapping[str, np.ndarray] | None = None, threshold: float | None = None,
                      anomalous: bool | None = None) -> np.ndarray:
    """Draw one sample: image, other inputs, ground truth, and per anomaly map an overlay and its colour bar.

    Args:
        image: uint8 RGB image (H, W, 3), at the maps' size.
        gt_mask: Binary mask (H, W) or None.
        maps: Name -> scores (H, W), e.g. ``{'fused': ..., 'rgb': ..., 'depth': ...}``; the first is the fused map.
        ranges: Name -> (vmin, vmax) used to colour that map, shared by all samples of a test set.
        title: Text over the image tile (e.g. defect type, score and decision).
        inputs: Modality -> uint8 RGB tile (H, W, 3) of the other input modalities (see :func:`input_tile`).
        threshold: Decision threshold of the image score; the first map's region above it is outlined.
        anomalous: The decision, drawn as a frame of :data:`DECISION_COLOURS` inside the image tile (None: no frame).

    Returns:
        uint8 RGB panel of shape (H + TITLE_BAR, W * (1 + len(inputs) + (gt_mask given) + len(maps))
        + COLOUR_BAR_WIDTH * len(maps), 3).
    """
    height = image.shape[0]
    if anomalous is not None:
        image_tile = image.copy()
        cv2.rectangle(image_tile, (0, 0), (image.shape[1] - 1, height - 1), DECISION_COLOURS[bool(anomalous)],
                      DECISION_FRAME)
    else:
        image_tile = image
    tiles = [_titled(image_tile, title)]
    tiles += [_titled(tile, name) for name, tile in (inputs or {}).items()]
    if gt_mask is not None:
        gt = np.repeat((gt_mask > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)
        tiles.append(_titled(gt, 'ground truth'))
    for index, (name, anomaly_map) in enumerate(maps.items()):
        tile = overlay(image, colorize(anomaly_map, *ranges[name]))
        if index == 0 and threshold is not None:
            tile = outline(tile, anomaly_map > threshold)
        tiles.append(_titled(tile, name))
        tiles.append(_titled(colour_bar(height, *ranges[name]), ''))
    return np.concatenate(tiles, axis=1)
