"""Compare encodings of the point cloud as the second CRD branch (rgb + X) on generated MVTec 3D-AD-format data.

Each encoding is one training and test of CRD with the packaged ImageNet EfficientNet-Lite0 teacher (CPU-sized),
the same data, seed and schedule; only the point-cloud steps after ``FitTablePlane`` differ. The table reports the
X branch alone and the fused prediction, per defect type (``dent`` changes only the geometry, ``color`` only the
rgb image, ``crack`` both)::

    python tools/analysis_tools/compare_depth_encodings.py work_dirs/encodings --encodings depth height

Writes ``WORK_DIR/encodings.md`` (and each run's ``metrics.json`` under ``WORK_DIR/<encoding>/``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.runner import Runner

REPO = Path(__file__).resolve().parents[2]
ENCODINGS = {
    'depth': ([dict(type='DepthFromPoints')], 'depth'),
    'height': ([dict(type='HeightFromPlane', height_range_mm=(0.0, 60.0))], 'height'),
    'normals_sobel': ([dict(type='DepthFromPoints'), dict(type='NormalsFromDepth')], 'normals'),
    'normals_points': ([dict(type='NormalsFromPoints')], 'normals'),
    'xyz': ([dict(type='XYZImageFromPoints')], 'xyz'),
}
"""Encoding -> (steps after FitTablePlane, result key packed as the second modality)."""
METRICS = ('I-AUROC', 'P-AUROC', 'AUPRO@0.3')


def encoding_config(encoding: str, data_root: Path, work_dir: Path, size: int, epochs: int, seed: int) -> Config:
    """CRD rgb + ``encoding`` with the EfficientNet-Lite0 teacher on ``data_root/synthetic``."""
    from mmad.utils import read_config

    steps, key = ENCODINGS[encoding]
    cfg = read_config(REPO / 'configs' / 'crd' / 'crd_demo_synthetic.py')
    lite0 = Config.fromfile(REPO / 'configs' / '_base_' / 'models' / 'crd_effnet_lite0.py').model
    cfg.model = lite0
    cfg.model.modalities = ('rgb', key)
    cfg.model.data_preprocessor.modalities = {'rgb': lite0.data_preprocessor.modalities.rgb,
                                              key: dict(mean=[0.5], std=[0.5])}
    loading = [dict(type='LoadRGBFromFile'), dict(type='LoadXYZFromFile')]
    geometry = [dict(type='FitTablePlane', size=size), *steps, dict(type='ResizeImage', size=size, keys=('rgb', ))]
    pack = dict(type='PackADInputs', modalities=('rgb', key))
    pipelines = dict(train=[*loading, *geometry, pack],
                     test=[*loading, dict(type='LoadMaskFromFile'), *geometry, dict(type='ResizeMask', size=size),
                           pack])
    for loader, pipeline in (('train_dataloader', 'train'), ('val_stats_dataloader', 'test'),
                             ('test_dataloader', 'test')):
        cfg[loader].dataset.update(data_root=str(data_root), category='synthetic', pipeline=pipelines[pipeline])
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_epochs = epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.custom_hooks = [dict(type='SafeCheckpointHook'),
                        dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False)]
    cfg.test_evaluator.out_dir = str(work_dir)
    cfg.randomness = dict(seed=seed, deterministic=True)
    cfg.log_level = 'WARNING'
    return cfg


def run_encoding(encoding: str, data_root: Path, work_dir: Path, size: int, epochs: int, seed: int) -> dict:
    """Train and test one encoding; return its metrics and wall time."""
    start = time.perf_counter()
    Runner.from_cfg(encoding_config(encoding, data_root, work_dir, size, epochs, seed)).train()
    test_cfg = encoding_config(encoding, data_root, work_dir / 'test', size, epochs, seed)
    test_cfg.load_from = str(work_dir / f'epoch_{epochs}.pth')
    Runner.from_cfg(test_cfg).test()
    metrics = json.loads((work_dir / 'test' / 'metrics.json').read_text())
    return dict(metrics=metrics, seconds=time.perf_counter() - start, key=ENCODINGS[encoding][1])


def table(results: dict[str, dict]) -> str:
    """Markdown table: one row per encoding and source (its branch, fused), one column per defect type x metric."""
    first = next(iter(results.values()))['metrics']['fused']
    subsets = list(first)
    header = '| encoding | scores of | ' + ' | '.join(f'{s} {m}' for s in subsets for m in METRICS) + ' | wall s |'
    lines = [header, '|' + '---|' * (len(subsets) * len(METRICS) + 3)]
    for encoding, result in results.items():
        for source in (result['key'], 'fused'):
            values = [result['metrics'][source][s][m] for s in subsets for m in METRICS]
            cells = ' | '.join(f'{100 * v:.1f}' for v in values)
            lines.append(f"| {encoding} | {'branch' if source != 'fused' else 'fused'} | {cells} | "
                         f"{result['seconds']:.0f} |")
    return '\n'.join(lines) + '\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dir', type=Path)
    parser.add_argument('--encodings', nargs='+', choices=list(ENCODINGS), default=['depth', 'height'])
    parser.add_argument('--size', type=int, default=96, help='model input side (divisible by 32)')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-test-per-defect', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    from mmad.datasets.synthetic import make_synthetic_mvtec3d
    from mmad.utils import register_all_modules
    register_all_modules()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data_root = args.work_dir / 'data'
    if not (data_root / 'synthetic').is_dir():
        make_synthetic_mvtec3d(data_root, 'synthetic', height=128, width=128, num_train=args.num_train, num_val=10,
                               num_test_per_defect=args.num_test_per_defect, seed=1)
    results = {encoding: run_encoding(encoding, data_root, args.work_dir / encoding, args.size, args.epochs, args.seed)
               for encoding in args.encodings}
    text = table(results)
    (args.work_dir / 'encodings.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
