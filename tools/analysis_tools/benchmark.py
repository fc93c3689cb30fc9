r"""Benchmark CRD: the training step against its parts and a plain-PyTorch reference, inference, data, metrics.

Every figure is the median over ``--iters`` timed iterations after ``--warmup`` untimed ones, on random inputs of
the config's size (training, inference), on a generated MVTec 3D-AD-format category (data) or on generated maps the
size of the MVTec 3D-AD test set (metrics). Parts (``--parts``):

- ``train``: ``model.train_step`` with the config's ``OptimWrapperDict`` (the CRD step); its parts timed alone
  (the teacher forward once, ``extract_teacher_feats``, then each branch's student step: ``branch_losses``,
  backward, its Adam step and zero_grad); the plain-PyTorch reference step of ``plain_crd_step.py`` (fp32, NCHW,
  no framework). The three are timed in alternating order in one process (ABC CBA ...), so that a busy machine
  slows them alike. Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the peak resident memory
  (VmHWM) of a child process that runs each variant once after a warm-up step.
- ``infer``: ``model.test_step`` at each ``--infer-batch-sizes`` (images/s and latency per image).
- ``data``: the config's train pipeline (rgb PNG + xyz TIFF -> depth) over a synthetic category at
  ``--data-size`` (MVTec 3D-AD: 800x800), with ``--workers`` dataloader workers and the config's batch size;
  compared with the training images/s.
- ``metrics``: ``ADMetric`` (``process`` + ``evaluate``: fused and per-branch I-AUROC, P-AUROC, AU-PRO, AP) over
  ``--metric-maps`` maps of ``--metric-size`` (MVTec 3D-AD: 1,197 at 256x256).

Example:
    python tools/analysis_tools/benchmark.py configs/crd/crd_demo_synthetic.py --iters 5 --out bench.json
    python tools/analysis_tools/benchmark.py configs/crd/crd_mvtec3d_bagel.py --random-teacher --batch-size 2 \\
        --image-size 256 --iters 3 --parts train,infer --plain-weights shared --profile work_dirs/profile
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mmengine.model import BaseModel

TOOL_DIR = Path(__file__).resolve().parent
REPO_ROOT = TOOL_DIR.parents[1]
if str(TOOL_DIR) not in sys.path:
    sys.path.insert(0, str(TOOL_DIR))

from benchmark_aupro import make_maps  # noqa: E402
from plain_crd_step import PlainCRDStep  # noqa: E402
from render_benchmarks import render_markdown  # noqa: E402

PARTS = ('train', 'infer', 'data', 'metrics')
MIB = 1024**2
MEMORY_MARKER = 'BENCHMARK_MEMORY_JSON '
DEFECT_TYPES = ('good', 'color', 'crack', 'hole', 'contamination')
"""Defect types of the generated metric test set (MVTec 3D-AD's bagel: good and four defects)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='CRD config file')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch-size', type=int, help='training batch size (default: the config\'s)')
    parser.add_argument('--image-size', type=int, help='input height and width (default: the config\'s image_size)')
    parser.add_argument('--iters', type=int, default=5, help='timed iterations of every figure (median reported)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed iterations before timing')
    parser.add_argument('--amp', action='store_true',
                        help='autocast the CRD step, its parts and inference (bf16 on CPU, fp16 on CUDA; the step '
                             'with AutocastOptimWrapper as tools/train.py --amp); the plain reference stays fp32')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the teacher and branches (CRD.compile_parts, as tools/train.py --compile)')
    parser.add_argument('--random-teacher', action='store_true',
                        help='random teacher weights: load no weights file and download nothing')
    parser.add_argument('--parts', default=','.join(PARTS), help=f'comma-separated subset of {",".join(PARTS)}')
    parser.add_argument('--plain-weights', choices=('copy', 'shared'), default='copy',
                        help='the plain reference runs on deep copies of the model in NCHW with its own Adam '
                             '(copy), or on the CRD model\'s own modules and optimisers (shared: one copy of a large '
                             'model in memory)')
    parser.add_argument('--memory', action=argparse.BooleanOptionalAction, default=True,
                        help='measure peak memory (CPU: in a child process, which costs one model build)')
    parser.add_argument('--eval-grad-mode', choices=('inference_mode', 'no_grad'), default='inference_mode',
                        help='inference under CRD.test_step (torch.inference_mode), or under torch.no_grad through '
                             'the base test_step (the figure before that optimisation)')
    parser.add_argument('--infer-batch-sizes', default='1,16', help='comma-separated inference batch sizes')
    parser.add_argument('--workers', type=int, help='dataloader workers of the data part (default: the config\'s)')
    parser.add_argument('--data-size', type=int, default=800, help='height and width of the generated source images')
    parser.add_argument('--data-samples', type=int, default=16, help='samples of the generated training set')
    parser.add_argument('--metric-maps', type=int, default=1197, help='maps of the metric test set (MVTec 3D-AD)')
    parser.add_argument('--metric-size', type=int, default=256, help='height and width of the metric maps')
    parser.add_argument('--metric-iters', type=int, default=1, help='timed runs of the metric part')
    parser.add_argument('--seed', type=int, default=0, help='seed of the weights and inputs')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', help='override config settings')
    parser.add_argument('--note', default='', help='free text stored in the JSON (e.g. "2 busy cores")')
    parser.add_argument('--out', type=Path, help='write the results to this JSON file')
    parser.add_argument('--profile', type=Path, metavar='DIR',
                        help='torch.profiler over a few CRD and plain steps: top-ops tables and chrome traces')
    parser.add_argument('--profile-steps', type=int, default=3, help='steps recorded by --profile')
    parser.add_argument('--memory-child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(',') if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        parser.error(f'--parts {args.parts!r}: unknown {unknown}; expected a comma-separated subset of '
                     f'{",".join(PARTS)}.')
    args.parts = [part for part in PARTS if part in parts]
    args.infer_batch_sizes = [int(size) for size in args.infer_batch_sizes.split(',') if size.strip()]
    for name in ('iters', 'batch_size', 'image_size', 'data_samples', 'metric_maps', 'metric_iters'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got {value}.')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch finds no CUDA device here; use --device cpu.')
    return args


