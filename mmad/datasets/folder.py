"""Your own parts in folders of your own making: normal and abnormal folders, optional masks, any modalities."""
import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tifffile
from mmengine.logging import print_log
from PIL import Image

from mmad.registry import DATASETS

from .base_dataset import BaseADDataset
from .utils import describe_unusable_folder, raise_pairing_problems, visible_entries

GOOD = 'good'


def split_pattern(pattern: str) -> tuple[str, str]:
    """Split a modality or mask pattern into its folder part and its file-name pattern.

    ``'rgb/*.png'`` -> ``('rgb', '*.png')``; ``'*.jpg'`` -> ``('', '*.jpg')``; a pattern without ``*`` names a
    sub-folder whose every file is used: ``'rgb'`` -> ``('rgb', '*')``.
    """
    if '*' not in pattern:
        return pattern.strip('/'), '*'
    folder, _, name = pattern.rpartition('/')
    if '*' in folder or name.count('*') != 1:
        raise ValueError(f'file pattern {pattern!r} must hold exactly one * and only in its file name, e.g. '
                         "'rgb/*.png' or '*_depth.png'")
    return folder, name


def sample_key(name: str, name_pattern: str) -> str:
    """The part of a file name that the ``*`` of ``name_pattern`` matched, without extension when the pattern has none.

    ``sample_key('part_007_depth.png', '*_depth.png')`` is ``'part_007'``; ``sample_key('007.png', '*')`` is ``'007'``.
    """
    prefix, _, suffix = name_pattern.partition('*')
    key = name[len(prefix):len(name) - len(suffix)]
    return key if suffix else Path(key).stem


