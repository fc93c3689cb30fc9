"""Synthetic parts in a free folder layout (flat folders, .jpg rgb, 16-bit .png depth, masks for some defects only).

The layout ``FolderDataset`` reads with the configs of ``configs/folder``, written from the MVTec 3D-AD-format
generator; used by the own-data tutorial and its tests.
"""
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

from .writing import make_synthetic_mvtec3d

DEPTH_UNITS_PER_METRE = 10000
"""Depth PNG values are z in units of 0.1 mm (``uint16``), 0 where the point is missing."""


def make_synthetic_folder_tree(out_dir: str | Path, size: int = 64, num_normal: int = 10, num_test: int = 4,
                               seed: int = 0) -> Path:
    """Write synthetic parts as a user might store them; existing files below ``out_dir`` are overwritten.

    The tree (``part_NNN``: the sample names; each folder numbers its samples from its own offset)::

        out_dir/
        ├── train_good/{part_NNN.jpg, part_NNN.tiff, part_NNN_depth.png}   normal training samples
        ├── test_good/{...}                                               normal test samples
        ├── crack/{...}                                                   defect type with masks
        ├── color/{...}                                                   defect type without masks
        └── masks/crack/part_NNN_mask.png                                 8-bit, 255 on the defect

    ``.jpg``: the rgb image (JPEG quality 95); ``.tiff``: float32 (H, W, 3) xyz in metres; ``_depth.png``: 16-bit
    z (:data:`DEPTH_UNITS_PER_METRE`), 0 = missing.

    Args:
        out_dir: Root folder of the tree (created if missing).
        size: Image side in pixels (at least 16).
        num_normal: Normal training samples.
        num_test: Samples in ``test_good`` and in each defect folder.
        seed: Seed of the generator.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as work_dir:
        category = make_synthetic_mvtec3d(work_dir, 'part', size, size, num_train=num_normal, num_val=0,
                                          num_test_per_defect=num_test, seed=seed, defect_types=('crack', 'color'))
        offset = 0
        for source, target, with_masks in (('train/good', 'train_good', False), ('test/good', 'test_good', False),
                                           ('test/crack', 'crack', True), ('test/color', 'color', False)):
            source_dir = category / source
            for rgb_path in sorted((source_dir / 'rgb').glob('*.png')):
                name = f'part_{offset:03d}'
                offset += 1
                _write_sample(source_dir, rgb_path.stem, out_dir / target, name)
                if with_masks:
                    mask_dir = out_dir / 'masks' / target
                    mask_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source_dir / 'gt' / rgb_path.name, mask_dir / f'{name}_mask.png')
    return out_dir


def _write_sample(source_dir: Path, stem: str, target_dir: Path, name: str) -> None:
    """Write one generated sample as ``name.jpg``, ``name.tiff`` and ``name_depth.png`` into ``target_dir``."""
    target_dir.mkdir(parents=True, exist_ok=True)
    rgb = cv2.imread(str(source_dir / 'rgb' / f'{stem}.png'), cv2.IMREAD_COLOR)
    cv2.imwrite(str(target_dir / f'{name}.jpg'), rgb, [cv2.IMWRITE_JPEG_QUALITY, 95])
    shutil.copyfile(source_dir / 'xyz' / f'{stem}.tiff', target_dir / f'{name}.tiff')
    z = tifffile.imread(source_dir / 'xyz' / f'{stem}.tiff')[..., 2]
    depth = np.clip(np.round(z * DEPTH_UNITS_PER_METRE), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    cv2.imwrite(str(target_dir / f'{name}_depth.png'), depth)