# ----------------------------------------------------------------------------------------------------- set-up
def prepare_config(args: argparse.Namespace):
    """The config with ``--cfg-options``, ``--random-teacher``, ``--amp`` and ``--compile`` applied."""
    from mmad.utils.tool_args import load_tool_config

    cfg = load_tool_config(args.config, args.cfg_options)
    if args.random_teacher:
        teacher = cfg.model.teacher
        teacher.pretrained = False
        for key in ('checkpoint', 'checkpoint_sha256', 'weight_converter'):
            teacher.pop(key, None)
    if args.amp:
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    if args.compile:
        cfg.compile = True
    return cfg


def config_branches(cfg) -> tuple[str, ...]:
    """The model's branches: ``model.branches``, or every modality."""
    return tuple(cfg.model.get('branches', None) or cfg.model.modalities)


def train_batch_size(cfg, args: argparse.Namespace) -> int:
    return args.batch_size or int(cfg.train_dataloader.batch_size)


def image_size(cfg, args: argparse.Namespace) -> int:
    return args.image_size or int(cfg.get('image_size', 256))


def random_images(model, batch_size: int, size: int, seed: int, device: str) -> dict[str, torch.Tensor]:
    """Random raw images as a dataloader batch holds them, shape (B, C, size, size).

    rgb has 3 channels in 0-255; the other modalities are in [0, 1] with their declared channel count (1 unless
    the data preprocessor declares another; normals 3).
    """
    generator = torch.Generator().manual_seed(seed)
    declared = getattr(model.data_preprocessor, 'channels', {})
    images = {}
    for name in model.modalities:
        channels = declared.get(name) or (3 if name in ('rgb', 'normals') else 1)
        scale = 255.0 if name == 'rgb' else 1.0
        images[name] = (torch.rand(batch_size, channels, size, size, generator=generator) * scale).to(device)
    return images


