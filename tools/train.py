"""Train a model.

``python tools/train.py CONFIG [--work-dir DIR] [--data-root DIR] [--category NAME] [--resume [PATH]] [--overwrite]
[--amp] [--compile] [--dry-run] [--cfg-options KEY=VALUE ...]``.

Several processes: ``tools/dist_train.sh CONFIG GPUS`` (torchrun) or ``tools/slurm_train.sh`` (srun); see
docs/distributed.md. ``--resume`` without a path continues from the last complete checkpoint of the work dir; a
fresh run refuses a work dir holding another run's checkpoints unless ``--overwrite`` (which deletes them) is given.
Before the first epoch every dataset of the run (train, statistics, test) and the model (teacher weights included)
are built and checked, and all problems are reported at once. A run that stops because the disk is full or a
data-loader worker failed or died ends with a message that says so and names the last good checkpoint (checkpoints
are written atomically, so that one is intact).
"""
import argparse
import os
import sys

AMP_REPLACEABLE_WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper', 'AutocastOptimWrapper')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Only the standard library is imported before the arguments are parsed: `--help` answers at once.
    parser = argparse.ArgumentParser(description='Train an mmad model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the last complete checkpoint of the work dir when no path '
        'is given (training starts from scratch when there is none)')
    parser.add_argument('--overwrite', action='store_true',
                        help='start a fresh run in a work dir that holds another run\'s checkpoints, deleting its '
                        'checkpoints and last_checkpoint first (its logs are kept)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: bfloat16 autocast on CPU, float16 with loss scaling on '
                        'CUDA (AutocastOptimWrapper)')
    parser.add_argument('--compile', action='store_true',
                        help='compile the teacher and the student branches with PyTorch\'s compiler (the model\'s '
                        'compile_parts); the first iterations are slow')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--data-root', help='data root of every dataloader\'s dataset (train, statistics, test)')
    parser.add_argument('--category', help='category of every dataloader\'s dataset')
    parser.add_argument(
        '--cfg-options', nargs='+', action='extend', metavar='KEY=VALUE',
        help='override settings of the config, e.g. train_cfg.max_epochs=10; keys nothing reads (top-level '
        'variables such as image_size, misspelled keys) are refused')
    parser.add_argument('--tensorboard', action='store_true',
                        help="also log to TensorBoard (losses, learning rates, test metrics; needs the tensorboard "
                        "extra)")
    parser.add_argument('--dry-run', action='store_true',
                        help='check the config, build every dataset and the model, then stop without training')
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
    from mmengine.logging import print_log

    from mmad.utils import ConfigError, find_last_checkpoint
    from mmad.utils.tool_args import load_config

    cfg = load_config(args)
    if args.amp:
        own_types = {key: value['type'] for key, value in cfg.optim_wrapper.items()
                     if isinstance(value, dict) and 'optimizer' in value and 'type' in value}
        found = dict(own_types, optim_wrapper=cfg.optim_wrapper.get('type', 'OptimWrapper'))
        other = {key: value for key, value in found.items() if value not in AMP_REPLACEABLE_WRAPPERS}
        if other:
            raise ConfigError(f'--amp replaces the optimiser wrapper by AutocastOptimWrapper, but {args.config} sets '
                              f'{other}; expected one of {list(AMP_REPLACEABLE_WRAPPERS)}.')
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
        for key in own_types:
            cfg.optim_wrapper[key].type = 'AutocastOptimWrapper'
    if args.resume == 'auto':
        checkpoint = find_last_checkpoint(cfg.work_dir)
        cfg.resume = checkpoint is not None
        cfg.load_from = checkpoint
        if checkpoint is None:
            print_log(f'--resume: {cfg.work_dir} holds no complete checkpoint; training starts from scratch.',
                      logger='current')
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.tensorboard:
        from mmad.visualization.tensorboard import enable_tensorboard

        enable_tensorboard(cfg)
    return cfg


