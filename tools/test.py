"""Test a checkpoint and write ``metrics.json``.

``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--data-root DIR] [--category NAME] [--show-dir DIR]
[--threshold T] [--amp] [--compile] [--dry-run] [--cfg-options KEY=VALUE ...]``.

Writes ``metrics.json`` (fused and per branch, per defect type), ``scores.csv`` and ``curves.npz`` into the work
dir, with the ROC and PRO curve plots (``roc_image.png``, ``roc_pixel.png``, ``pro.png``) beside them. A checkpoint
without fitted statistics or decision threshold gets them fitted on the validation split first
(``ValidationStatisticsHook``); the log states the threshold used, or that decisions are off. Every dataset of the
run (test, and the statistics one in case the checkpoint lacks the statistics) and the model are built and checked
first; a full disk or a failing data-loader worker ends with a message instead of a traceback. ``--amp`` scores
under autocast (bfloat16 on CPU, float16 on CUDA; maps, smoothing and fusion stay float32), ``--compile`` compiles
the teacher and the student branches with ``torch.compile``.
"""
import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Only the standard library is imported before the arguments are parsed: `--help` answers at once.
    parser = argparse.ArgumentParser(description='Test an mmad checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save metrics.json, logs and heatmaps')
    parser.add_argument('--show-dir', help='write heatmap overlays of every test sample into this dir')
    parser.add_argument('--threshold', type=float,
                        help='decision threshold on the image score, replacing the one stored in the checkpoint')
    parser.add_argument('--amp', action='store_true',
                        help='score under autocast: bfloat16 on CPU, float16 on CUDA (test_cfg.fp16=True)')
    parser.add_argument('--compile', action='store_true',
                        help='compile the teacher and the student branches with PyTorch\'s compiler (the model\'s '
                        'compile_parts); the first batches are slow')
    parser.add_argument('--data-root', help='data root of every dataloader\'s dataset (test, statistics)')
    parser.add_argument('--category', help='category of every dataloader\'s dataset')
    parser.add_argument(
        '--cfg-options', nargs='+', action='extend', metavar='KEY=VALUE',
        help='override settings of the config, e.g. test_dataloader.batch_size=4; keys nothing reads (top-level '
        'variables such as image_size, misspelled keys) are refused')
    parser.add_argument('--tensorboard', action='store_true',
                        help="also log to TensorBoard (losses, learning rates, test metrics; needs the tensorboard "
                        "extra)")
    parser.add_argument('--dry-run', action='store_true',
                        help='check the config, build every dataset and the model, then stop without testing')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(args: argparse.Namespace):
    """Load the config and apply the command-line arguments to it.

    Raises:
        ConfigError: A missing config file, a refused override or an unusable value.
    """
    from mmad.utils import ConfigError
    from mmad.utils.tool_args import load_config

    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    for evaluator in evaluators:
        if evaluator.get('type') == 'ADMetric':
            if evaluator.get('out_dir') is None:
                evaluator.out_dir = cfg.work_dir
            evaluator.setdefault('checkpoint', args.checkpoint)
            evaluator.setdefault('config', args.config)
    if args.threshold is not None:
        hooks = [hook for hook in cfg.get('custom_hooks', []) if hook.get('type') == 'ValidationStatisticsHook']
        if not hooks:
            raise ConfigError(f'--threshold needs ValidationStatisticsHook in custom_hooks of {args.config} (it sets '
                              'the threshold before testing).')
        hooks[0].threshold = dict(rule='manual', value=args.threshold)
    if args.show_dir is not None:
        cfg.setdefault('custom_hooks', []).append(dict(type='AnomalyMapVisualizationHook', out_dir=args.show_dir))
    cfg.setdefault('custom_hooks', []).append(dict(type='TestCurvesPlotHook'))
    if args.tensorboard:
        from mmad.visualization.tensorboard import enable_tensorboard

        enable_tensorboard(cfg)
    return cfg


def describe_test_failure(error: BaseException, work_dir: str) -> str | None:
    """A message for a failure that is not a bug of the code (full disk, data-loader worker); None otherwise."""
    from mmad.utils import describe_environment_failure

    what = describe_environment_failure(error, fallback_target=work_dir)
    return None if what is None else f'Testing stopped: {what}'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmengine.runner import Runner

    from mmad.utils import (
        ConfigError,
        PreflightError,
        init_distributed_if_needed,
        preflight_check,
        run_dataloaders,
        shutdown_distributed,
        silence_known_notices,
    )
    from mmad.utils.tool_args import compile_runner_model

    try:
        cfg = merge_args(args)
    except ConfigError as error:
        sys.exit(f'test.py: error: {error}')
    if not args.dry_run and not os.path.isfile(args.checkpoint):
        sys.exit(f'test.py: error: checkpoint {args.checkpoint} does not exist')
    try:
        report = preflight_check(cfg, run_dataloaders(cfg, training=False))
    except PreflightError as error:
        sys.exit(f'test.py: {error}')
    if args.dry_run:
        sizes = ', '.join(f'{key} {size} samples' for key, size in report.dataset_sizes.items())
        print(f'Dry run of {args.config}: {sizes}; model {type(report.model).__name__} built. Nothing was tested.')
        return
    del report
    init_distributed_if_needed(cfg)
    runner = Runner.from_cfg(cfg)
    silence_known_notices(runner.logger)
    if args.compile:
        compile_runner_model(runner, 'test.py', 'batches')
    try:
        runner.test()
    except Exception as error:  # noqa: BLE001 - re-raised unless it is a known, non-code failure
        message = describe_test_failure(error, runner.work_dir)
        if message is None:
            raise
        runner.logger.error(message)
        sys.exit(1)
    shutdown_distributed()


if __name__ == '__main__':
    main()
