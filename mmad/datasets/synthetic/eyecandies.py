"""Writing synthetic categories in the Eyecandies layout: six lightings, 16-bit depth with its range, normals, masks.

The scenes are those of the MVTec 3D-AD generator (objects on a table, modality-specific defects), rendered with
Eyecandies's pinhole camera (focal length 711.11 px at 512 px, principal point at the image centre, scaled with
the image side) and without missing points (Eyecandies is rendered, not scanned). Per sample ``NNN``::

    NNN_image_K.png        K = 0..5: 8-bit RGB under six lights (K = 4 is the rgb the dataset reads)
    NNN_depth.png          16-bit z in the camera frame, (z - min) / (max - min) * 65535
    NNN_info_depth.yaml    normalization: {min: ..., max: ...} in metres
    NNN_normals.png        8-bit (n + 1) / 2 of the unit surface normal (x, y, z) in RGB order
    NNN_mask.png           8-bit, 255 on anomalous pixels (all zero for good samples)

``color`` defects change only the images, ``dent`` defects only depth and normals, ``crack`` both.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from .defects import DEFECT_TYPES, GOOD
from .rendering import SyntheticSample, check_arguments, render_synthetic_sample

EYECANDIES_FOCAL_PX = 711.11
"""Focal length of Eyecandies's camera in pixels at its 512 px image side."""
EYECANDIES_SIDE_PX = 512
SPLIT_FOLDERS = dict(train='train', validation='val', test='test_public')
NUM_LIGHTINGS = 6


def eyecandies_focal_length(side: int) -> float:
    """Eyecandies's focal length in pixels for images of ``side`` pixels (711.11 px at 512 px)."""
    return EYECANDIES_FOCAL_PX * side / EYECANDIES_SIDE_PX


def lighting_directions(count: int = NUM_LIGHTINGS) -> np.ndarray:
    """``count`` unit light directions around the camera axis, 35 degrees off it, evenly spread in azimuth.

    Returns:
        (count, 3) float64 directions pointing into the scene (positive z).
    """
    azimuths = 2 * np.pi * np.arange(count) / count
    tilt = np.deg2rad(35.0)
    return np.stack([np.cos(azimuths) * np.sin(tilt), np.sin(azimuths) * np.sin(tilt),
                     np.full(count, -np.cos(tilt))], axis=1)


def encode_depth(depth: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Eyecandies's depth encoding: 16-bit ``round((z - min) / (max - min) * 65535)``.

    Args:
        depth: (H, W) z in metres.

    Returns:
        ``(png uint16 (H, W), min, max)``.
    """
    low, high = float(depth.min()), float(depth.max())
    span = high - low if high > low else 1.0
    return np.round((depth - low) / span * 65535).astype(np.uint16), low, high


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f'could not write {path}')


def _write_sample(sample: SyntheticSample, data_dir: Path, stem: str) -> None:
    for index, image in enumerate(sample.lightings):
        _write_png(data_dir / f'{stem}_image_{index}.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    encoded, low, high = encode_depth(sample.depth)
    _write_png(data_dir / f'{stem}_depth.png', encoded)
    (data_dir / f'{stem}_info_depth.yaml').write_text(f'normalization:\n  min: {low!r}\n  max: {high!r}\n')
    normals = np.round((sample.normals + 1) / 2 * 255).astype(np.uint8)
    _write_png(data_dir / f'{stem}_normals.png', cv2.cvtColor(normals, cv2.COLOR_RGB2BGR))
    _write_png(data_dir / f'{stem}_mask.png', np.where(sample.gt > 0, 255, 0).astype(np.uint8))


def make_synthetic_eyecandies(out_dir: str | Path, category: str = 'SyntheticCandy', size: int = 128,
                              num_train: int = 20, num_val: int = 10, num_test_per_defect: int = 10, seed: int = 0,
                              defect_types: Sequence[str] = DEFECT_TYPES, show_progress: bool = False) -> Path:
    """Write one synthetic category in the Eyecandies layout.

    The tree (the test split holds ``num_test_per_defect`` good samples, then as many of each defect type, numbered
    in that order)::

        out_dir/category/
            train/data/NNN_*        good
            val/data/NNN_*          good
            test_public/data/NNN_*  good and anomalous; the mask says which

    Each sample has the files listed in the module docstring. The output is a pure function of the arguments.

    Args:
        out_dir: Root folder; the category folder is created inside.
        category: Category name (a plain directory name).
        size: Image side in pixels (square, as Eyecandies), at least 16.
        num_train: Samples in ``train``.
        num_val: Samples in ``val``.
        num_test_per_defect: Good samples in ``test_public`` and samples of each defect type.
        seed: Seed.
        defect_types: Defect kinds among :data:`DEFECT_TYPES`.
        show_progress: Show a progress bar.

    Returns:
        The category folder ``out_dir/category``.
    """
    check_arguments(category, size, size, defect_types, seed)
    root = Path(out_dir) / category
    jobs = [('train', GOOD, i, i) for i in range(num_train)] + [('validation', GOOD, i, i) for i in range(num_val)]
    kinds = list(dict.fromkeys((GOOD, *defect_types)))
    jobs += [('test', kind, i, position * num_test_per_defect + i)
             for position, kind in enumerate(kinds) for i in range(num_test_per_defect)]
    for folder in SPLIT_FOLDERS.values():
        (root / folder / 'data').mkdir(parents=True, exist_ok=True)
    if show_progress:
        jobs = track(jobs, description=f'Rendering {category}')
    lights = lighting_directions()
    for split, kind, index, number in jobs:
        sample = render_synthetic_sample(category, split, kind, index, height=size, width=size, seed=seed,
                                         shadow_prob=0.0, focal=eyecandies_focal_length(size), lights=lights)
        _write_sample(sample, root / SPLIT_FOLDERS[split] / 'data', f'{number:03d}')
    return root
