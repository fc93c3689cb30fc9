"""End-to-end demo on built-in synthetic data: generate, train, test, print metrics, write heatmaps.

``python tools/run_demo.py [--work-dir DIR] [--data-root DIR] [--epochs N]`` (``make demo`` runs it).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

import cv2
import numpy as np
from mmengine.config import Config
from rich.console import Console
from rich.table import Table

from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.evaluation.metrics.ad_metric import RECORD_KEYS

CONFIG = 'configs/crd/crd_demo_synthetic.py'
CATEGORY = 'synthetic'
METRICS = ('I-AUROC', 'I-AP', 'P-AUROC', 'P-AP', 'AUPRO@0.3')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the CRD demo on synthetic MVTec 3D-AD-format data')
    parser.add_argument('--work-dir', default='work_dirs/crd_demo_synthetic')
    parser.add_argument('--data-root', default='data/synthetic_mvtec3d')
    parser.add_argument('--epochs', type=int, default=None, help='override the config\'s number of epochs')
    return parser.parse_args()


def run(cmd: list[str]) -> None:
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def print_metrics(metrics: dict, console: Console) -> None:
    """One table per model output (fused, then each branch): a row per defect type, metrics in percent."""
    for output, per_defect in metrics.items():
        if output in RECORD_KEYS:
            continue
        table = Table(title=f'{output} (%)')
        table.add_column('defect type')
        for name in METRICS:
            table.add_column(name, justify='right')
        for defect, values in per_defect.items():
            table.add_row(defect, *('n/a' if values.get(m) is None else f'{100 * values[m]:.1f}' for m in METRICS))
        console.print(table)
    for note in metrics['notes']:
        console.print(f'note: {note}')


def teacher_label(teacher: dict) -> str:
    """What the teacher is and where its weights come from, e.g. ``tf_efficientnet_lite0, weights <file>``."""
    if teacher.get('checkpoint'):
        return f"{teacher['model_name']}, weights {osp.basename(teacher['checkpoint'])}"
    if teacher.get('pretrained'):
        return f"{teacher['model_name']}, timm's pretrained weights"
    return f"{teacher['model_name']}, random init"


def write_overview(heatmap_dir: str, out_path: str, title: str) -> str:
    """Stack the first heatmap panel of each defect folder (good first) under a title band (the README's picture).

    Args:
        heatmap_dir: The heatmap folder of a test run, ``<defect type>/<sample>.png``.
        out_path: PNG to write.
        title: Text of the title band.

    Returns:
        ``out_path``.
    """
    folders = sorted(os.listdir(heatmap_dir), key=lambda name: (name != 'good', name))
    panels = [cv2.imread(osp.join(heatmap_dir, folder, sorted(os.listdir(osp.join(heatmap_dir, folder)))[0]))
              for folder in folders if os.listdir(osp.join(heatmap_dir, folder))]
    width = max(panel.shape[1] for panel in panels)
    rows = [np.pad(panel, ((0, 0), (0, width - panel.shape[1]), (0, 0)), constant_values=255) for panel in panels]
    band = np.full((30, width, 3), 255, np.uint8)
    cv2.putText(band, title, (6, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(out_path, np.vstack([band, *rows]))
    return out_path


def main() -> None:
    args = parse_args()
    console = Console()
    start = time.time()
    cfg = Config.fromfile(CONFIG)
    if not osp.isdir(osp.join(args.data_root, CATEGORY, 'train')):
        console.print(f'Generating synthetic data in {args.data_root}/{CATEGORY}: {cfg.demo_data}')
        make_synthetic_mvtec3d(args.data_root, category=CATEGORY, show_progress=True, **cfg.demo_data)
    data = ['--data-root', args.data_root]
    epochs = [] if args.epochs is None else ['--cfg-options', f'train_cfg.max_epochs={args.epochs}']
    # --overwrite: a re-run of the demo replaces the previous demo run's checkpoints instead of being refused.
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', args.work_dir, '--overwrite', *data, *epochs])
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    run([sys.executable, 'tools/test.py', CONFIG, checkpoint, '--work-dir', args.work_dir, *data])
    with open(osp.join(args.work_dir, 'metrics.json')) as f:
        metrics = json.load(f)
    teacher = teacher_label(cfg.model.teacher)
    console.rule(f'CRD demo: synthetic data, teacher {teacher}')
    print_metrics(metrics, console)
    overview = write_overview(osp.join(args.work_dir, 'heatmaps'), osp.join(args.work_dir, 'demo_heatmaps.png'),
                              f'CRD demo, teacher {teacher}')
    console.print(f'metrics.json and heatmaps: {args.work_dir} (heatmaps/<defect>/<sample>.png, overview {overview})')
    console.print(f'demo wall time: {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
