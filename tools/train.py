"""Train a model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]] [--amp] [--cfg-options ...]``.

Several processes: ``tools/dist_train.sh CONFIG GPUS`` (torchrun) or ``tools/slurm_train.sh`` (srun); see
docs/distributed.md. ``--resume`` without a path continues from the last complete checkpoint of the work dir.
A run that stops because the disk is full or a data-loader worker died ends with a message that says so and names
the last good checkpoint (checkpoints are written atomically, so that one is intact).
"""
import argparse
import errno
import os
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmad.utils import (
    find_last_checkpoint,
    init_distributed_if_needed,
    register_all_modules,
    remove_temp_files,
    shutdown_distributed,
)
from mmad.utils.tool_args import apply_common_args

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DISK_FULL_MESSAGES = ('No space left on device', 'Disk quota exceeded', 'File too large')
WORKER_DEATH_MESSAGE = 'DataLoader worker'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmad model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the last complete checkpoint of the work dir when no path '
        'is given (training starts from scratch when there is none)')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision training')
    parser.add_argument('--no-validate', action='store_true', help='kept for OpenMMLab compatibility; no effect')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. train_dataloader.dataset.data_root=DIR')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line arguments to the config."""
    apply_common_args(cfg, args)
    if args.amp:
        cfg.optim_wrapper.setdefault('type', 'OptimWrapper')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
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
    return cfg


def warn_about_checkpoint_retention(cfg: Config) -> None:
    """Warn when the checkpoint hook keeps one checkpoint: mmengine deletes it before writing the next one."""
    checkpoint_hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    if checkpoint_hook.get('max_keep_ckpts', -1) == 1:
        print_log('default_hooks.checkpoint.max_keep_ckpts=1: mmengine deletes the previous checkpoint before it '
                  'writes the next one, so a failure during that write leaves no checkpoint. Keep at least 2.',
                  logger='current', level='WARNING')


def describe_training_failure(error: BaseException, work_dir: str, config: str) -> str | None:
    """A message for a failure that is not a bug of the code: a full disk or a dead data-loader worker.

    Args:
        error: The exception that stopped training.
        work_dir: The work dir holding the checkpoints.
        config: The config file, for the resume command.

    Returns:
        What happened, what to do, and the last good checkpoint; None for any other failure.
    """
    chain = _exception_chain(error)
    full_disk = next((err for err in chain if _is_disk_full(err)), None)
    worker_death = next((err for err in chain if WORKER_DEATH_MESSAGE in str(err)), None)
    if full_disk is not None:
        target = getattr(full_disk, 'filename', None) or work_dir
        reason = getattr(full_disk, 'strerror', None) or str(full_disk)
        what = (f'the disk is full (or a quota or file-size limit was reached) while writing {target} ({reason}). '
                'Free space (or move the work dir) before resuming.')
    elif worker_death is not None:
        what = (f'a data-loader worker process died: {worker_death}. The usual causes are the kernel\'s '
                'out-of-memory killer (see `dmesg`; lower train_dataloader.num_workers or batch_size), a crash in a '
                'transform or a native library, or a too small /dev/shm in containers (docker --shm-size).')
    else:
        return None
    checkpoint = find_last_checkpoint(work_dir)
    if checkpoint is None:
        where = f'No checkpoint had been written to {work_dir} yet; training must start again.'
    else:
        where = (f'The last good checkpoint is {checkpoint}; continue with:\n  python tools/train.py {config} '
                 f'--work-dir {work_dir} --resume')
    return f'Training stopped: {what}\n{where}'


def _exception_chain(error: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in DISK_FULL_MESSAGES)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    register_all_modules()
    cfg = merge_args(Config.fromfile(args.config), args)
    warn_about_checkpoint_retention(cfg)
    init_distributed_if_needed(cfg)
    runner = Runner.from_cfg(cfg)
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