def files_by_key(folder: Path, name_pattern: str) -> dict[str, Path]:
    """The visible files of ``folder`` matching ``name_pattern`` (case-insensitive), keyed by :func:`sample_key`."""
    files: dict[str, Path] = {}
    for path in visible_entries(folder):
        if not path.is_file() or not fnmatch.fnmatch(path.name.lower(), name_pattern.lower()):
            continue
        key = sample_key(path.name, name_pattern)
        if key in files:
            raise ValueError(f'{files[key]} and {path} both match {name_pattern!r} with the sample name {key!r}: '
                             'keep one of them')
        files[key] = path
    return files


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image or TIFF file, read from its header only."""
    try:
        if path.suffix.lower() in ('.tif', '.tiff'):
            with tifffile.TiffFile(path) as tiff:
                return tuple(int(side) for side in tiff.pages[0].shape[:2])
        with Image.open(path) as image:
            return image.height, image.width
    except Exception as error:  # PIL and tifffile raise many types on damaged files; report them as one
        raise ValueError(f'{path} is not a readable image: {type(error).__name__}: {error}') from None


def holdout_count(fraction: float, count: int) -> int:
    """How many of ``count`` normal samples ``fraction`` holds out: ``fraction * count`` rounded half up."""
    return int(fraction * count + 0.5)


def min_normal_samples(fraction: float) -> int:
    """The fewest normal samples from which ``fraction`` holds out at least one and leaves at least one to train."""
    count = 2
    while holdout_count(fraction, count) < 1 or count - holdout_count(fraction, count) < 1:
        count += 1
    return count


@DATASETS.register_module()
class FolderDataset(BaseADDataset):
    """Your own data: a folder of normal samples for training, optional normal and abnormal folders for testing.

    Every folder is given relative to ``data_root``; each modality is found in each sample folder through its
    pattern: a sub-folder (``'rgb'``, every file in it) or a file pattern with one ``*`` (``'rgb/*.png'``,
    ``'*.jpg'``, ``'*_depth.png'`` for flat folders). The text the ``*`` matches (without the extension when the
    pattern has none) names the sample, and a sample's files pair up by it. For example, with
    ``modalities=dict(rgb='*.jpg', xyz='*.tiff')``, ``normal_dir='good'``,
    ``abnormal_dirs=dict(scratch='scratch', dent='dent')``, ``test_normal_dir='test_good'`` and
    ``mask_dirs=dict(scratch='masks/scratch/*_mask.png')``::

        data_root/
        ├── good/                     normal samples: training (and, held out, validation)
        │   ├── part_000.jpg
        │   ├── part_000.tiff
        │   └── ...
        ├── test_good/                normal test samples (optional)
        ├── scratch/                  one folder per defect type (or a single abnormal folder)
        │   ├── part_100.jpg
        │   └── part_100.tiff
        ├── dent/                     a defect type without masks: image-level metrics only
        └── masks/
            └── scratch/
                └── part_100_mask.png mask of scratch/part_100.*, > 0 on the defect

    There is no validation folder: ``split='validation'`` is a seeded fraction (``holdout_fraction``) of the
    normal folder's samples, held out of ``split='train'``; both splits log which ones and record them in
    ``metainfo['holdout']`` (saved in each checkpoint's ``meta['dataset_meta']``). ``split='test'`` is the normal
    test folder (defect type ``good``, label 0) then every abnormal folder (label 1). An abnormal sample without
    mask gets ``gt_path=None`` and ``mask_missing=True``: ``ADMetric`` counts it in the image metrics and says
    that its pixel metrics are not available.

    Checked when loading (each error naming the files and what was expected; unpaired files are listed one per
    line as in the benchmark datasets): every folder exists and
    holds samples; every sample has a file of every modality; every mask matches a sample; the files of each
    modality, and the masks, have one size (H, W), the same for every modality. Nothing is written under
    ``data_root``.

    Each sample is ``dict(<modality>_path for each modality, gt_path, label, mask_missing, defect_type,
    sample_name)``.

    Args:
        modalities: Modality name -> pattern, e.g. ``dict(rgb='rgb/*.png', xyz='xyz/*.tiff')``; the pipeline's
            loaders read ``<modality>_path``.
        normal_dir: Folder of the normal training samples.
        split: ``'train'``, ``'validation'`` (held-out normal samples) or ``'test'``.
        data_root: Folder the other folders are relative to.
        test_normal_dir: Folder of the normal test samples; None for none.
        abnormal_dirs: Defect type -> folder, a list of folders (defect type = folder name) or one folder.
        mask_dirs: Defect type -> mask pattern (relative to ``data_root``, e.g. ``'masks/scratch/*_mask.png'``);
            defect types without an entry have no masks.
        holdout_fraction: Fraction of the normal samples held out for validation, in (0, 1).
        holdout_seed: Seed of the hold-out draw.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``, ``test_mode``, ...).
    """

    METAINFO = dict(dataset_name='Folder')
    SPLITS = ('train', 'validation', 'test')

    def __init__(self, modalities: Mapping[str, str], normal_dir: str, split: str = 'train', data_root: str = '',
                 test_normal_dir: str | None = None, abnormal_dirs: Mapping[str, str] | Sequence[str] | str = (),
                 mask_dirs: Mapping[str, str] | None = None, holdout_fraction: float = 0.2, holdout_seed: int = 0,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {self.SPLITS}, got {split!r}')
        if not isinstance(modalities, Mapping) or not modalities:
            raise ValueError(f"modalities must map each modality to its pattern, e.g. dict(rgb='rgb/*.png'), got "
                             f'{modalities!r}')
        if not 0 < holdout_fraction < 1:
            raise ValueError(f'holdout_fraction must lie in (0, 1), got {holdout_fraction}')
        if isinstance(abnormal_dirs, str):
            abnormal_dirs = [abnormal_dirs]
        if not isinstance(abnormal_dirs, Mapping):
            abnormal_dirs = {Path(folder).name: folder for folder in abnormal_dirs}
        unknown = sorted(set(mask_dirs or {}) - set(abnormal_dirs))
        if unknown:
            raise ValueError(f'mask_dirs names defect types {unknown} that abnormal_dirs does not have '
                             f'({sorted(abnormal_dirs)})')
        self.modalities = dict(modalities)
        self.patterns = {modality: split_pattern(pattern) for modality, pattern in self.modalities.items()}
        self.normal_dir = normal_dir
        self.split = split
        self.test_normal_dir = test_normal_dir
        self.abnormal_dirs = dict(abnormal_dirs)
        self.mask_dirs = dict(mask_dirs or {})
        self.holdout_fraction = float(holdout_fraction)
        self.holdout_seed = int(holdout_seed)
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        """List the samples of the split (test: normal first, then the defect types in the given order)."""
        if self.split == 'test':
            folders = [(GOOD, self.test_normal_dir)] if self.test_normal_dir else []
            folders += list(self.abnormal_dirs.items())
            if not folders:
                raise ValueError('split test needs test_normal_dir or abnormal_dirs: none is set')
            data_list = [info for defect_type, folder in folders for info in self._load_folder(defect_type, folder)]
        else:
            data_list = self._holdout_split(self._load_folder(GOOD, self.normal_dir))
        self._check_sizes(data_list)
        self._metainfo.update(split=self.split, modalities=tuple(self.modalities),
                              defect_types=tuple(dict.fromkeys(info['defect_type'] for info in data_list)))
        return data_list

    def _load_folder(self, defect_type: str, folder: str) -> list[dict]:
        """Pair the modality files (and masks) of one sample folder by sample name."""
        root = Path(self.data_root) / folder
        if not root.is_dir() or not visible_entries(root):
            raise FileNotFoundError(f'{defect_type} folder {root} {describe_unusable_folder(root)}; expected the '
                                    f'samples of {defect_type!r} there (patterns {self.modalities})')
        files = {}
        for modality, (sub_folder, name_pattern) in self.patterns.items():
            modality_dir = root / sub_folder
            if not modality_dir.is_dir():
                present = [path.name for path in visible_entries(root) if path.is_dir()]
                raise FileNotFoundError(f'{modality} folder {modality_dir} {describe_unusable_folder(modality_dir)} '
                                        f'(folders in {root}: {present}); expected it from the pattern '
                                        f'{self.modalities[modality]!r}')
            files[modality] = files_by_key(modality_dir, name_pattern)
        if not any(files.values()):
            raise FileNotFoundError(f'{root} holds no sample: no file matches the patterns {self.modalities}')
        keys = sorted(set().union(*files.values()))
        problems = [f'sample {key!r} has no {modality} file (expected {self.modalities[modality]!r} under {root}; '
                    f'found {", ".join(str(by_key[key]) for by_key in files.values() if key in by_key)})'
                    for key in keys for modality, by_key in files.items() if key not in by_key]
        masks = self._masks(defect_type, keys, problems)
        raise_pairing_problems(root, problems)
        return [
            dict(**{f'{modality}_path': str(by_key[key]) for modality, by_key in files.items()},
                 gt_path=str(masks[key]) if key in masks else None, label=int(defect_type != GOOD),
                 mask_missing=defect_type != GOOD and key not in masks,
                 defect_type=defect_type, sample_name=f'{defect_type}_{key}') for key in keys
        ]

    def _masks(self, defect_type: str, keys: list[str], problems: list[str]) -> dict[str, Path]:
        """The masks of a defect type by sample name; masks matching no sample are added to ``problems``."""
        if defect_type not in self.mask_dirs:
            return {}
        sub_folder, name_pattern = split_pattern(self.mask_dirs[defect_type])
        mask_dir = Path(self.data_root) / sub_folder
        if not mask_dir.is_dir():
            raise FileNotFoundError(f'mask folder {mask_dir} of {defect_type!r} {describe_unusable_folder(mask_dir)}; '
                                    f'expected it from the pattern {self.mask_dirs[defect_type]!r}')
        masks = files_by_key(mask_dir, name_pattern)
        listed = ', '.join(keys[:5]) + (', ...' if len(keys) > 5 else '')
        problems += [f'mask {masks[key]} matches no {defect_type} sample (sample name {key!r}; samples: {listed})'
                     for key in sorted(masks.keys() - set(keys))]
        return masks

    def _holdout_split(self, normal: list[dict]) -> list[dict]:
        """The training or the held-out part of the normal samples (seeded), logged and recorded in the metainfo."""
        needed = min_normal_samples(self.holdout_fraction)
        folder = Path(self.data_root) / self.normal_dir
        if len(normal) < needed:
            raise ValueError(f'normal folder {folder} holds {len(normal)} sample(s); holding out '
                             f'holdout_fraction={self.holdout_fraction} of them for the validation statistics and '
                             f'the threshold needs at least {needed} (one held out, one to train): add normal samples')
        count = holdout_count(self.holdout_fraction, len(normal))
        order = np.random.default_rng(self.holdout_seed).permutation(len(normal))
        held_out = sorted(order[:count].tolist())
        held_names = [normal[index]['sample_name'] for index in held_out]
        self._metainfo['holdout'] = dict(normal_dir=str(folder), fraction=self.holdout_fraction,
                                         seed=self.holdout_seed, normal_samples=len(normal), held_out=held_names)
        print_log(f'FolderDataset ({self.split}): {count} of the {len(normal)} normal samples of {folder} are held '
                  f'out for the validation statistics and the threshold (holdout_fraction={self.holdout_fraction}, '
                  f'holdout_seed={self.holdout_seed}): {", ".join(held_names)}', logger='current')
        if self.split == 'validation':
            return [normal[index] for index in held_out]
        held = set(held_out)
        return [info for index, info in enumerate(normal) if index not in held]

    def _check_sizes(self, data_list: list[dict]) -> None:
        """Every file of every modality and every mask has the size of the first file."""
        first_path, first_size = None, None
        for key in [f'{modality}_path' for modality in self.modalities] + ['gt_path']:
            for info in data_list:
                if info[key] is None:
                    continue
                size = image_size(Path(info[key]))
                if first_size is None:
                    first_path, first_size = info[key], size
                elif size != first_size:
                    what = key[:-len('_path')]
                    raise ValueError(f'{info[key]} is {size[0]}x{size[1]} (HxW) but {first_path} is '
                                     f'{first_size[0]}x{first_size[1]}; expected every {what} file, like every file '
                                     'of the dataset, to have one size (resize them beforehand)')

