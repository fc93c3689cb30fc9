"""Train and test every category of a dataset, then write one results table per metric (paper Tab. 1/2 layout).

Two ways to name the runs:

- one config per category: the category is read from each config and the method is the config name without it
  (``crd_mvtec3d_bagel.py`` -> method ``crd_mvtec3d``, category ``bagel``)::

      python tools/train_all.py configs/crd/crd_mvtec3d_*.py --jobs 4

- configs + ``--categories``: every config runs on every category (the ``dataset.category`` of each
  ``*_dataloader`` is overridden); the method is the config name::

      python tools/train_all.py configs/crd/crd_demo_synthetic.py --categories bagel cookie --jobs 2

Each (method, category) trains with ``tools/train.py`` and tests its last checkpoint with ``tools/test.py`` in
``WORK_DIR/<method>/<category>/`` (logs in ``train_all.log`` there). ``--jobs N`` runs N categories at once, each
process pinned to one device with ``CUDA_VISIBLE_DEVICES`` (devices are shared round-robin when N exceeds them); on
CPU the processes share the cores (``OMP_NUM_THREADS`` = cores / N unless set). Runs are resumable: a category whose
``metrics.json`` exists is skipped, an unfinished training continues from its last complete checkpoint
(``--resume``). Finally ``WORK_DIR/results.md`` and ``results.csv`` hold, for every metric, a row per method, a
column per category and the average last (values in %).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import os.path as osp
import queue
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from mmengine.config import Config

from mmad.utils import atomic_open, find_last_checkpoint

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
METRICS_FILE = 'metrics.json'
TRAIN_DONE_FILE = 'train_done.json'
LOG_FILE = 'train_all.log'
DATALOADER_SUFFIX = '_dataloader'


@dataclass(frozen=True)
class Job:
    """One category of one method.

    Attributes:
        method: Row name of the results tables.
        category: Column name of the results tables.
        config: Config file.
        work_dir: Folder of the run's checkpoints, logs and ``metrics.json``.
        cfg_options: ``key=value`` overrides given to train.py and test.py.
        tool_args: Other arguments of both train.py and test.py (e.g. ``('--data-root', DIR, '--category', CAT)``).
    """

    method: str
    category: str
    config: str
    work_dir: str
    cfg_options: tuple[str, ...]
    tool_args: tuple[str, ...] = ()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train and test every category, then tabulate the metrics')
    parser.add_argument('configs', nargs='+', help='config files (one per category, or see --categories)')
    parser.add_argument('--categories', nargs='+',
                        help='run every config on each of these categories (overrides every dataloader\'s '
                        'dataset.category); without it each config runs on its own category')
    parser.add_argument('--work-dir', default='work_dirs/train_all',
                        help='root folder: WORK_DIR/<method>/<category>/ per run, results.md/csv at the root')
    parser.add_argument('--jobs', type=int, default=1, help='categories trained at the same time')
    parser.add_argument('--devices', nargs='+',
                        help='CUDA devices to spread the jobs over (default: every visible one; none: CPU)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides passed to train.py and test.py of every run')
    parser.add_argument('--scores', default='fused', help='scores tabulated: fused or a branch (e.g. rgb)')
    parser.add_argument('--subset', default='all', help='subset tabulated: all or a defect type')
    parser.add_argument('--dry-run', action='store_true', help='print the runs and their state, run nothing')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def dataloader_keys(cfg: Config, config: str) -> list[str]:
    """Top-level ``*_dataloader`` entries whose dataset has a ``category``.

    Args:
        cfg: The loaded config.
        config: Its file, for the error message.

    Returns:
        The entry names, e.g. ``['test_dataloader', 'train_dataloader', 'val_stats_dataloader']``.
    """
    keys = sorted(key for key, value in cfg.items()
                  if key.endswith(DATALOADER_SUFFIX) and isinstance(value, dict)
                  and 'category' in (value.get('dataset') or {}))
    if not keys:
        raise ValueError(f'{config}: no *_dataloader entry has a dataset.category; expected e.g. '
                         "train_dataloader = dict(dataset=dict(category='bagel', ...)).")
    return keys


def config_category(cfg: Config, config: str) -> str:
    """The category a config trains on (that of its dataloaders, which must agree)."""
    categories = {cfg[key].dataset.category for key in dataloader_keys(cfg, config)}
    if len(categories) != 1:
        raise ValueError(f'{config}: the dataloaders use different categories {sorted(categories)}; expected one.')
    return categories.pop()


def method_name(config: str, category: str | None = None) -> str:
    """The config's file name without extension, and without a trailing ``_<category>`` when given."""
    name = osp.splitext(osp.basename(config))[0]
    suffix = f'_{category}' if category else ''
    return name[:-len(suffix)] if suffix and name.endswith(suffix) and len(name) > len(suffix) else name


