"""Training throughput (images per second) of one process against several DDP processes, measured in one run.

For each entry of ``--processes`` the script starts a fresh measurement: one plain process for 1, torchrun with N
processes otherwise (gloo on CPU, nccl on GPUs; on a multi-GPU machine one GPU per process). Each measurement builds
the runner of the config (same model, wrapper, optimisers and per-process batch size as ``tools/train.py``), loads
one epoch of batches into memory, runs ``--warmup`` untimed then ``--iters`` timed ``train_step`` calls between two
barriers, and reports the images of all processes divided by the slowest process's time. Data loading is excluded:
the figure is that of the model, its optimisers and the gradient all-reduce.

Example:
    python tools/analysis_tools/benchmark_ddp.py configs/crd/crd_demo_synthetic.py --processes 1 2 --iters 20
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import torch
from mmengine.config import DictAction
from mmengine.dist import all_reduce, barrier, get_rank, get_world_size
from mmengine.runner import Runner

from mmad.utils import init_distributed_if_needed, read_config, register_all_modules, shutdown_distributed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='training config')
    parser.add_argument('--processes', type=int, nargs='+', default=[1, 2],
                        help='process counts to compare (one measurement each)')
    parser.add_argument('--iters', type=int, default=20, help='timed training iterations per process')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations before timing')
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP_NUM_THREADS of every process (CPU); 1 keeps N processes on N cores')
    parser.add_argument('--timeout', type=float, default=1800, help='seconds allowed to each measurement')
    parser.add_argument('--out', help='also write the results as json to this file')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='override settings of the config, key=value pairs (passed on verbatim)')
    parser.add_argument('--measure', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none', help=argparse.SUPPRESS)
    parser.add_argument('--work-dir', help=argparse.SUPPRESS)
    parser.add_argument('--result-file', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.processes) < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--processes and --iters must be positive and --warmup not negative.')
    return args


def measure(args: argparse.Namespace) -> dict:
    """Time ``args.iters`` training steps in this process (one rank of the measurement).

    Returns:
        ``processes``, ``batch_per_process``, ``iters``, ``images`` (all ranks), ``seconds`` (slowest rank) and
        ``images_per_second``.
    """
    register_all_modules()
    cfg = read_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(parse_cfg_options(args.cfg_options))
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir
    init_distributed_if_needed(cfg)
    runner = Runner.from_cfg(cfg)
    optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    dataloader = runner.build_dataloader(cfg.train_dataloader, seed=runner.seed)
    batches = list(dataloader)
    model = runner.model
    model.train()
    for step in range(args.warmup):
        model.train_step(batches[step % len(batches)], optim_wrapper)
    barrier()
    start = time.perf_counter()
    images = 0
    for step in range(args.iters):
        batch = batches[step % len(batches)]
        model.train_step(batch, optim_wrapper)
        images += len(batch['data_samples'])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = torch.tensor(time.perf_counter() - start, dtype=torch.float64)
    barrier()
    total_images = torch.tensor(images, dtype=torch.float64)
    all_reduce(seconds, op='max')
    all_reduce(total_images, op='sum')
    return dict(processes=get_world_size(), batch_per_process=dataloader.batch_size, iters=args.iters,
                images=int(total_images), seconds=float(seconds),
                images_per_second=float(total_images) / float(seconds))


def measurement_command(args: argparse.Namespace, processes: int, work_dir: str, result_file: str) -> list[str]:
    """The command of one measurement: a plain process for 1, torchrun (standalone rendezvous) otherwise."""
    script = [osp.abspath(__file__), args.config, '--measure', '--iters', str(args.iters), '--warmup',
              str(args.warmup), '--work-dir', work_dir, '--result-file', result_file]
    if args.cfg_options:
        script += ['--cfg-options', *args.cfg_options]
    if processes == 1:
        return [sys.executable, *script]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={processes}', *script,
            '--launcher', 'pytorch']


def parse_cfg_options(options: list[str]) -> dict:
    """``key=value`` strings as a dict, parsed as ``--cfg-options`` of tools/train.py parses them."""
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='cfg_options')(None, namespace, options)
    return namespace.cfg_options


def run_measurements(args: argparse.Namespace) -> list[dict]:
    """Run one measurement per entry of ``args.processes``, one after the other, and collect their results."""
    results = []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory(prefix='benchmark_ddp_') as tmp:
        for processes in args.processes:
            result_file = osp.join(tmp, f'result_{processes}.json')
            command = measurement_command(args, processes, osp.join(tmp, f'work_{processes}'), result_file)
            completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout,
                                       check=False)
            if completed.returncode != 0 or not osp.isfile(result_file):
                raise RuntimeError(f'The measurement with {processes} process(es) failed (exit code '
                                   f'{completed.returncode}): {" ".join(command)}\n{completed.stdout[-4000:]}'
                                   f'{completed.stderr[-4000:]}')
            with open(result_file, encoding='utf-8') as file:
                results.append(dict(json.load(file), threads_per_process=args.threads))
    return results


def format_results(results: list[dict]) -> str:
    """A text table with the speed-up and the parallel efficiency against the first measurement."""
    base = results[0]['images_per_second'] / results[0]['processes']
    lines = ['processes  threads/process  batch/process  images/s  speed-up  efficiency']
    for result in results:
        speedup = result['images_per_second'] / results[0]['images_per_second']
        efficiency = result['images_per_second'] / (base * result['processes'])
        lines.append(f"{result['processes']:9d}  {result['threads_per_process']:15d}  "
                     f"{result['batch_per_process']:13d}  {result['images_per_second']:8.2f}  {speedup:8.2f}  "
                     f'{100 * efficiency:9.0f}%')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        result = measure(args)
        if get_rank() == 0:
            with open(args.result_file, 'w', encoding='utf-8') as file:
                json.dump(result, file)
        shutdown_distributed()
        return
    results = run_measurements(args)
    print(format_results(results))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as file:
            json.dump(results, file, indent=2)


if __name__ == '__main__':
    main()
