"""Keep training runs apart: a fresh run refuses a work dir that holds another run's checkpoints.

mmengine would overwrite ``epoch_2.pth``, repoint ``last_checkpoint`` and leave the old ``epoch_3.pth`` beside the
new checkpoints: two runs mixed with no warning. ``tools/train.py`` calls :func:`previous_run_files` for a run
without ``--resume`` and stops unless ``--overwrite`` is given, which deletes those files first
(:func:`remove_previous_run`). Logs are not touched: mmengine writes each run's into its own timestamped folder.
"""
from __future__ import annotations

import os
import os.path as osp
import re

from .last_checkpoint import POINTER_FILE

RUN_CHECKPOINT = re.compile(r'^((epoch|iter)_\d+|best_.*|last)\.pth$')


def previous_run_files(work_dir: str) -> list[str]:
    """The checkpoints and the ``last_checkpoint`` pointer that an earlier run left in ``work_dir``, sorted."""
    if not osp.isdir(work_dir):
        return []
    return sorted(osp.join(work_dir, name) for name in os.listdir(work_dir)
                  if (RUN_CHECKPOINT.match(name) or name == POINTER_FILE) and osp.isfile(osp.join(work_dir, name)))


def describe_previous_run(work_dir: str, files: list[str], config: str) -> str:
    """Why a fresh run does not start in ``work_dir`` and the three ways forward, in one message."""
    names = ', '.join(osp.basename(path) for path in files)
    return (f'{work_dir} holds the checkpoints of an earlier run ({names}); a fresh run would mix its checkpoints '
            f'with them. Continue that run with `python tools/train.py {config} --work-dir {work_dir} --resume`, '
            'start over with --overwrite (deletes those files), or pass another --work-dir.')


def remove_previous_run(files: list[str]) -> None:
    """Delete the files :func:`previous_run_files` found (missing ones are skipped)."""
    for path in files:
        if osp.isfile(path):
            os.remove(path)