def warn_about_checkpoint_retention(cfg) -> None:
    """Warn when the checkpoint hook keeps one checkpoint: mmengine deletes it before writing the next one."""
    from mmengine.logging import print_log

    checkpoint_hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    if checkpoint_hook.get('max_keep_ckpts', -1) == 1:
        print_log('default_hooks.checkpoint.max_keep_ckpts=1: mmengine deletes the previous checkpoint before it '
                  'writes the next one, so a failure during that write leaves no checkpoint. Keep at least 2.',
                  logger='current', level='WARNING')


def describe_training_failure(error: BaseException, work_dir: str, config: str) -> str | None:
    """A message for a failure that is not a bug of the code: a full disk or a failed or dead data-loader worker.

    Args:
        error: The exception that stopped training.
        work_dir: The work dir holding the checkpoints.
        config: The config file, for the resume command.

    Returns:
        What happened, what to do, and the last good checkpoint; None for any other failure.
    """
    from mmad.utils import describe_environment_failure, find_last_checkpoint

    what = describe_environment_failure(error, fallback_target=work_dir)
    if what is None:
        return None
    checkpoint = find_last_checkpoint(work_dir)
    if checkpoint is None:
        where = f'No checkpoint had been written to {work_dir} yet; training must start again.'
    else:
        where = (f'The last good checkpoint is {checkpoint}; continue with:\n  python tools/train.py {config} '
                 f'--work-dir {work_dir} --resume')
    return f'Training stopped: {what}\n{where}'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmengine.dist import barrier, get_rank

    from mmad.utils import (
        ConfigError,
        PreflightError,
        ScheduleFollowingRunner,
        describe_previous_run,
        init_distributed_if_needed,
        preflight_check,
        previous_run_files,
        remove_previous_run,
        remove_temp_files,
        run_dataloaders,
        shutdown_distributed,
        silence_known_notices,
    )
    from mmad.utils.tool_args import compile_runner_model

    try:
        cfg = merge_args(args)
    except ConfigError as error:
        sys.exit(f'train.py: error: {error}')
    fresh_run_files = [] if cfg.get('resume', False) else previous_run_files(cfg.work_dir)
    if fresh_run_files and not args.overwrite and not args.dry_run:
        sys.exit(f'train.py: error: {describe_previous_run(cfg.work_dir, fresh_run_files, args.config)}')
    try:
        report = preflight_check(cfg, run_dataloaders(cfg, training=True))
    except PreflightError as error:
        sys.exit(f'train.py: {error}')
    if args.dry_run:
        sizes = ', '.join(f'{key} {size} samples' for key, size in report.dataset_sizes.items())
        print(f'Dry run of {args.config}: {sizes}; model {type(report.model).__name__} built. Nothing was trained.')
        if fresh_run_files and not args.overwrite:
            print(f'Without --dry-run: {describe_previous_run(cfg.work_dir, fresh_run_files, args.config)}')
        return
    del report
    warn_about_checkpoint_retention(cfg)
    init_distributed_if_needed(cfg)
    if fresh_run_files and get_rank() == 0:
        remove_previous_run(fresh_run_files)
        print(f'--overwrite: deleted the earlier run\'s {", ".join(os.path.basename(f) for f in fresh_run_files)} '
              f'in {cfg.work_dir}', flush=True)
    barrier()
    runner = ScheduleFollowingRunner.from_cfg(cfg)
    silence_known_notices(runner.logger)
    if args.compile:
        compile_runner_model(runner, 'train.py', 'iterations')
    if runner.rank == 0:
        for path in remove_temp_files(runner.work_dir):
            runner.logger.info(f'Removed {path}, left by a checkpoint write that was interrupted.')
    try:
        runner.train()
    except Exception as error:  # noqa: BLE001 - re-raised unless it is a known, non-code failure
        message = describe_training_failure(error, runner.work_dir, args.config)
        if message is None:
            raise
        runner.logger.error(message)
        sys.exit(1)
    shutdown_distributed()


if __name__ == '__main__':
    main()
