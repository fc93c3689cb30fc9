"""Where a metrics file comes from (checkpoint, config, code revision, data, time) and how it is kept.

Every evaluation writes ``metrics_<YYYYmmdd_HHMMSS>.json`` (UTC; ``_1``, ``_2``, ... when that name is taken), so an
earlier run's file is never overwritten, and the same content as ``metrics.json``, the latest run under a fixed name.

Example:
    >>> record = run_record(checkpoint='work_dirs/crd/epoch_200.pth', config='configs/crd/crd_mvtec3d_bagel.py')
    >>> sorted(record)
    ['checkpoint', 'config', 'dataset', 'experiment', 'git_revision', 'mmad_version', 'precision', 'time']
"""
from __future__ import annotations

import ast
import json
import os.path as osp
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone

from mmengine.logging import MessageHub

from mmad.utils.fileio import write_text
from mmad.version import __version__

LATEST_FILE = 'metrics.json'
DATASET_KEYS = ('dataset_name', 'category', 'split')
GIT_TIMEOUT_S = 10


def git_revision(folder: str = osp.dirname(osp.dirname(osp.abspath(__file__)))) -> str | None:
    """The git commit of the code in ``folder``, with ``-dirty`` when tracked files differ from it.

    Args:
        folder: A folder inside the repository; by default the mmad package's.

    Returns:
        ``'<40 hex digits>'`` or ``'<40 hex digits>-dirty'``; None when ``folder`` is not in a git checkout or git is
        not installed.
    """
    try:
        commit = subprocess.run(['git', '-C', folder, 'rev-parse', 'HEAD'], capture_output=True, text=True,
                                timeout=GIT_TIMEOUT_S)
        if commit.returncode != 0:
            return None
        changes = subprocess.run(['git', '-C', folder, 'status', '--porcelain', '--untracked-files=no'],
                                 capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ('-dirty' if changes.stdout.strip() else '')


def runner_settings() -> dict[str, str | None]:
    """The running mmengine ``Runner``'s experiment name, ``load_from`` and scoring precision, from its ``MessageHub``.

    The runner's ``RuntimeInfoHook`` stores the config text and the experiment name there before the run; the
    checkpoint is the config's top-level ``load_from`` (set by ``tools/test.py``) and the precision ``'autocast'``
    when ``test_cfg`` holds ``fp16=True`` (``tools/test.py --amp``), else ``'float32'``; both are read without
    executing the text.

    Returns:
        ``dict(experiment=..., checkpoint=..., precision=...)``, None where unknown (e.g. outside a runner).
    """
    message_hub = MessageHub.get_current_instance()
    checkpoint = precision = None
    config_text = message_hub.get_info('cfg')
    if config_text:
        try:
            statements = ast.parse(config_text).body
        except SyntaxError:
            statements = []
        precision = 'float32'
        for statement in statements:
            names = [target.id for target in getattr(statement, 'targets', ()) if isinstance(target, ast.Name)]
            if 'load_from' in names and isinstance(statement.value, ast.Constant):
                checkpoint = statement.value.value
            if 'test_cfg' in names and _calls_with_true(statement.value, 'fp16'):
                precision = 'autocast'
    return dict(experiment=message_hub.get_info('experiment_name'), checkpoint=checkpoint, precision=precision)


def _calls_with_true(node: ast.expr, keyword: str) -> bool:
    """Whether ``node`` is a call such as ``dict(..., keyword=True)``."""
    return isinstance(node, ast.Call) and any(
        item.arg == keyword and isinstance(item.value, ast.Constant) and item.value.value is True
        for item in node.keywords)


def _absolute(path: str | None) -> str | None:
    """A local path made absolute (the record must not depend on the working folder); URIs and None unchanged."""
    return path if path is None or '://' in path else osp.abspath(path)


def run_record(checkpoint: str | None = None, config: str | None = None, dataset_meta: Mapping | None = None,
               now: datetime | None = None) -> dict:
    """What produced a set of metrics.

    Args:
        checkpoint: The evaluated checkpoint; None: the running runner's ``load_from`` (see :func:`runner_settings`).
        config: The config file.
        dataset_meta: The test dataset's ``metainfo``; its ``dataset_name``, ``category`` and ``split`` are kept.
        now: The evaluation time (default: now), recorded in UTC.

    Returns:
        ``dict(checkpoint, config, experiment, precision, git_revision, mmad_version, time, dataset)``: local paths
        absolute, ``time`` ISO 8601, ``precision`` ``'float32'`` or ``'autocast'`` (None outside a runner).
    """
    settings = runner_settings()
    now = now or datetime.now(timezone.utc)
    return dict(
        checkpoint=_absolute(checkpoint if checkpoint is not None else settings['checkpoint']),
        config=_absolute(config),
        experiment=settings['experiment'],
        precision=settings['precision'],
        git_revision=git_revision(),
        mmad_version=__version__,
        time=now.astimezone(timezone.utc).isoformat(timespec='seconds'),
        dataset={key: dataset_meta[key] for key in DATASET_KEYS if key in (dataset_meta or {})})


def write_metrics_files(out_dir: str, content: Mapping, now: datetime) -> tuple[str, str]:
    """Write ``content`` as this run's ``metrics_<time>.json`` and as ``metrics.json`` in ``out_dir``.

    Args:
        out_dir: Folder of the files, created if missing.
        content: JSON-serialisable content without NaN (write None instead).
        now: The run's time; names the run's file (UTC ``YYYYmmdd_HHMMSS``).

    Returns:
        ``(run_file, latest_file)``.

    Raises:
        OSError: A file could not be written (it is named).
    """
    text = json.dumps(content, indent=2, allow_nan=False) + '\n'
    stamp = now.astimezone(timezone.utc).strftime('%Y%m%d_%H%M%S')
    run_file = osp.join(out_dir, f'metrics_{stamp}.json')
    counter = 0
    while osp.exists(run_file):
        counter += 1
        run_file = osp.join(out_dir, f'metrics_{stamp}_{counter}.json')
    latest_file = osp.join(out_dir, LATEST_FILE)
    write_text(run_file, text)
    write_text(latest_file, text)
    return run_file, latest_file