def build_jobs(configs: Sequence[str], categories: Sequence[str] | None, work_root: str,
               cfg_options: Sequence[str] = ()) -> list[Job]:
    """One job per (config, category), in a stable order.

    Args:
        configs: Config files.
        categories: Categories to run every config on; None: each config's own category.
        work_root: Root of the work dirs.
        cfg_options: Overrides for every run.

    Returns:
        The jobs; an error names duplicates (two configs giving the same method and category).
    """
    jobs = []
    for config in configs:
        cfg = Config.fromfile(config)
        if categories:
            keys = dataloader_keys(cfg, config)
            for category in categories:
                overrides = tuple(f'{key}.dataset.category={category}' for key in keys)
                jobs.append(Job(method_name(config), category, config,
                                osp.join(work_root, method_name(config), category), (*overrides, *cfg_options)))
        else:
            category = config_category(cfg, config)
            method = method_name(config, category)
            jobs.append(Job(method, category, config, osp.join(work_root, method, category), tuple(cfg_options)))
    seen: dict[tuple[str, str], str] = {}
    for job in jobs:
        key = (job.method, job.category)
        if key in seen:
            raise ValueError(f'{seen[key]} and {job.config} both give method {job.method!r} on category '
                             f'{job.category!r}; rename one of them.')
        seen[key] = job.config
    return jobs


def job_state(job: Job) -> str:
    """``'done'`` (metrics written), ``'trained'`` (test pending), ``'partial'`` (a checkpoint) or ``'new'``."""
    if osp.isfile(osp.join(job.work_dir, METRICS_FILE)):
        return 'done'
    if osp.isfile(osp.join(job.work_dir, TRAIN_DONE_FILE)):
        return 'trained'
    return 'partial' if find_last_checkpoint(job.work_dir) is not None else 'new'


def train_command(job: Job) -> list[str]:
    """``tools/train.py`` for the job, with ``--resume`` when its work dir holds a checkpoint."""
    command = [sys.executable, osp.join(TOOLS_DIR, 'train.py'), job.config, '--work-dir', job.work_dir,
               *job.tool_args]
    if find_last_checkpoint(job.work_dir) is not None:
        command.append('--resume')
    if job.cfg_options:
        command += ['--cfg-options', *job.cfg_options]
    return command


def test_command(job: Job, checkpoint: str) -> list[str]:
    """``tools/test.py`` of ``checkpoint``, writing ``metrics.json`` into the job's work dir."""
    command = [sys.executable, osp.join(TOOLS_DIR, 'test.py'), job.config, checkpoint, '--work-dir', job.work_dir,
               *job.tool_args]
    if job.cfg_options:
        command += ['--cfg-options', *job.cfg_options]
    return command


def job_env(device: str | None, jobs: int) -> dict[str, str]:
    """Environment of a job's processes: pinned to ``device``, or a share of the CPU cores without one."""
    env = dict(os.environ)
    if device is not None:
        env['CUDA_VISIBLE_DEVICES'] = device
    elif 'OMP_NUM_THREADS' not in env:
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def run_job(job: Job, devices: queue.Queue, jobs: int) -> str | None:
    """Train (or resume) and test one job on a device taken from ``devices``.

    Returns:
        None on success (or when already done), else what failed and where its log is.
    """
    if job_state(job) == 'done':
        return None
    device = devices.get()
    try:
        os.makedirs(job.work_dir, exist_ok=True)
        env = job_env(device, jobs)
        log_path = osp.join(job.work_dir, LOG_FILE)
        if job_state(job) != 'trained':
            if _run_logged(train_command(job), env, log_path) != 0:
                return f'{job.method}/{job.category}: training failed, see {log_path}'
            checkpoint = find_last_checkpoint(job.work_dir)
            if checkpoint is None:
                return f'{job.method}/{job.category}: training wrote no checkpoint into {job.work_dir}'
            with atomic_open(osp.join(job.work_dir, TRAIN_DONE_FILE), 'w') as file:
                json.dump(dict(checkpoint=checkpoint), file)
        with open(osp.join(job.work_dir, TRAIN_DONE_FILE), encoding='utf-8') as file:
            checkpoint = json.load(file)['checkpoint']
        if _run_logged(test_command(job, checkpoint), env, log_path) != 0:
            return f'{job.method}/{job.category}: testing failed, see {log_path}'
        if not osp.isfile(osp.join(job.work_dir, METRICS_FILE)):
            return f'{job.method}/{job.category}: testing wrote no {METRICS_FILE} into {job.work_dir}'
        return None
    finally:
        devices.put(device)


def _run_logged(command: list[str], env: dict[str, str], log_path: str) -> int:
    with open(log_path, 'a', encoding='utf-8') as log:
        log.write(f'\n$ {" ".join(command)}\n')
        log.flush()
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode


