"""Writing synthetic categories in the MVTec 3D-AD layout."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import tifffile
from rich.progress import track

from .defects import DEFECT_TYPES, GOOD
from .rendering import SyntheticSample, check_arguments, render_synthetic_sample


def _write_sample(sample: SyntheticSample, folder: Path, stem: str, with_gt: bool) -> None:
    rgb_path = folder / 'rgb' / f'{stem}.png'
    if not cv2.imwrite(str(rgb_path), cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write the RGB image {rgb_path}')
    tifffile.imwrite(folder / 'xyz' / f'{stem}.tiff', sample.xyz, photometric='rgb')
    if with_gt:
        gt_path = folder / 'gt' / f'{stem}.png'
        if not cv2.imwrite(str(gt_path), sample.gt):
            raise OSError(f'could not write the mask {gt_path}')


def make_synthetic_mvtec3d(out_dir: str | Path, category: str = 'synthetic', height: int = 128, width: int = 128,
                           num_train: int = 20, num_val: int = 10, num_test_per_defect: int = 10, seed: int = 0,
                           defect_types: Sequence[str] = DEFECT_TYPES, shadow_prob: float = 0.3,
                           show_progress: bool = False) -> Path:
    """Write one synthetic category in the MVTec 3D-AD layout.

    The tree (``NNN`` = 000, 001, ...; ``test/good`` has all-zero masks, as in the real dataset)::

        out_dir/category/
            train/good/{rgb/NNN.png, xyz/NNN.tiff}
            validation/good/{rgb/NNN.png, xyz/NNN.tiff}
            test/{good, color, dent, crack}/{rgb/NNN.png, xyz/NNN.tiff, gt/NNN.png}

    rgb: 8-bit 3-channel PNG; xyz: float32 (H, W, 3) TIFF in metres, (0, 0, 0) for missing points; gt: 8-bit
    single-channel PNG. Default defect sizes are in the module docstring. Existing files are overwritten.

    Args:
        out_dir: Root folder; the category folder is created inside.
        category: Category name (a plain directory name).
        height: Image height H in pixels (at least 16), independent of ``width``.
        width: Image width W in pixels (at least 16).
        num_train: Samples in ``train/good``.
        num_val: Samples in ``validation/good``.
        num_test_per_defect: Samples in ``test/good`` and in each defect folder.
        seed: Seed; the output is a pure function of the arguments.
        defect_types: Defect folders to write, among :data:`DEFECT_TYPES`.
        shadow_prob: Probability that a sample has a sensor-shadow strip along one border.
        show_progress: Show a progress bar.

    Returns:
        The category folder ``out_dir/category``.
    """
    check_arguments(category, height, width, defect_types, seed)
    root = Path(out_dir) / category
    jobs = [('train', GOOD, i) for i in range(num_train)] + [('validation', GOOD, i) for i in range(num_val)]
    jobs += [('test', kind, i) for kind in dict.fromkeys((GOOD, *defect_types)) for i in range(num_test_per_defect)]
    for split, kind in dict.fromkeys((split, kind) for split, kind, _ in jobs):
        for modality in ('rgb', 'xyz', 'gt') if split == 'test' else ('rgb', 'xyz'):
            (root / split / kind / modality).mkdir(parents=True, exist_ok=True)
    if show_progress:
        jobs = track(jobs, description=f'Rendering {category}')
    for split, kind, index in jobs:
        sample = render_synthetic_sample(category, split, kind, index, height=height, width=width, seed=seed,
                                         shadow_prob=shadow_prob)
        _write_sample(sample, root / split / kind, f'{index:03d}', with_gt=split == 'test')
    return root
