"""MVTec 3D-AD: rgb images, organised xyz point clouds and ground-truth masks of ten object categories."""
import errno
import os
from pathlib import Path

from mmengine.dataset import BaseDataset

from mmad.registry import DATASETS

MAX_LISTED_PROBLEMS = 20


def is_hidden(path: Path) -> bool:
    """Whether a dataset listing skips ``path``: a dot-file or dot-folder, e.g. ``.DS_Store`` or ``._000.png``.

    macOS writes ``._<name>`` AppleDouble files beside the real ones on some file systems and in archives.
    """
    return path.name.startswith('.')


def visible_entries(folder: Path) -> list[Path]:
    """The entries of ``folder`` that are not hidden (see :func:`is_hidden`), sorted by name."""
    return sorted(path for path in folder.iterdir() if not is_hidden(path))


def describe_unusable_folder(folder: Path) -> str:
    """Say why ``folder`` cannot be listed as a dataset folder, e.g. ``'is a symbolic link loop'``.

    Args:
        folder: A path that is not a non-empty folder.

    Returns:
        What ``folder`` is: missing, a broken link or link loop (or under one), a file, unreadable, empty or holding
        hidden files only.
    """
    try:
        os.stat(folder)
    except OSError as error:
        if error.errno == errno.ELOOP:
            if folder.is_symlink():
                return f'is a symbolic link loop ({folder} -> {os.readlink(folder)})'
            return 'lies under a symbolic link loop'
        if folder.is_symlink():
            return f'is a symbolic link to {os.readlink(folder)}, which does not exist'
        if error.errno == errno.ENOENT:
            return 'does not exist'
        return f'cannot be read ({error.strerror})'
    if not folder.is_dir():
        return 'is a file, not a folder'
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        return f'cannot be listed ({error.strerror})'
    if entries:
        return f'holds hidden files only ({", ".join(sorted(path.name for path in entries)[:5])})'
    return 'is empty'


def require_category_dir(data_root: str, category: str, dataset_name: str, example_file: str) -> Path:
    """Return ``data_root/category``; raise a clear error saying what it is when it is not a non-empty folder.

    Args:
        data_root: Folder holding one folder per category.
        category: Category folder name.
        dataset_name: Name of the dataset, for the message.
        example_file: A file the category folder must hold, relative to it, for the message.

    Returns:
        The category folder.
    """
    category_dir = Path(data_root) / category
    if category_dir.is_dir() and visible_entries(category_dir):
        return category_dir
    root = Path(data_root)
    available = [path.name for path in visible_entries(root) if path.is_dir()] if root.is_dir() else []
    found = f'folders found in {root}: {available}' if available else f'{root} {describe_unusable_folder(root)}'
    raise FileNotFoundError(
        f'{dataset_name} category folder {category_dir} {describe_unusable_folder(category_dir)} ({found}). Expected '
        f'the dataset extracted so that {category_dir / example_file} exists; download it and set data_root, e.g. '
        '--cfg-options train_dataloader.dataset.data_root=PATH (see docs/datasets.md).')


def require_split_dir(category_dir: Path, split_folder: str) -> Path:
    """Return ``category_dir/split_folder``; raise naming it when it is missing.

    Args:
        category_dir: The category folder.
        split_folder: Name of the split's folder.

    Returns:
        The split folder.
    """
    split_dir = category_dir / split_folder
    if not split_dir.is_dir():
        present = [path.name for path in visible_entries(category_dir) if path.is_dir()]
        raise FileNotFoundError(f'split folder {split_dir} {describe_unusable_folder(split_dir)} (folders present: '
                                f'{present}); see docs/datasets.md for the expected tree')
    return split_dir


def raise_pairing_problems(folder: Path, problems: list[str]) -> None:
    """Raise one error listing the files that could not be paired, if any.

    Args:
        folder: The folder whose files were paired.
        problems: One line per unpaired file.
    """
    if not problems:
        return
    listed = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(listed)
    suffix = f'\n  ... and {more} more' if more else ''
    raise ValueError(f'files under {folder} do not pair up by file stem:\n  ' + '\n  '.join(listed) + suffix)


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Files of ``folder`` with one of ``suffixes``, keyed by stem; {} when the folder does not exist.

    Hidden files (``.DS_Store``, the ``._NNN.png`` AppleDouble files macOS writes beside ``NNN.png``) are skipped.

    Args:
        folder: Folder to list (not recursively).
        suffixes: Accepted lower-case file suffixes, with the dot.

    Returns:
        stem -> path.
    """
    if not folder.is_dir():
        return {}
    files: dict[str, Path] = {}
    for path in visible_entries(folder):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in files:
            raise ValueError(f'{files[path.stem]} and {path} have the same stem: keep one of them')
        files[path.stem] = path
    return files


@DATASETS.register_module()
class MVTec3DDataset(BaseDataset):
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
