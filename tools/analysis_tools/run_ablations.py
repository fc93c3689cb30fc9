r"""Train and test ablation configs on one category; one table of wall times and fused and per-branch metrics.

A row per config (paper Tab. 3-7 layout, values in %)::

    python tools/analysis_tools/run_ablations.py configs/crd_ablations/*.py --data-root data/synthetic_mvtec3d \
        --category synthetic --work-dir work_dirs/ablations

Each config runs through ``tools/train.py`` and ``tools/test.py`` (``--data-root`` / ``--category`` given to both)
in ``WORK_DIR/<config name>/``, with the resumable runs of ``tools/train_all.py``: a config whose ``metrics.json``
exists is not run again, and keeps the wall time measured when it ran (``wall_time.json``). ``WORK_DIR/ablations.md``
and ``ablations.csv`` hold the table; a branch the model does not have (single-branch rows) is ``-``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os.path as osp
import sys
import time
from collections.abc import Sequence

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from train_all import METRICS_FILE, Job, config_category, device_slots, job_state, method_name, run_job  # noqa: E402

from mmad.utils import atomic_open  # noqa: E402

WALL_TIME_FILE = 'wall_time.json'
SOURCES = ('fused', 'rgb', 'depth')
METRICS = ('I-AUROC', 'P-AUROC', 'AUPRO@0.3')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run ablation configs on one category and tabulate them')
    parser.add_argument('configs', nargs='+', help='config files, one table row each (in this order)')
    parser.add_argument('--data-root', help='data root of every run (tools/train.py --data-root)')
    parser.add_argument('--category', help='category of every run (default: each config\'s own)')
    parser.add_argument('--work-dir', default='work_dirs/ablations',
                        help='root folder: WORK_DIR/<config name>/ per run, ablations.md/csv at the root')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides passed to train.py and test.py of every run')
    parser.add_argument('--sources', nargs='+', default=list(SOURCES),
                        help='scores tabulated: fused and branch names')
    parser.add_argument('--metrics', nargs='+', default=list(METRICS), help='metrics tabulated')
    parser.add_argument('--subset', default='all', help='subset tabulated: all or a defect type')
    return parser.parse_args(argv)


def build_ablation_jobs(configs: Sequence[str], work_root: str, data_root: str | None = None,
                        category: str | None = None, cfg_options: Sequence[str] = ()) -> list[Job]:
    """One job per config, named after its file, all on the same data root and category.

    Raises:
        ValueError: Two configs have the same file name (their work dirs would collide).
    """
    tool_args = (*(('--data-root', data_root) if data_root else ()), *(('--category', category) if category else ()))
    jobs = []
    for config in configs:
        method = method_name(config)
        if any(job.method == method for job in jobs):
            raise ValueError(f'two configs are named {method!r} ({config}); rename one of them.')
        job_category = category or config_category(Config.fromfile(config), config)
        jobs.append(Job(method, job_category, config, osp.join(work_root, method), tuple(cfg_options), tool_args))
    return jobs


def run_timed(job: Job) -> str | None:
    """Run a job (train + test) unless done; record its wall time in ``wall_time.json``. Returns a failure or None."""
    if job_state(job) == 'done':
        return None
    start = time.perf_counter()
    failure = run_job(job, device_slots(None, 1), 1)
    if failure is None:
        with atomic_open(osp.join(job.work_dir, WALL_TIME_FILE), 'w', encoding='utf-8') as file:
            json.dump(dict(seconds=round(time.perf_counter() - start, 1)), file)
    return failure


def ablation_row(job: Job, sources: Sequence[str], metrics: Sequence[str], subset: str = 'all') -> dict:
    """The table row of a finished job: ``config``, ``wall_s`` and ``<source> <metric>`` fractions (None if absent).

    Raises:
        FileNotFoundError: The job has no ``metrics.json``.
    """
    with open(osp.join(job.work_dir, METRICS_FILE), encoding='utf-8') as file:
        results = json.load(file)
    time_path = osp.join(job.work_dir, WALL_TIME_FILE)
    wall = None
    if osp.isfile(time_path):
        with open(time_path, encoding='utf-8') as file:
            wall = json.load(file)['seconds']
    row = dict(config=job.method, wall_s=wall)
    for source in sources:
        values = results.get(source, {}).get(subset, {})
        for metric in metrics:
            value = values.get(metric)
            row[f'{source} {metric}'] = None if value is None else float(value)
    return row


def _cell(value: float | str | None, percent: bool) -> str:
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return 'nan'
    return f'{100 * value:.1f}' if percent else f'{value:.0f}'


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table: config, wall time in s, then the metrics in %."""
    columns = list(rows[0])
    lines = ['| ' + ' | '.join(columns) + ' |', '|---|' + '---:|' * (len(columns) - 1)]
    for row in rows:
        lines.append('| ' + ' | '.join(_cell(row[key], key not in ('config', 'wall_s')) for key in columns) + ' |')
    return '\n'.join(lines)


def write_table(rows: Sequence[dict], work_root: str) -> str:
    """Write ``ablations.md`` and ``ablations.csv`` (metrics as fractions) into ``work_root``; return the markdown."""
    markdown = format_table(rows)
    with atomic_open(osp.join(work_root, 'ablations.md'), 'w', encoding='utf-8') as file:
        file.write(markdown + '\n')
    with atomic_open(osp.join(work_root, 'ablations.csv'), 'w', encoding='utf-8') as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator='\n')
        writer.writeheader()
        writer.writerows({key: '' if value is None else value for key, value in row.items()} for row in rows)
    return markdown


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = build_ablation_jobs(args.configs, args.work_dir, args.data_root, args.category, args.cfg_options)
    start = time.perf_counter()
    failures = []
    for job in jobs:
        failure = run_timed(job)
        print(f'{job.method}: {failure or "done"}', flush=True)
        if failure:
            failures.append(failure)
    rows = [ablation_row(job, args.sources, args.metrics, args.subset) for job in jobs if job_state(job) == 'done']
    if rows:
        print(write_table(rows, args.work_dir))
    print(f'{len(rows)}/{len(jobs)} configs finished in {time.perf_counter() - start:.0f} s; table in '
          f'{osp.join(args.work_dir, "ablations.md")} and ablations.csv')
    for failure in failures:
        print(f'FAILED {failure}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
