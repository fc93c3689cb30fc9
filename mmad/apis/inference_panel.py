"""One picture per scored sample (as the paper's Fig. 6): inputs, branch maps, fused map, mask, score, decision."""
from __future__ import annotations

import cv2
import numpy as np

from mmad.visualization.heatmap import colorize, overlay

from .inference import InferenceResult

TILE_SIDE = 256
TITLE_HEIGHT = 18
HEADER_HEIGHT = 24
DECISION_COLOURS = {1: (200, 0, 0), 0: (0, 140, 0), None: (90, 90, 90)}


def input_image(array: np.ndarray, modality: str) -> np.ndarray:
    """An input modality as a uint8 RGB image.

    Args:
        array: The packed input (C, H, W): rgb in 0-255, other modalities in any range.
        modality: Its name (``'rgb'`` is drawn as it is, anything else min-max scaled to 0-255).

    Returns:
        uint8 (H, W, 3).
    """
    image = np.moveaxis(np.asarray(array, dtype=np.float32), 0, -1)
    if modality != 'rgb':
        low, high = float(image.min()), float(image.max())
        image = (image - low) / max(high - low, 1e-12) * 255
    image = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]


def draw_inference_panel(result: InferenceResult) -> np.ndarray:
    """Draw a result: each input modality, each branch map and the fused map over the rgb image, the mask.

    Tiles have the sample's aspect ratio, the longer side :data:`TILE_SIDE`. Branch maps are coloured over their
    own range; the fused map from its minimum to the larger of the score and the threshold, so that a sample
    below the threshold never reaches the hottest colour. The header holds the name, score, threshold and decision.

    Args:
        result: What :func:`~mmad.apis.inference_model` returned.

    Returns:
        uint8 RGB image.
    """
    height, width = result.ori_shape
    scale = TILE_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    inputs = {name: cv2.resize(input_image(array, name), size, interpolation=cv2.INTER_LINEAR)
              for name, array in result.inputs.items()}
    background = inputs.get('rgb', next(iter(inputs.values())))
    tiles = [_titled(image, name) for name, image in inputs.items()]
    for name, branch_map in result.branch_maps.items():
        resized = cv2.resize(branch_map, size, interpolation=cv2.INTER_LINEAR)
        tiles.append(_titled(overlay(background, colorize(resized, float(resized.min()), float(resized.max()))),
                             f'{name} map'))
    fused = cv2.resize(result.anomaly_map, size, interpolation=cv2.INTER_LINEAR)
    top = max(result.score, result.threshold) if result.threshold is not None else result.score
    tiles.append(_titled(overlay(background, colorize(fused, float(fused.min()), top)), 'fused map'))
    if result.gt_mask is not None:
        mask = cv2.resize(result.gt_mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_NEAREST)
        tiles.append(_titled(np.repeat(mask[..., None], 3, axis=2), 'ground truth'))
    body = np.concatenate(tiles, axis=1)
    return np.concatenate([_header(result, body.shape[1]), body], axis=0)


def header_text(result: InferenceResult) -> str:
    """``'<name>  score 1.23  threshold 1.1  ANOMALOUS'`` (no threshold: ``'no threshold'``)."""
    if result.threshold is None:
        return f'{result.name}  score {result.score:.4g}  no threshold'
    return f'{result.name}  score {result.score:.4g}  threshold {result.threshold:.4g}  {result.label.upper()}'


def _header(result: InferenceResult, width: int) -> np.ndarray:
    bar = np.full((HEADER_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(bar, header_text(result), (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                DECISION_COLOURS[result.decision], 1, cv2.LINE_AA)
    return bar


def _titled(tile: np.ndarray, title: str) -> np.ndarray:
    bar = np.full((TITLE_HEIGHT, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], axis=0)
