"""Test a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]``.

Writes ``metrics.json`` (fused and per branch, per defect type) into the work dir.
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmad.utils import init_distributed_if_needed, register_all_modules, shutdown_distributed
from mmad.utils.tool_args import apply_common_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test an mmad checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save metrics.json, logs and heatmaps')
    parser.add_argument('--show-dir', help='write heatmap overlays of every test sample into this dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. test_dataloader.dataset.data_root=DIR')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line arguments to the config."""
    apply_common_args(cfg, args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    for evaluator in evaluators:
        if evaluator.get('type') == 'ADMetric' and evaluator.get('out_dir') is None:
            evaluator.out_dir = cfg.work_dir
    if args.show_dir is not None:
        cfg.setdefault('custom_hooks', []).append(dict(type='AnomalyMapVisualizationHook', out_dir=args.show_dir))
    return cfg


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = merge_args(Config.fromfile(args.config), args)
    init_distributed_if_needed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