def device_slots(devices: Sequence[str] | None, jobs: int) -> queue.Queue:
    """A queue of ``jobs`` slots, each a CUDA device id (round-robin over ``devices``) or None for CPU."""
    if devices is None:
        devices = [str(index) for index in range(torch.cuda.device_count())]
    slots: queue.Queue = queue.Queue()
    for index in range(jobs):
        slots.put(devices[index % len(devices)] if devices else None)
    return slots


def collect_metrics(jobs: Sequence[Job], scores: str = 'fused',
                    subset: str = 'all') -> dict[str, dict[str, dict[str, float]]]:
    """Read every finished job's ``metrics.json``.

    Args:
        jobs: The jobs.
        scores: Which scores of ``metrics.json`` (``fused`` or a branch).
        subset: Which subset (``all`` or a defect type).

    Returns:
        ``{metric: {method: {category: fraction}}}`` (NaN where metrics.json holds null), metrics in file order.
    """
    table: dict[str, dict[str, dict[str, float]]] = {}
    for job in jobs:
        path = osp.join(job.work_dir, METRICS_FILE)
        if not osp.isfile(path):
            continue
        with open(path, encoding='utf-8') as file:
            metrics = json.load(file)
        try:
            values = metrics[scores][subset]
        except KeyError:
            raise KeyError(f'{path} has no {scores!r} scores with subset {subset!r}; it holds scores '
                           f'{sorted(metrics)}.') from None
        for name, value in values.items():
            table.setdefault(name, {}).setdefault(job.method, {})[job.category] = (
                math.nan if value is None else float(value))
    return table


def table_rows(values: dict[str, dict[str, float]], methods: Sequence[str],
               categories: Sequence[str]) -> list[list[float | None]]:
    """Per method: the value of each category (None when missing) and their average (None unless all exist)."""
    rows = []
    for method in methods:
        row = [values.get(method, {}).get(category) for category in categories]
        row.append(None if any(value is None for value in row) else sum(row) / len(row))
        rows.append(row)
    return rows


def format_markdown(table: dict[str, dict[str, dict[str, float]]], methods: Sequence[str],
                    categories: Sequence[str], scores: str = 'fused', subset: str = 'all') -> str:
    """One markdown table per metric: a row per method, a column per category, the average last, in %."""
    lines = [f'# Results ({scores} scores, subset {subset}, %)', '']
    for metric, values in table.items():
        lines += [f'## {metric}', '', '| method | ' + ' | '.join(categories) + ' | Average |',
                  '|---|' + '---:|' * (len(categories) + 1)]
        for method, row in zip(methods, table_rows(values, methods, categories)):
            lines.append(f'| {method} | ' + ' | '.join(_percent(value) for value in row) + ' |')
        lines.append('')
    return '\n'.join(lines)


def write_csv(path: str, table: dict[str, dict[str, dict[str, float]]], methods: Sequence[str],
              categories: Sequence[str]) -> None:
    """The tables of :func:`format_markdown` as one csv: ``metric,method,<categories...>,average`` in %."""
    with atomic_open(path, 'w', encoding='utf-8') as file:
        writer = csv.writer(file, lineterminator='\n')
        writer.writerow(['metric', 'method', *categories, 'average'])
        for metric, values in table.items():
            for method, row in zip(methods, table_rows(values, methods, categories)):
                writer.writerow([metric, method, *('' if value is None else round(100 * value, 4) for value in row)])


def _percent(value: float | None) -> str:
    if value is None:
        return '-'
    return 'nan' if math.isnan(value) else f'{100 * value:.1f}'


def write_results(jobs: Sequence[Job], work_root: str, scores: str = 'fused', subset: str = 'all') -> str:
    """Write ``results.md`` and ``results.csv`` into ``work_root``; returns the markdown."""
    methods = list(dict.fromkeys(job.method for job in jobs))
    categories = list(dict.fromkeys(job.category for job in jobs))
    table = collect_metrics(jobs, scores, subset)
    markdown = format_markdown(table, methods, categories, scores, subset)
    with atomic_open(osp.join(work_root, 'results.md'), 'w', encoding='utf-8') as file:
        file.write(markdown + '\n')
    write_csv(osp.join(work_root, 'results.csv'), table, methods, categories)
    return markdown


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = build_jobs(args.configs, args.categories, args.work_dir, args.cfg_options)
    if args.dry_run:
        for job in jobs:
            print(f'{job_state(job):8s} {job.method}/{job.category}: {job.config} -> {job.work_dir}')
        return 0
    slots = device_slots(args.devices, args.jobs)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        failures = [failure for failure in pool.map(lambda job: run_job(job, slots, args.jobs), jobs) if failure]
    markdown = write_results(jobs, args.work_dir, args.scores, args.subset)
    print(markdown)
    print(f'{len(jobs) - len(failures)}/{len(jobs)} runs finished in {time.perf_counter() - start:.0f} s; tables in '
          f'{osp.join(args.work_dir, "results.md")} and results.csv')
    for failure in failures:
        print(f'FAILED {failure}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
