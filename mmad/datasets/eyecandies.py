"""Eyecandies: rendered candies with multi-light rgb images, depth and normal maps."""
import re
from collections.abc import Sequence
from pathlib import Path

import cv2

from mmad.registry import DATASETS
from mmad.structures import binarise_mask

from .base_dataset import BaseADDataset
from .transforms.file_io import read_png
from .utils import describe_unusable_folder, raise_pairing_problems, require_category_dir, require_split_dir

SAMPLE_FILE = re.compile(r'^(?P<stem>\d+)_(?P<item>.+)$')
SAMPLE_FILES = {
    'normals': {'normals.png': ('normal map', 'normals_path')},
    'depth': {'depth.png': ('depth map', 'depth_path'), 'info_depth.yaml': ('depth range', 'depth_info_path')},
}
"""The per-sample files a dataset can pair with the rgb image: name -> {file item: (what it is, data info key)}."""


@DATASETS.register_module()
class EyecandiesDataset(BaseADDataset):
    """Eyecandies, one category and one split, read from the tree the authors distribute.

    Expected tree (``data_root`` defaults to ``data/eyecandies``; the category folders are named as
    downloaded, e.g. ``CandyCane``, ``GummyBear``)::

        data_root/
        └── CAT/
            ├── train/data/               anomaly-free
            │   ├── NNN_image_K.png       K = 0..5, one per lighting; K = 4 is used as rgb
            │   ├── NNN_normals.png       8-bit normal map (files=('normals', ...))
            │   ├── NNN_depth.png         16-bit depth, with NNN_info_depth.yaml: normalization {min, max} in
            │   │                         metres (files=(..., 'depth'); LoadXYZFromDepthFile back-projects it)
            │   ├── NNN_mask.png, NNN_pose.txt, NNN_metadata.yaml, ...
            ├── val/data/                 anomaly-free, same files
            ├── test_public/data/         labelled test split, same files;
            │   └── NNN_mask.png          the anomaly mask, > 0 on anomalous pixels
            └── test_private/             unlabelled, not used

    Splits ``train``, ``validation`` and ``test`` read ``train``, ``val`` and ``test_public``. The files of
    a sample share their numeric prefix ``NNN``; an rgb image without one of the ``files``, one of them without
    the rgb image, or a test sample without mask is an error that names the files. Hidden files (``.DS_Store``, macOS
    AppleDouble ``._NNN_image_4.png``) do not match ``NNN_<item>`` and are ignored.

    Labels: a test sample is anomalous (label 1, defect type ``'anomalous'``) iff its mask has a positive
    pixel, as the official evaluation (``eyecandies ec-metrics``: label from mask, ``mask != 0``) decides;
    ``NNN_metadata.yaml`` is not read. Train and validation samples are good by construction (label 0,
    ``gt_path`` None).

    Each sample is ``dict(rgb_path, normals_path and/or depth_path + depth_info_path, gt_path, label,
    defect_type, category, sample_name='<defect_type>_<NNN>')``. After loading, ``metainfo`` holds
    ``dataset_name``, ``category``, ``split`` and ``defect_types`` (good first).

    Args:
        category: Category folder name, e.g. ``'CandyCane'``.
        split: ``'train'``, ``'validation'`` or ``'test'``.
        data_root: Folder holding the category folders.
        rgb_image_index: Lighting K of the ``NNN_image_K.png`` used as rgb (4 in the CRD code).
        files: The files every sample must have besides the rgb image: ``'normals'`` (``NNN_normals.png``)
            and/or ``'depth'`` (``NNN_depth.png`` and ``NNN_info_depth.yaml``).
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``, ``test_mode``, ``indices``, ``metainfo``, ...).
    """

    METAINFO = dict(dataset_name='Eyecandies')
    SPLIT_FOLDERS = dict(train='train', validation='val', test='test_public')

    def __init__(self, category: str, split: str = 'train', data_root: str = 'data/eyecandies',
                 rgb_image_index: int = 4, files: Sequence[str] = ('normals', ), **kwargs):
        if split not in self.SPLIT_FOLDERS:
            raise ValueError(f'split must be one of {tuple(self.SPLIT_FOLDERS)}, got {split!r}')
        if isinstance(files, str) or not set(files) <= set(SAMPLE_FILES):
            raise ValueError(f'files must be a sequence of some of {list(SAMPLE_FILES)}, got {files!r}')
        self.category = category
        self.split = split
        self.rgb_image_index = rgb_image_index
        self.files = tuple(files)
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        """List the samples of the split, sorted by their numeric prefix."""
        category_dir = require_category_dir(self.data_root, self.category, self.METAINFO['dataset_name'],
                                            f'train/data/000_image_{self.rgb_image_index}.png')
        data_dir = require_split_dir(category_dir, self.SPLIT_FOLDERS[self.split]) / 'data'
        files = self._files_by_stem(data_dir)
        rgb_item = f'image_{self.rgb_image_index}.png'
        required = {item: what for name in self.files for item, (what, _) in SAMPLE_FILES[name].items()}
        stems = sorted((stem for stem, items in files.items() if {rgb_item, *required} & set(items)), key=int)
        if not stems:
            expected = ' and '.join(f'NNN_{item}' for item in (rgb_item, *required))
            raise FileNotFoundError(f'{data_dir} holds no sample: expected {expected} files (see docs/datasets.md)')
        is_test = self.split == 'test'
        problems = []
        for stem in stems:
            items = files[stem]
            if rgb_item not in items:
                present = next(item for item in required if item in items)
                problems.append(f'{required[present]} {items[present]} has no rgb image (expected '
                                f'{data_dir / stem}_{rgb_item})')
            else:
                problems += [f'rgb image {items[rgb_item]} has no {what} (expected {data_dir / stem}_{item})'
                             for item, what in required.items() if item not in items]
            if is_test and 'mask.png' not in items:
                problems.append(f'test sample {data_dir / stem} has no anomaly mask (expected '
                                f'{data_dir / stem}_mask.png)')
        raise_pairing_problems(data_dir, problems)
        data_list = [self._sample_info(stem, files[stem], rgb_item, is_test) for stem in stems]
        defect_types = tuple(defect_type for defect_type in ('good', 'anomalous')
                             if any(info['defect_type'] == defect_type for info in data_list))
        self._metainfo.update(category=self.category, split=self.split, defect_types=defect_types)
        return data_list

    @staticmethod
    def _files_by_stem(data_dir: Path) -> dict[str, dict[str, Path]]:
        """Files named ``NNN_<item>`` of ``data_dir``, as stem -> item -> path."""
        if not data_dir.is_dir():
            raise FileNotFoundError(f'{data_dir} {describe_unusable_folder(data_dir)}: every Eyecandies split keeps '
                                    'its files in data/ (see docs/datasets.md)')
        files: dict[str, dict[str, Path]] = {}
        for path in data_dir.iterdir():
            match = SAMPLE_FILE.match(path.name)
            if match and path.is_file():
                files.setdefault(match['stem'], {})[match['item']] = path
        return files

    def _sample_info(self, stem: str, items: dict[str, Path], rgb_item: str, is_test: bool) -> dict:
        """Data info of one sample; the test label comes from its mask."""
        label = int(binarise_mask(read_png(str(items['mask.png']), cv2.IMREAD_UNCHANGED)).any()) if is_test else 0
        defect_type = 'anomalous' if label else 'good'
        paths = {key: str(items[item]) for name in self.files for item, (_, key) in SAMPLE_FILES[name].items()}
        return dict(rgb_path=str(items[rgb_item]), **paths, gt_path=str(items['mask.png']) if is_test else None,
                    label=label, defect_type=defect_type, category=self.category, sample_name=f'{defect_type}_{stem}')
