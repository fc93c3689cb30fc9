"""Find the samples to score under a path: one sample's file, a folder with modality sub-folders, a category root.

A sample folder holds one sub-folder per file key of the test pipeline (``rgb/``, ``xyz/``, ...) and optionally
``gt/`` (masks); the files of a sample share their stem (``rgb/000.png``, ``xyz/000.tiff``, ``gt/000.png``), as in
MVTec 3D-AD. A sample lacking a file keeps the key with None, so that scoring it fails with a message naming it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

MASK_FOLDER = 'gt'
MAX_DEPTH = 3


def find_samples(path: str | Path, file_keys: Sequence[str]) -> list[dict]:
    """The samples under ``path``.

    Args:
        path: A file inside a modality folder (``.../rgb/000.png``: that sample), a sample folder (``test/crack``),
            or a folder above sample folders (a category root: its ``test/`` is walked when present, else every
            sample folder up to :data:`MAX_DEPTH` levels down).
        file_keys: The file keys of the test pipeline, e.g. ``['rgb', 'xyz']``.

    Returns:
        Samples ``dict(name=<folder>/<stem> relative to path, <key>=path or None, ..., mask=path or None)``,
        sorted by name.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no sample folder (the message says what was expected).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'{path} does not exist; expected a sample file, a folder with the sub-folders '
                                f'{", ".join(file_keys)} or a category root.')
    if path.is_file():
        if path.parent.name not in file_keys:
            raise FileNotFoundError(f'{path} is not inside a modality folder ({", ".join(file_keys)}); give a file '
                                    'such as <folder>/rgb/000.png or a folder.')
        folder = path.parent.parent
        return [_sample(folder, path.stem, file_keys, folder.name)]
    root = path / 'test' if (path / 'test').is_dir() and not _is_sample_folder(path, file_keys) else path
    folders = [folder for folder in _walk(root, MAX_DEPTH, file_keys) if _is_sample_folder(folder, file_keys)]
    if not folders:
        raise FileNotFoundError(f'{path} holds no sample folder: expected sub-folders {", ".join(file_keys)} (e.g. '
                                f'{path}/rgb/000.png), or a category root with test/<defect>/{file_keys[0]}/.')
    samples = []
    for folder in folders:
        prefix = folder.relative_to(path).as_posix() if folder != path else path.name
        stems = sorted({file.stem for key in file_keys for file in _files(folder / key)})
        samples.extend(_sample(folder, stem, file_keys, prefix) for stem in stems)
    return sorted(samples, key=lambda sample: sample['name'])


def _sample(folder: Path, stem: str, file_keys: Sequence[str], prefix: str) -> dict:
    sample = dict(name=f'{prefix}/{stem}')
    for key in file_keys:
        sample[key] = _file_with_stem(folder / key, stem)
    sample['mask'] = _file_with_stem(folder / MASK_FOLDER, stem)
    return sample


def _file_with_stem(folder: Path, stem: str) -> str | None:
    matches = [file for file in _files(folder) if file.stem == stem]
    return str(matches[0]) if matches else None


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(file for file in folder.iterdir() if file.is_file() and not file.name.startswith('.'))


def _is_sample_folder(folder: Path, file_keys: Sequence[str]) -> bool:
    return any((folder / key).is_dir() for key in file_keys)


def _walk(root: Path, depth: int, file_keys: Sequence[str]) -> list[Path]:
    """``root`` and the folders below it, not descending into sample folders."""
    folders = [root]
    if depth > 0 and not _is_sample_folder(root, file_keys):
        for child in sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith('.')):
            folders.extend(_walk(child, depth - 1, file_keys))
    return folders
