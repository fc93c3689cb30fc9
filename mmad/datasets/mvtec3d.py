"""MVTec 3D-AD: rgb images, organised xyz point clouds and ground-truth masks of ten object categories."""
from pathlib import Path

from mmad.registry import DATASETS

from .base_dataset import BaseADDataset
from .utils import files_by_stem, raise_pairing_problems, require_category_dir, require_split_dir, visible_entries


@DATASETS.register_module()
class MVTec3DDataset(BaseADDataset):
    """MVTec 3D-AD, one category and one split, read from the tree the authors distribute.

    Expected tree (``data_root`` defaults to ``data/mvtec_3d_anomaly_detection``)::

        data_root/
        └── CAT/                          e.g. bagel, cable_gland, ..., tire
            ├── train/
            │   └── good/
            │       ├── rgb/NNN.png       8-bit colour image
            │       └── xyz/NNN.tiff      float32 (H, W, 3) point cloud in metres, (0, 0, 0) = missing
            ├── validation/
            │   └── good/{rgb/NNN.png, xyz/NNN.tiff}
            └── test/
                ├── good/{rgb/NNN.png, xyz/NNN.tiff, gt/NNN.png (optional)}
                └── <defect>/             e.g. crack, hole, combined
                    ├── rgb/NNN.png
                    ├── xyz/NNN.tiff
                    └── gt/NNN.png        8-bit mask, > 0 on defects (the real masks hold ids like 253-255)

    Other files (``CAT/calibration/``, ``*.txt`` at the root, ...) and hidden files and folders (``.DS_Store``,
    macOS AppleDouble ``._NNN.png``) are ignored. The rgb, xyz and gt files of
    a sample share their stem; an xyz without its rgb, an rgb without its xyz, a gt without its rgb or a
    defect sample without gt is an error that names the files. Good samples may or may not have a gt
    mask (the real test/good masks are all zero). Every folder under the split is a defect type; its
    label is 0 for ``good`` and 1 otherwise.

    Each sample is ``dict(rgb_path, xyz_path, gt_path (None without mask), label, defect_type, category,
    sample_name='<defect_type>_<stem>')``. After loading, ``metainfo`` holds ``dataset_name``,
    ``category``, ``split`` and ``defect_types`` (good first, then sorted).

    Args:
        category: Category folder name, e.g. ``'bagel'``.
        split: ``'train'``, ``'validation'`` or ``'test'``.
        data_root: Folder holding the category folders.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``, ``test_mode``, ``indices``, ``metainfo``,
            ``lazy_init``, ...).
    """

    METAINFO = dict(dataset_name='MVTec 3D-AD')
    SPLITS = ('train', 'validation', 'test')

    def __init__(self, category: str, split: str = 'train', data_root: str = 'data/mvtec_3d_anomaly_detection',
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {self.SPLITS}, got {split!r}')
        self.category = category
        self.split = split
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        """List the samples of the split, defect types in order (good first), stems sorted."""
        category_dir = require_category_dir(self.data_root, self.category, self.METAINFO['dataset_name'],
                                            'train/good/rgb/000.png')
        split_dir = require_split_dir(category_dir, self.split)
        defect_dirs = sorted((path for path in visible_entries(split_dir) if path.is_dir()),
                             key=lambda path: (path.name != 'good', path.name))
        data_list = [info for defect_dir in defect_dirs for info in self._load_defect_type(defect_dir)]
        if not data_list:
            raise FileNotFoundError(f'{split_dir} holds no sample: expected <defect>/rgb/NNN.png and '
                                    '<defect>/xyz/NNN.tiff below it (see docs/datasets.md)')
        defect_types = tuple(dict.fromkeys(info['defect_type'] for info in data_list))
        self._metainfo.update(category=self.category, split=self.split, defect_types=defect_types)
        return data_list

    def _load_defect_type(self, defect_dir: Path) -> list[dict]:
        """Pair the rgb, xyz and gt files of one defect-type folder."""
        defect_type = defect_dir.name
        rgb_dir, xyz_dir, gt_dir = defect_dir / 'rgb', defect_dir / 'xyz', defect_dir / 'gt'
        rgb = files_by_stem(rgb_dir, ('.png',))
        xyz = files_by_stem(xyz_dir, ('.tiff', '.tif'))
        gt = files_by_stem(gt_dir, ('.png',))
        problems = [f'point cloud {xyz[stem]} has no rgb image (expected {rgb_dir / stem}.png)'
                    for stem in sorted(xyz.keys() - rgb.keys())]
        problems += [f'rgb image {rgb[stem]} has no point cloud (expected {xyz_dir / stem}.tiff)'
                     for stem in sorted(rgb.keys() - xyz.keys())]
        problems += [f'gt mask {gt[stem]} has no rgb image (expected {rgb_dir / stem}.png)'
                     for stem in sorted(gt.keys() - rgb.keys())]
        if defect_type != 'good':
            problems += [f'defect sample {rgb[stem]} has no gt mask (expected {gt_dir / stem}.png)'
                         for stem in sorted(rgb.keys() - gt.keys())]
        raise_pairing_problems(defect_dir, problems)
        return [
            dict(rgb_path=str(rgb[stem]), xyz_path=str(xyz[stem]), gt_path=str(gt[stem]) if stem in gt else None,
                 label=int(defect_type != 'good'), defect_type=defect_type, category=self.category,
                 sample_name=f'{defect_type}_{stem}') for stem in sorted(rgb)
        ]
