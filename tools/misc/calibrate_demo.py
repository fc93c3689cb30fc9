"""Calibrate the demo config: train it for several model seeds on one draw of the synthetic data, print I-AUROC.

Example:
    python tools/misc/calibrate_demo.py --model-seeds 0 1 2 --data-seed 0

The data are generated once (the config's ``demo_data`` settings, seed ``--data-seed``) under the work dir; each
model seed then trains the config from scratch (``randomness = dict(seed=..., deterministic=True)``, ``--threads``
intra-op threads), tests its last checkpoint and reports the I-AUROC of the fused score and of each branch on
every defect type, the demo's claims (docs/crd_synthetic_calibration.md) and the process CPU time and wall time.
A JSON summary goes to ``WORK_DIR/calibration.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from rich.console import Console
from rich.table import Table

from mmad.datasets.synthetic import COLOUR_DEFECTS, GEOMETRY_DEFECTS, make_synthetic_mvtec3d
from mmad.utils import read_config, register_all_modules

DEFAULT_CONFIG = 'configs/crd/crd_demo_synthetic.py'
DATALOADERS = ('train_dataloader', 'val_stats_dataloader', 'test_dataloader')
# Geometry-only and colour-only defect types of the generator.
GEOMETRY_ONLY = sorted(GEOMETRY_DEFECTS - COLOUR_DEFECTS)
COLOUR_ONLY = sorted(COLOUR_DEFECTS - GEOMETRY_DEFECTS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='demo config with a demo_data dict')
    parser.add_argument('--model-seeds', type=int, nargs='+', default=[0, 1, 2], help='randomness.seed of each run')
    parser.add_argument('--data-seed', type=int, default=0, help='seed of the synthetic data draw')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/calibrate_demo'))
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (1: as the documented calibration and the e2e test)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides, e.g. train_cfg.max_epochs=20 demo_data.num_train=40')
    return parser.parse_args(argv)


def load_config(path: str, options: dict) -> Config:
    """The config with ``options`` merged; it must hold ``demo_data`` (arguments of the data generator)."""
    cfg = read_config(path)
    cfg.merge_from_dict(options)
    if 'demo_data' not in cfg:
        raise KeyError(f'{path}: no demo_data dict (the make_synthetic_mvtec3d arguments of the demo data)')
    return cfg


def run_config(cfg: Config, data_root: Path, work_dir: Path, seed: int) -> Config:
    """A copy of ``cfg`` that trains and tests quietly in ``work_dir`` on ``data_root`` with model seed ``seed``."""
    cfg = cfg.copy()
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=seed, deterministic=True)
    max_epochs = cfg.train_cfg.max_epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max_epochs, save_last=True)
    cfg.custom_hooks = [dict(type='SafeCheckpointHook'),
                        dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False)]
    for key in DATALOADERS:
        cfg[key].dataset.data_root = str(data_root)
    cfg.test_evaluator.out_dir = str(work_dir)
    return cfg


def train_and_test(cfg: Config, data_root: Path, work_dir: Path, seed: int) -> dict:
    """Train ``cfg`` with model seed ``seed``, test the last checkpoint; return the metrics and the times."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    train_cfg = run_config(cfg, data_root, work_dir / 'train', seed)
    Runner.from_cfg(train_cfg).train()
    test_cfg = run_config(cfg, data_root, work_dir / 'test', seed)
    test_cfg.load_from = str(work_dir / 'train' / f'epoch_{cfg.train_cfg.max_epochs}.pth')
    Runner.from_cfg(test_cfg).test()
    with open(work_dir / 'test' / 'metrics.json') as f:
        metrics = json.load(f)
    return dict(seed=seed, metrics=metrics, wall_s=time.perf_counter() - start_wall,
                cpu_s=time.process_time() - start_cpu)


def demo_claims(metrics: dict) -> dict[str, bool]:
    """The claims the demo shows and the end-to-end test asserts (I-AUROC per defect type).

    Args:
        metrics: ``metrics.json`` of a test run: output (fused, rgb, depth) -> defect type -> metric -> value.

    Returns:
        Claim -> whether it holds.
    """
    auroc = {output: {defect: values['I-AUROC'] for defect, values in per_defect.items()}
             for output, per_defect in metrics.items()}
    claims = {}
    for defect in GEOMETRY_ONLY:
        claims[f'depth {defect} >= 0.80'] = auroc['depth'][defect] >= 0.80
        claims[f'depth {defect} > rgb {defect}'] = auroc['depth'][defect] > auroc['rgb'][defect]
    for defect in COLOUR_ONLY:
        claims[f'rgb {defect} >= 0.95'] = auroc['rgb'][defect] >= 0.95
        claims[f'rgb {defect} > depth {defect}'] = auroc['rgb'][defect] > auroc['depth'][defect]
    best_branch = max(auroc['rgb']['all'], auroc['depth']['all'])
    claims['fused all >= best branch all - 0.01'] = auroc['fused']['all'] >= best_branch - 0.01
    return claims


def print_runs(runs: list[dict], console: Console) -> None:
    """A table of I-AUROC (%): a row per model seed and output (fused, branches), a column per defect type."""
    defects = list(next(iter(runs[0]['metrics'].values())))
    table = Table(title='I-AUROC (%)')
    table.add_column('model seed', justify='right')
    table.add_column('output')
    for defect in defects:
        table.add_column(defect, justify='right')
    for run in runs:
        for output, per_defect in run['metrics'].items():
            table.add_row(str(run['seed']), output, *(f'{100 * per_defect[d]["I-AUROC"]:.1f}' for d in defects))
    console.print(table)
    for run in runs:
        failed = [claim for claim, holds in demo_claims(run['metrics']).items() if not holds]
        console.print(f'model seed {run["seed"]}: claims {"all hold" if not failed else "FAILED: " + "; ".join(failed)}'
                      f'; {run["cpu_s"]:.0f} CPU s, {run["wall_s"]:.0f} s wall (train + test)')


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    register_all_modules()
    torch.set_num_threads(args.threads)
    console = Console()
    cfg = load_config(args.config, args.cfg_options)
    data_settings = dict(cfg.demo_data, seed=args.data_seed)
    category = cfg.train_dataloader.dataset.category
    data_root = args.work_dir / f'data_seed{args.data_seed}'
    start_cpu = time.process_time()
    make_synthetic_mvtec3d(data_root, category=category, **data_settings)
    console.print(f'data: {data_root}/{category} {data_settings} ({time.process_time() - start_cpu:.0f} CPU s)')
    runs = []
    for seed in args.model_seeds:
        runs.append(train_and_test(cfg, data_root, args.work_dir / f'model_seed{seed}', seed))
    print_runs(runs, console)
    summary = dict(config=args.config, cfg_options=args.cfg_options, data=data_settings, threads=args.threads,
                   runs=[dict(run, claims=demo_claims(run['metrics'])) for run in runs])
    with open(args.work_dir / 'calibration.json', 'w') as f:
        json.dump(summary, f, indent=2)
    console.print(f'summary: {args.work_dir / "calibration.json"}')


if __name__ == '__main__':
    main()
