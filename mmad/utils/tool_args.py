"""Command-line handling shared by ``tools/train.py`` and ``tools/test.py``.

Both tools parse their arguments with the standard library only (``--help`` answers at once); :func:`load_config`
then checks the config path, loads the file and applies ``--cfg-options``, ``--data-root``, ``--category``,
``--launcher`` and ``--work-dir``, refusing overrides that would be ignored and values that cannot work.
"""
from __future__ import annotations

import argparse
import difflib
import glob
import os.path as osp

from mmengine.config import Config

from .config_checks import ConfigError, check_common_values, check_overrides, parse_cfg_options, set_data_location
from .config_file import read_config
from .setup_env import register_all_modules

CONFIG_ROOT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


def config_path_problem(path: str, config_root: str = CONFIG_ROOT) -> str | None:
    """None when ``path`` is a file; else a one-line message with the closest config names under ``config_root``.

    Args:
        path: The config path given on the command line.
        config_root: The folder whose ``*.py`` files (searched recursively) are suggested.

    Returns:
        The problem, e.g. ``config file configs/crd/crd_mvtec3d_bagle.py does not exist; did you mean
        configs/crd/crd_mvtec3d_bagel.py?``, or None.
    """
    if osp.isfile(path):
        return None
    configs = sorted(glob.glob(osp.join(config_root, '**', '*.py'), recursive=True))
    shown = {osp.relpath(config, osp.dirname(config_root)): osp.basename(config) for config in configs
             if not osp.basename(config).startswith('_') and f'{osp.sep}_base_{osp.sep}' not in config}
    by_name = difflib.get_close_matches(osp.basename(path), list(shown.values()), n=3, cutoff=0.6)
    by_path = difflib.get_close_matches(path, list(shown), n=3, cutoff=0.6)
    matches = list(dict.fromkeys(by_path + [shown_path for name in by_name
                                            for shown_path, shown_name in shown.items() if shown_name == name]))
    what = 'is a folder, not a config file' if osp.isdir(path) else 'does not exist'
    hint = f'; did you mean {", ".join(matches[:3])}?' if matches else f'; the configs are under {config_root}'
    return f'config file {path} {what}{hint}'


def load_config(args: argparse.Namespace) -> Config:
    """Check the config path, register mmad's modules, load ``args.config`` and apply the command-line arguments.

    Args:
        args: Parsed arguments with ``config``, ``cfg_options`` (raw ``key=value`` strings), ``data_root``,
            ``category``, ``launcher`` and ``work_dir``.

    Returns:
        The config; the work dir defaults to ``./work_dirs/<config name>`` when neither the command line nor the
        config sets it.

    Raises:
        ConfigError: A missing config file, a malformed or ignored override, or an unusable value (one line each).
    """
    problem = config_path_problem(args.config)
    if problem is not None:
        raise ConfigError(problem)
    register_all_modules()
    options = parse_cfg_options(args.cfg_options)
    cfg = read_config(args.config)
    check_overrides(cfg, options)
    cfg.merge_from_dict(options)
    set_data_location(cfg, args.data_root, args.category)
    check_common_values(cfg)
    ensure_safe_checkpoints(cfg)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def ensure_safe_checkpoints(cfg: Config) -> None:
    """Add ``SafeCheckpointHook`` to ``custom_hooks`` when the config's own list left it out.

    The hook saves checkpoints that load with ``weights_only=True`` and checks every loaded checkpoint strictly
    against the model (modalities, teacher, every key and shape); a config that replaces ``custom_hooks`` must not
    silently lose that.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(hook.get('type', '')).split('.')[-1] == 'SafeCheckpointHook' for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type='SafeCheckpointHook')]


def load_tool_config(config: str, cfg_options: list[str] | None = None, data_root: str | None = None) -> Config:
    """:func:`load_config` for the analysis tools: a config path, ``--cfg-options`` and an optional data root.

    Raises:
        ConfigError: As :func:`load_config`.
    """
    return load_config(argparse.Namespace(config=config, cfg_options=cfg_options, data_root=data_root, category=None,
                                          launcher='none', work_dir=None))


def compile_runner_model(runner, tool: str, first_steps: str) -> None:
    """``--compile`` of ``tools/train.py`` and ``tools/test.py``: compile the model's parts in place.

    mmengine's ``cfg.compile`` would compile the whole ``train_step`` (backward and optimiser steps included) and
    ``Runner.test`` compiles nothing, so the tools call ``CRD.compile_parts`` (teacher and branches) instead.

    Args:
        runner: The built runner; its model may be wrapped (DDP).
        tool: The tool's file name, for the error message (``'train.py'``).
        first_steps: What is slow while compiling, for the log (``'iterations'``, ``'batches'``).

    Raises:
        SystemExit: The model has no ``compile_parts`` (only CRD-like models can be compiled this way).
    """
    import sys

    from mmengine.model import is_model_wrapper

    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if not hasattr(model, 'compile_parts'):
        sys.exit(f'{tool}: error: --compile needs a model with compile_parts() (e.g. CRD), got '
                 f'{type(model).__name__}.')
    model.compile_parts()
    runner.logger.info(f'Teacher and student branches compiled with torch.compile; the first {first_steps} are slow.')