def amp_context(args: argparse.Namespace):
    """Autocast (bf16 on CPU, fp16 on CUDA) with ``--amp``, else nothing."""
    if not args.amp:
        return contextlib.nullcontext()
    return torch.autocast(args.device, dtype=torch.bfloat16 if args.device == 'cpu' else torch.float16)


@contextlib.contextmanager
def quiet_mmengine_log():
    """Hide mmengine's INFO messages (the per-parameter init dump, the metric table) while the block runs."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def memory_format_name(model) -> str | None:
    """The model's ``memory_format`` as text (``'contiguous_format'``), None when it has none."""
    memory_format = getattr(model, 'memory_format', None)
    return None if memory_format is None else str(memory_format).removeprefix('torch.')


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


class TrainBench:
    """The CRD model with its optimisers, a random batch, and the three training variants as callables."""

    def __init__(self, cfg, args: argparse.Namespace) -> None:
        from mmengine.optim import build_optim_wrapper

        from mmad.registry import MODELS

        self.args = args
        torch.manual_seed(args.seed)
        self.model = MODELS.build(copy.deepcopy(cfg.model))
        with quiet_mmengine_log():
            self.model.init_weights()
        self.model.to(args.device)
        self.model.train()
        self.optim_wrapper = build_optim_wrapper(self.model, copy.deepcopy(cfg.optim_wrapper))
        if cfg.get('compile'):
            self.model.compile_parts()
        self.batch_size = train_batch_size(cfg, args)
        self.image_size = image_size(cfg, args)
        self.images = random_images(self.model, self.batch_size, self.image_size, args.seed, args.device)
        optimizer = cfg.optim_wrapper.get('optimizer', {})
        self.lr, self.betas = float(optimizer.get('lr', 1e-3)), tuple(optimizer.get('betas', (0.9, 0.999)))
        self._plain: PlainCRDStep | None = None
        self._inputs = self._teacher_feats = None

    @property
    def plain(self) -> PlainCRDStep:
        """The plain reference step, built on first use (``--plain-weights``)."""
        if self._plain is None:
            if self.args.plain_weights == 'copy':
                self._plain = PlainCRDStep.from_crd(self.model, lr=self.lr, betas=self.betas)
            else:
                model = self.model
                self._plain = PlainCRDStep(
                    model.teacher, {name: getattr(model, f'branch_{name}') for name in model.branch_names},
                    model.modalities,
                    {name: (getattr(model.data_preprocessor, f'{name}_mean'),
                            getattr(model.data_preprocessor, f'{name}_std')) for name in model.modalities},
                    lr=self.lr, betas=self.betas, loss_weight=model.distillation_loss.loss_weight,
                    optimizers={name: self.optim_wrapper[name].optimizer for name in model.branch_names})
        return self._plain

    def variants(self) -> dict[str, Callable[[], object]]:
        """Name -> one call of it: ``crd_step``, ``teacher_forward``, ``branch_step.<m>`` ..., ``plain_step``."""
        variants = {'crd_step': self.crd_step, 'teacher_forward': self.teacher_forward}
        for name in self.model.branch_names:
            variants[f'branch_step.{name}'] = lambda name=name: self.branch_step(name)
        variants['plain_step'] = self.plain_step
        return variants

    def crd_step(self) -> object:
        """``model.train_step`` on the batch with the config's optimiser wrappers."""
        with amp_context(self.args):
            return self.model.train_step(dict(inputs=self.images, data_samples=None), self.optim_wrapper)

    def teacher_forward(self) -> object:
        """The teacher encoding every modality once (``extract_teacher_feats``) -> modality -> feature list."""
        with amp_context(self.args):
            return self.model.extract_teacher_feats(self._preprocessed())

    def branch_step(self, name: str) -> None:
        """Branch ``name`` alone on cached teacher features: its losses, backward, its Adam step and zero_grad."""
        if self._teacher_feats is None:
            self._teacher_feats = self.teacher_forward()
        optimizer = self.optim_wrapper[name].optimizer
        with amp_context(self.args):
            loss = sum(self.model.branch_losses(name, self._teacher_feats).values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def plain_step(self) -> object:
        """The plain-PyTorch reference step on the same batch."""
        return self.plain(self.images)

    def _preprocessed(self) -> dict[str, torch.Tensor]:
        if self._inputs is None:
            self._inputs = self.model.data_preprocessor(dict(inputs=self.images, data_samples=None), True)['inputs']
        return self._inputs


# ---------------------------------------------------------------------------------------------------- timing
def time_call(function: Callable[[], object], device: str) -> tuple[float, float]:
    """Wall-clock seconds and this process's CPU seconds (all its threads) of one call."""
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    function()
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def summary(times: dict[str, list[float]], images: int | None = None) -> dict:
    """Median wall seconds (and images/s for ``images`` per call), the fastest call and the median CPU seconds."""
    seconds = statistics.median(times['wall'])
    result = dict(seconds=seconds, min_seconds=min(times['wall']), cpu_seconds=statistics.median(times['cpu']),
                  times=times['wall'])
    if images is not None:
        result['images_per_s'] = images / seconds
    return result


def time_alternating(variants: dict[str, Callable[[], object]], iters: int, warmup: int,
                     device: str) -> dict[str, dict[str, list[float]]]:
    """Time every variant ``iters`` times, in forward order on even and reverse order on odd iterations.

    Returns:
        Variant -> ``dict(wall=[seconds...], cpu=[process CPU seconds...])``.
    """
    for _ in range(warmup):
        for function in variants.values():
            function()
    times = {name: dict(wall=[], cpu=[]) for name in variants}
    for index in range(iters):
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        for name in order:
            wall, cpu = time_call(variants[name], device)
            times[name]['wall'].append(wall)
            times[name]['cpu'].append(cpu)
    return times


def benchmark_train(bench: TrainBench, args: argparse.Namespace, memory: dict[str, dict]) -> dict:
    """Training figures: every variant's median, the CRD / parts and CRD / plain ratios, peak memory."""
    variants = bench.variants()
    times = time_alternating(variants, args.iters, args.warmup, args.device)
    steps = {}
    for name, variant_times in times.items():
        is_step = name in ('crd_step', 'plain_step')
        steps[name] = summary(variant_times, bench.batch_size if is_step else None)
        steps[name].update(memory.get(name, {}))
    parts = steps['teacher_forward']['seconds'] + sum(
        steps[f'branch_step.{name}']['seconds'] for name in bench.model.branch_names)
    parts_cpu = steps['teacher_forward']['cpu_seconds'] + sum(
        steps[f'branch_step.{name}']['cpu_seconds'] for name in bench.model.branch_names)
    crd, plain = steps['crd_step']['seconds'], steps['plain_step']['seconds']
    crd_cpu, plain_cpu = steps['crd_step']['cpu_seconds'], steps['plain_step']['cpu_seconds']
    return dict(batch_size=bench.batch_size, image_size=bench.image_size, steps=steps, parts_seconds=parts,
                crd_over_parts=crd / parts, crd_over_plain=crd / plain, plain_over_crd=plain / crd,
                parts_cpu_seconds=parts_cpu, crd_over_parts_cpu=crd_cpu / parts_cpu,
                crd_over_plain_cpu=crd_cpu / plain_cpu,
                memory_kind=('cuda_max_memory_allocated' if args.device == 'cuda' else 'cpu_peak_rss_of_child')
                if memory else None)


def cuda_memory(bench: TrainBench, args: argparse.Namespace) -> dict[str, dict]:
    """Per variant, after a warm-up call: peak allocated CUDA memory of one call, and its increase over the start."""
    results = {}
    for name, function in bench.variants().items():
        function()
        synchronize('cuda')
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        synchronize('cuda')
        peak = torch.cuda.max_memory_allocated()
        results[name] = dict(peak_memory_mib=peak / MIB, step_memory_mib=(peak - before) / MIB)
    return results


def _proc_status_kib(field: str) -> int | None:
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith(f'{field}:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False where not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')
    except OSError:
        return False
    return _proc_status_kib('VmHWM') is not None


def measure_memory_in_child(cfg, args: argparse.Namespace, names: list[str]) -> dict[str, dict]:
    """In the memory child: peak RSS of one call of each variant after a warm-up call.

    Only the first variant is measured when the peak cannot be reset between variants. The plain variant comes last:
    with its own copies, the CRD model is freed before it runs.
    """
    bench = TrainBench(cfg, args)
    variants = bench.variants()
    results = {}
    for index, name in enumerate(names):
        if name == 'plain_step' and args.plain_weights == 'copy':
            bench.plain  # noqa: B018 (builds the copies before the CRD model is freed)
            bench.model = bench.optim_wrapper = bench._teacher_feats = bench._inputs = None
        variants[name]()
        gc.collect()
        if not _reset_peak_rss() and index > 0:
            break
        before = _proc_status_kib('VmRSS')
        variants[name]()
        peak = _proc_status_kib('VmHWM')
        if peak is None:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results[name] = dict(peak_memory_mib=peak / 1024,
                             step_memory_mib=None if before is None else (peak - before) / 1024)
        if not _reset_peak_rss():
            break
    return results


def cpu_memory(argv: list[str], names: list[str]) -> dict[str, dict]:
    """Peak RSS of each variant, measured in child processes (one, where the peak can be reset between variants)."""
    results: dict[str, dict] = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    while len(results) < len(names):
        remaining = [name for name in names if name not in results]
        command = [sys.executable, str(Path(__file__).resolve()), *argv, '--memory-child', ','.join(remaining)]
        finished = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in finished.stdout.splitlines() if line.startswith(MEMORY_MARKER)]
        if finished.returncode != 0 or not lines:
            killed = (' (SIGKILL, e.g. the out-of-memory killer: free memory or pass --no-memory)'
                      if finished.returncode == -9 else '')
            raise RuntimeError(f'benchmark: the memory child process failed (exit {finished.returncode}){killed}; '
                               f'its output:\n{(finished.stdout + finished.stderr)[-4000:]}')
        measured = json.loads(lines[-1].removeprefix(MEMORY_MARKER))
        if not measured:
            raise RuntimeError(f'benchmark: the memory child measured none of {remaining}.')
        results.update(measured)
    return results


