"""Helpers shared by the dataset classes: listing folders, pairing files by stem, saying why a folder is unusable."""
import errno
import os
from pathlib import Path

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
        f'the dataset extracted so that {category_dir / example_file} exists; download it and point the tools '
        'at it with --data-root PATH --category NAME (see docs/datasets.md).')


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
