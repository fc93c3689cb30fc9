"""Command-line handling shared by ``tools/train.py`` and ``tools/test.py``."""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import Config


def apply_common_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply ``--launcher``, ``--cfg-options`` and ``--work-dir`` to the config.

    The work dir defaults to ``./work_dirs/<config name>`` when neither the command line nor the config sets it.

    Args:
        cfg: The loaded config, changed in place.
        args: Parsed arguments with ``config``, ``launcher``, ``cfg_options`` and ``work_dir``.

    Returns:
        The same config.
    """
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