def profile_steps(bench: TrainBench, args: argparse.Namespace) -> dict[str, str]:
    """Record ``--profile-steps`` CRD and plain steps with torch.profiler: top-ops tables and chrome traces."""
    from torch.profiler import ProfilerActivity, profile

    args.profile.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == 'cuda' else [])
    sort_by = 'self_device_time_total' if args.device == 'cuda' else 'self_cpu_time_total'
    files = {}
    for name, function in (('crd_step', bench.crd_step), ('plain_step', bench.plain_step)):
        function()
        with profile(activities=activities) as profiler:
            for _ in range(args.profile_steps):
                function()
                synchronize(args.device)
        table = profiler.key_averages().table(sort_by=sort_by, row_limit=40)
        table_file, trace_file = args.profile / f'{name}_ops.txt', args.profile / f'{name}_trace.json'
        table_file.write_text(f'{name}: {args.profile_steps} steps of {args.config}, batch {bench.batch_size} at '
                              f'{bench.image_size}x{bench.image_size}, {args.device}\n{table}\n')
        profiler.export_chrome_trace(str(trace_file))
        files[name] = dict(ops=str(table_file), trace=str(trace_file))
    return files


# ------------------------------------------------------------------------------------------------- inference
def benchmark_infer(bench: TrainBench, args: argparse.Namespace) -> dict:
    """``test_step`` images/s and latency per image at each inference batch size (the aggregator fitted first)."""
    model = bench.model
    model.eval()
    if not model.aggregator.is_fitted:
        sample = random_images(model, 2, bench.image_size, args.seed + 1, args.device)
        model.aggregator.reset()
        model.aggregator.update(model.raw_branch_maps(model.data_preprocessor(dict(inputs=sample), False)['inputs']))
        model.aggregator.finalize()
    results = {}
    for batch_size in args.infer_batch_sizes:
        images = random_images(model, batch_size, bench.image_size, args.seed + 2, args.device)

        def predict(images=images):
            data = dict(inputs=images, data_samples=None)
            with amp_context(args):
                if args.eval_grad_mode == 'no_grad':
                    with torch.no_grad():
                        return BaseModel.test_step(model, data)
                return model.test_step(data)

        times = time_alternating({'predict': predict}, args.iters, args.warmup, args.device)['predict']
        result = summary(times, batch_size)
        result.update(batch_size=batch_size, seconds_per_batch=result.pop('seconds'),
                      latency_ms_per_image=1000 * statistics.median(times['wall']) / batch_size)
        results[f'batch_{batch_size}'] = result
    model.train()
    return results


