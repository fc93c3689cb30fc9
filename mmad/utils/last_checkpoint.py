"""Find the last complete checkpoint of a work dir, to resume from it or to name it after a failure.

mmengine's ``CheckpointHook`` writes ``epoch_<N>.pth`` (or ``iter_<N>.pth``) and then the text file
``last_checkpoint`` holding its path. :func:`find_last_checkpoint` trusts that pointer only when it names a complete
checkpoint file; otherwise (pointer missing, empty, stale after the work dir was moved, or naming a truncated file)
it takes the highest-numbered complete checkpoint of the folder. A checkpoint written by ``torch.save`` is a zip
archive whose central directory is written last, so a truncated file is recognised without loading it.
"""
from __future__ import annotations

import os
import os.path as osp
import re
import zipfile

POINTER_FILE = 'last_checkpoint'
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file (a zip archive with its central directory).

    Args:
        path: A file path.

    Returns:
        False for a missing, empty or truncated file.
    """
    return osp.isfile(path) and zipfile.is_zipfile(path)


def find_last_checkpoint(work_dir: str) -> str | None:
    """The checkpoint to resume from: the one ``last_checkpoint`` names, else the newest complete one.

    Args:
        work_dir: The training's work dir.

    Returns:
        Path of the checkpoint, or None when the work dir holds no complete checkpoint.
    """
    pointer = osp.join(work_dir, POINTER_FILE)
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8') as file:
            named = file.read().strip()
        for candidate in (named, osp.join(work_dir, osp.basename(named))):
            if named and is_complete_checkpoint(candidate):
                return candidate
    numbered = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else []:
        match = CHECKPOINT_NAME.match(name)
        if match is not None:
            numbered.append((match.group(1) == 'epoch', int(match.group(2)), osp.join(work_dir, name)))
    for _, _, path in sorted(numbered, reverse=True):
        if is_complete_checkpoint(path):
            return path
    return None