# ------------------------------------------------------------------------------------------------------ data
def benchmark_data(cfg, args: argparse.Namespace, train_images_per_s: float | None) -> dict:
    """Samples/s of the config's train pipeline over a generated category at ``--data-size``."""
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    from mmad.datasets.synthetic import make_synthetic_mvtec3d
    from mmad.registry import DATASETS

    workers = args.workers if args.workers is not None else int(cfg.train_dataloader.get('num_workers', 0))
    batch_size = int(cfg.train_dataloader.batch_size)
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    category = dataset_cfg.get('category', 'synthetic')
    with tempfile.TemporaryDirectory(prefix='mmad_benchmark_data_') as root:
        start = time.perf_counter()
        make_synthetic_mvtec3d(root, category, height=args.data_size, width=args.data_size,
                               num_train=args.data_samples, num_val=0, num_test_per_defect=0, defect_types=(),
                               seed=args.seed)
        generated = time.perf_counter() - start
        dataset_cfg.update(data_root=root, category=category)
        dataset = DATASETS.build(dataset_cfg)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=pseudo_collate,
                            persistent_workers=workers > 0)

        times = time_alternating({'pass': lambda: sum(1 for _ in loader)}, args.iters, args.warmup,
                                 'cpu')['pass']['wall']
    seconds = statistics.median(times)
    samples_per_s = len(dataset) / seconds
    return dict(samples=len(dataset), source_size=args.data_size, workers=workers, batch_size=batch_size,
                seconds_per_pass=seconds, times=times, samples_per_s=samples_per_s, generation_seconds=generated,
                train_images_per_s=train_images_per_s,
                data_over_train=None if not train_images_per_s else samples_per_s / train_images_per_s,
                bottleneck=None if not train_images_per_s else samples_per_s < train_images_per_s)


# --------------------------------------------------------------------------------------------------- metrics
def metric_samples(num: int, size: int, branches: tuple[str, ...], seed: int) -> list[dict]:
    """Predicted samples as ``ADDataSample.to_dict()`` gives them: fused and per-branch maps and scores, masks."""
    maps, masks = make_maps(num, size, seed)
    rng = np.random.default_rng(seed + 1)
    samples = []
    for index in range(num):
        anomalous = masks[index].any()
        defect_type = DEFECT_TYPES[1 + index % (len(DEFECT_TYPES) - 1)] if anomalous else DEFECT_TYPES[0]
        branch_maps = {name: torch.from_numpy(maps[index] + rng.normal(0, 0.1, maps[index].shape).astype(np.float32))
                       for name in branches}
        samples.append(dict(
            img_path=f'{defect_type}/{index:04d}.png', defect_type=defect_type, gt_mask=torch.from_numpy(masks[index]),
            anomaly_map=torch.from_numpy(maps[index]), pred_score=torch.tensor(float(maps[index].max())),
            branch_maps=branch_maps,
            branch_scores={name: branch_map.max() for name, branch_map in branch_maps.items()}))
    return samples


def benchmark_metrics(args: argparse.Namespace, branches: tuple[str, ...]) -> dict:
    """Seconds of ``ADMetric.process`` (batches of 16) and ``evaluate`` over the generated test set."""
    from mmad.evaluation.metrics import ADMetric

    samples = metric_samples(args.metric_maps, args.metric_size, branches, args.seed)
    process_times, compute_times = [], []
    for _ in range(args.metric_iters):
        metric = ADMetric(integration_limits=(0.3, ))
        start = time.perf_counter()
        for first in range(0, len(samples), 16):
            metric.process(None, samples[first:first + 16])
        processed = time.perf_counter()
        with quiet_mmengine_log():
            values = metric.evaluate(len(samples))
        compute_times.append(time.perf_counter() - processed)
        process_times.append(processed - start)
    totals = [process + compute for process, compute in zip(process_times, compute_times)]
    return dict(maps=len(samples), map_size=args.metric_size, sources=['fused', *branches],
                metrics_computed=len(values), process_seconds=statistics.median(process_times),
                compute_seconds=statistics.median(compute_times), seconds=statistics.median(totals), times=totals)


# ------------------------------------------------------------------------------------------------------ main
def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine type elsewhere)."""
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_meta(cfg, args: argparse.Namespace, bench: TrainBench | None) -> dict:
    try:
        revision = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO_ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = None
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else f'{cpu_model_name()} ({os.cpu_count()} cores)')
    return dict(config=os.path.relpath(args.config, REPO_ROOT) if Path(args.config).is_absolute() else args.config,
                device=args.device, device_name=device_name, torch=torch.__version__,
                threads=torch.get_num_threads(), batch_size=train_batch_size(cfg, args),
                image_size=image_size(cfg, args), iters=args.iters, warmup=args.warmup, amp=args.amp,
                compile=bool(cfg.get('compile')), random_teacher=args.random_teacher, parts=args.parts,
                eval_grad_mode=args.eval_grad_mode,
                plain_weights=args.plain_weights, cfg_options=args.cfg_options or [],
                memory_format=None if bench is None else memory_format_name(bench.model),
                note=args.note, git_revision=revision,
                time_utc=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the results (also printed as tables and written to ``--out``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cfg = prepare_config(args)
    if args.memory_child:
        results = measure_memory_in_child(cfg, args, args.memory_child.split(','))
        print(MEMORY_MARKER + json.dumps(results), flush=True)
        return results
    results: dict = {}
    memory: dict[str, dict] = {}
    if 'train' in args.parts and args.memory and args.device == 'cpu':
        # Before the parent builds its model: the child and the parent never hold a large model at once.
        names = ['crd_step', 'teacher_forward', *[f'branch_step.{name}' for name in config_branches(cfg)],
                 'plain_step']
        memory = cpu_memory(argv, names)
    bench = TrainBench(cfg, args) if {'train', 'infer'} & set(args.parts) else None
    if 'train' in args.parts:
        if args.memory and args.device == 'cuda':
            memory = cuda_memory(bench, args)
        results['train'] = benchmark_train(bench, args, memory)
        if args.profile is not None:
            results['train']['profile'] = profile_steps(bench, args)
    if 'infer' in args.parts:
        results['infer'] = benchmark_infer(bench, args)
    if 'data' in args.parts:
        train_images_per_s = results.get('train', {}).get('steps', {}).get('crd_step', {}).get('images_per_s')
        results['data'] = benchmark_data(cfg, args, train_images_per_s)
    if 'metrics' in args.parts:
        results['metrics'] = benchmark_metrics(args, config_branches(cfg))
    results = dict(schema='mmad-benchmark/1', meta=run_meta(cfg, args, bench), **results)
    print(render_markdown([results], [Path(args.config).stem]), end='')
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + '\n')
        print(f'benchmark: results written to {args.out}')
    return results


if __name__ == '__main__':
    main()
