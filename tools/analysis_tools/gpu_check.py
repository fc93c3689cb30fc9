"""One prepared GPU check: train, test and benchmark the paper config on synthetic data; results as JSON.

``python tools/analysis_tools/gpu_check.py OUT_DIR [--device cuda|cpu] [--tiny] [--work-root DIR] [--budget S]``,
from the repository root. On the GPU machine (no network, no mmengine/mmcv) run it through
``bash tools/analysis_tools/gpu_check.sh OUT_DIR``, which first installs the wheels that
``tools/analysis_tools/fetch_gpu_wheels.sh`` downloaded into ``.whl/`` (``--list-wheels`` prints them).

Steps, each a subprocess with its own timeout, all inside ``--budget`` seconds; a failed, timed-out or skipped step
is recorded and the rest still run:

1. ``data``: a synthetic MVTec 3D-AD category in the real layout (rgb PNG, xyz TIFF in metres, gt PNG) at the real
   800x800 size, written by mmad's generator (tools/misc/make_synthetic_mvtec3d.py, one process per split).
2. ``train_fp32``, ``train_amp``: tools/train.py (``--amp`` for the second) on the paper config
   (configs/crd/crd_mvtec3d_bagel.py: WRN50 teacher with random weights, 256x256, batch 16) with one iteration per
   epoch; images/second and peak memory come from the training log.
3. ``test``: tools/test.py on the fp32 checkpoint (the AMP one when fp32 training failed).
4. ``bench_fp32``, ``bench_amp``: tools/analysis_tools/benchmark.py, the CRD step next to the plain-PyTorch
   reference step.

OUT_DIR receives gpu_check.json (environment, each step's command, status and seconds, the training figures),
bench_fp32.json, bench_amp.json, test_metrics.json and log.txt (each step's output); gpu_check.json is rewritten
after every step, so a run stopped from outside still leaves the steps done so far. ``--render OUT_DIR`` prints
those results as the markdown of the GPU section of docs/benchmarks.md. ``--tiny`` runs the same flow in seconds
with the random-teacher demo config, small images and two iterations (for the CPU test).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Distribution -> version of the wheels carried to the GPU machine: mmengine, mmcv-lite and the requirements of
# theirs that the machine's image lacks (platformdirs: yapf's). Every one is pure Python (py3-none-any).
GPU_WHEELS = {
    'mmengine': '0.10.7',
    'mmcv-lite': '2.2.0',
    'addict': '2.4.0',
    'yapf': '0.43.0',
    'platformdirs': '4.14.9',
    'termcolor': '3.3.0',
}
STEP_NAMES = ('data', 'train_fp32', 'train_amp', 'test', 'bench_fp32', 'bench_amp')
OUTPUT_TAIL_LINES = 15


@dataclass(frozen=True)
class CheckSettings:
    """What one mode of the check runs.

    Attributes:
        config: The config trained, tested and benchmarked.
        category: The synthetic category's name (the config's category).
        data_size: Height and width H = W of the generated images.
        batch_size: Training batch size; the training split holds exactly one batch.
        iterations: Training iterations (one per epoch); the first is warm-up and not timed.
        num_val: Samples in validation/good (the map statistics).
        num_test_per_defect: Samples in test/good and in each defect folder.
        bench_batch_size: benchmark.py ``--batch-size``.
        bench_iters: benchmark.py ``--iters``.
        bench_warmup: benchmark.py ``--warmup``.
        bench_options: More benchmark.py options (``--parts``, ``--image-size``, ...).
        timeouts: Step name -> seconds.
    """

    config: str
    category: str
    data_size: int
    batch_size: int
    iterations: int
    num_val: int
    num_test_per_defect: int
    bench_batch_size: int
    bench_iters: int
    bench_warmup: int
    bench_options: tuple[str, ...]
    timeouts: dict[str, int] = field(default_factory=dict)


# The paper's settings on one GPU, sized to end within 6 minutes with the wheel installation (about 10 s). The data
# step's CPU time measured on a 2-core CPU: 0.8 s per 800x800 training image, 1.5 s per test image (with its mask).
PAPER_SETTINGS = CheckSettings(
    config='configs/crd/crd_mvtec3d_bagel.py', category='bagel', data_size=800, batch_size=16, iterations=4,
    num_val=8, num_test_per_defect=3, bench_batch_size=16, bench_iters=10, bench_warmup=3,
    bench_options=('--parts', 'train,infer'),
    timeouts=dict(data=60, train_fp32=70, train_amp=55, test=40, bench_fp32=50, bench_amp=50))
# The same flow in seconds on a CPU: random resnet18 teacher, 64x64 data, two iterations of batch 4; the benchmark
# times the training step only, at 64x64, without its peak-memory child process.
TINY_SETTINGS = CheckSettings(
    config='configs/crd/crd_demo_synthetic_random_teacher.py', category='synthetic', data_size=64, batch_size=4,
    iterations=2, num_val=4, num_test_per_defect=2, bench_batch_size=2, bench_iters=2, bench_warmup=1,
    bench_options=('--parts', 'train', '--image-size', '64', '--no-memory'),
    timeouts=dict(data=60, train_fp32=120, train_amp=120, test=120, bench_fp32=120, bench_amp=120))


@dataclass
class StepResult:
    """The record of one step in gpu_check.json.

    Attributes:
        status: 'ok', 'failed' (non-zero exit or missing output), 'timeout' or 'skipped'.
        seconds: Wall time of the step.
        commands: The commands run, shell-quoted (several run at once for ``data``).
        returncodes: Their exit codes; None for a command killed at the timeout.
        reason: Why the step is not 'ok': the last lines of its output, or what it was missing.
    """

    status: str
    seconds: float = 0.0
    commands: list[str] = field(default_factory=list)
    returncodes: list[int | None] = field(default_factory=list)
    reason: str | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', type=Path, help='folder for gpu_check.json, the benchmark JSONs, '
                        'test_metrics.json and log.txt')
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda',
                        help='cpu hides every GPU from the steps (CUDA_VISIBLE_DEVICES is emptied)')
    parser.add_argument('--tiny', action='store_true',
                        help='random-teacher demo config, 64x64 data, 2 iterations of batch 4 (CPU test)')
    parser.add_argument('--work-root', type=Path,
                        help='empty or new folder for the data, work dirs and checkpoints, kept afterwards '
                        '(default: a temporary folder, deleted at the end)')
    parser.add_argument('--budget', type=float, default=330.0,
                        help='seconds for all steps together; a step gets the smaller of its timeout and what is '
                        'left')
    parser.add_argument('--python', default=sys.executable, help='interpreter of the steps')
    parser.add_argument('--list-wheels', action='store_true',
                        help='print the NAME==VERSION of the wheels gpu_check.sh installs, one a line, and stop')
    parser.add_argument('--render', type=Path, metavar='OUT_DIR',
                        help='print the markdown of the results in OUT_DIR and stop')
    args = parser.parse_args(argv)
    if args.out_dir is None and not args.list_wheels and args.render is None:
        parser.error('OUT_DIR is required (or --list-wheels / --render OUT_DIR)')
    return args


def describe_environment(device: str) -> dict:
    """Versions and the accelerator the steps will use; an entry that cannot be read holds the error."""
    import importlib.metadata

    environment = dict(python=platform.python_version(), platform=platform.platform(), cpu_count=os.cpu_count(),
                       requested_device=device)
    for distribution in ('torch', 'mmengine', 'mmcv-lite', 'mmcv', 'timm', 'numpy', 'opencv-python-headless'):
        try:
            environment[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            environment[distribution] = None
    try:
        import mmengine

        environment['mmengine_path'] = str(Path(mmengine.__file__).parent)
    except ImportError as error:
        environment['mmengine_path'] = f'not importable: {error}'
    try:
        import torch

        environment['torch_cuda'] = torch.version.cuda
        environment['cuda_available'] = torch.cuda.is_available()
        if device == 'cuda' and torch.cuda.is_available():
            properties = torch.cuda.get_device_properties(0)
            environment.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                               gpu_capability=f'{properties.major}.{properties.minor}',
                               cudnn=torch.backends.cudnn.version())
    except Exception as error:  # noqa: BLE001 - recorded: the steps then fail with their own messages
        environment['torch_error'] = f'{type(error).__name__}: {error}'
    return environment


def run_commands(commands: list[list[str]], timeout: float, log_path: Path, env: dict) -> StepResult:
    """Run ``commands`` at once, each in its own process group, and wait for all of them.

    Output goes to ``log_path`` (a file, not a pipe, so that data-loader workers cannot hold the step open). At the
    timeout every group still running is sent SIGTERM, then SIGKILL 5 s later; what a finished command left running
    in its group is killed.

    Returns:
        The step's record; ``reason`` holds the last lines of the output when a command failed or timed out.
    """
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        processes = [subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True) for command in commands]
        deadline = start + timeout
        timed_out = False
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.perf_counter(), 0.0))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
        for process in processes:
            if process.poll() is None:
                _stop_group(process)
            else:
                _kill_leftovers(process)
    returncodes = [None if timed_out and process.returncode < 0 else process.returncode for process in processes]
    status = 'timeout' if timed_out else ('ok' if all(code == 0 for code in returncodes) else 'failed')
    tail = None
    if status != 'ok':
        lines = log_path.read_text(errors='replace').splitlines()
        limit = f'stopped after {timeout:.0f} s; ' if timed_out else ''
        tail = limit + '\n'.join(lines[-OUTPUT_TAIL_LINES:])
    return StepResult(status=status, seconds=round(time.perf_counter() - start, 2),
                      commands=[shlex.join(command) for command in commands], returncodes=returncodes, reason=tail)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group that ``process`` leads, SIGKILL if it is still there 5 s later."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_leftovers(process: subprocess.Popen) -> None:
    """SIGKILL what is left of the process group of ``process``, which has exited."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def data_commands(python: str, settings: CheckSettings, data_root: Path) -> list[list[str]]:
    """One generator process per split (train, validation, test), together the whole category."""
    base = [python, 'tools/misc/make_synthetic_mvtec3d.py', str(data_root), '--category', settings.category,
            '--height', str(settings.data_size), '--width', str(settings.data_size)]
    splits = ((settings.batch_size, 0, 0), (0, settings.num_val, 0), (0, 0, settings.num_test_per_defect))
    return [base + ['--num-train', str(train), '--num-val', str(val), '--num-test-per-defect', str(test)]
            for train, val, test in splits]


def train_command(python: str, settings: CheckSettings, data_root: Path, work_dir: Path, amp: bool) -> list[str]:
    """tools/train.py: one iteration per epoch, a log line (window 1) per iteration, one checkpoint at the end.

    The checkpoint leaves out the optimiser states (Adam's two moments per student weight, most of its size): only
    the test reads it.
    """
    command = [python, 'tools/train.py', settings.config, '--work-dir', str(work_dir), '--data-root', str(data_root),
               '--category', settings.category, '--cfg-options', 'model.teacher.pretrained=False',
               f'train_cfg.max_epochs={settings.iterations}', f'train_dataloader.batch_size={settings.batch_size}',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               f'default_hooks.checkpoint.interval={settings.iterations}',
               'default_hooks.checkpoint.save_optimizer=False']
    return command + ['--amp'] if amp else command


def test_command(python: str, settings: CheckSettings, data_root: Path, checkpoint: Path,
                 work_dir: Path) -> list[str]:
    return [python, 'tools/test.py', settings.config, str(checkpoint), '--work-dir', str(work_dir), '--data-root',
            str(data_root), '--category', settings.category, '--cfg-options', 'model.teacher.pretrained=False']


def bench_command(python: str, settings: CheckSettings, device: str, out_file: Path, amp: bool) -> list[str]:
    command = [python, 'tools/analysis_tools/benchmark.py', settings.config, '--device', device, '--random-teacher',
               '--batch-size', str(settings.bench_batch_size), '--iters', str(settings.bench_iters), '--warmup',
               str(settings.bench_warmup), *settings.bench_options, '--out', str(out_file)]
    return command + ['--amp'] if amp else command


def last_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint named by mmengine's ``last_checkpoint`` file in ``work_dir``, if it exists."""
    pointer = work_dir / 'last_checkpoint'
    if not pointer.is_file():
        return None
    checkpoint = Path(pointer.read_text().strip())
    return checkpoint if checkpoint.is_file() else None


def training_figures(work_dir: Path, batch_size: int) -> dict:
    """Per-iteration figures of a training run, read from its ``vis_data/scalars.json`` (log window 1).

    The first iteration is warm-up (allocator, cuDNN, worker start) and is left out of the medians when there are
    more.

    Returns:
        ``iterations``, ``timed_iterations``, ``step_seconds`` and ``data_seconds`` (medians; the step includes
        the wait for data), ``images_per_second`` (batch / step), ``compute_images_per_second`` (batch / (step -
        data)), ``peak_memory_mib`` (mmengine's max allocated CUDA memory; None without CUDA) and ``losses``.

    Raises:
        FileNotFoundError: No scalars.json under ``work_dir``.
        ValueError: The log holds no training iteration.
    """
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not logs:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}')
    records = [json.loads(line) for line in logs[-1].read_text().splitlines() if line.strip()]
    iterations = [record for record in records if 'loss' in record and 'time' in record]
    if not iterations:
        raise ValueError(f'{logs[-1]} holds no training iteration (no record with loss and time)')
    timed = iterations[1:] or iterations
    step = statistics.median(record['time'] for record in timed)
    data = statistics.median(record['data_time'] for record in timed)
    memory = [record['memory'] for record in iterations if 'memory' in record]
    return dict(iterations=len(iterations), timed_iterations=len(timed), batch_size=batch_size,
                step_seconds=round(step, 4), data_seconds=round(data, 4),
                images_per_second=round(batch_size / step, 2),
                compute_images_per_second=round(batch_size / (step - data), 2) if step > data else None,
                peak_memory_mib=max(memory) if memory else None,
                losses=[round(record['loss'], 6) for record in iterations])


class GpuCheck:
    """Runs the steps in order within a time budget and keeps gpu_check.json up to date after each one."""

    def __init__(self, args: argparse.Namespace, settings: CheckSettings):
        self.args = args
        self.settings = settings
        self.out_dir = args.out_dir.resolve()
        self.keep_work = args.work_root is not None
        self.work_root = (args.work_root or Path(tempfile.mkdtemp(prefix='mmad_gpu_check_'))).resolve()
        self.data_root = self.work_root / 'data'
        self.deadline = time.perf_counter() + args.budget
        self.env = dict(os.environ, PYTHONUNBUFFERED='1')
        if args.device == 'cpu':
            self.env['CUDA_VISIBLE_DEVICES'] = ''
        self.report = dict(
            started=datetime.now(timezone.utc).isoformat(timespec='seconds'), mode='tiny' if args.tiny else 'paper',
            device=args.device, settings=asdict(settings), budget_seconds=args.budget,
            environment=describe_environment(args.device), steps={}, training={}, test=None, benchmarks={})

    def run(self) -> dict:
        """All the steps; returns the report also written to OUT_DIR/gpu_check.json."""
        start = time.perf_counter()
        if self.work_root.exists() and any(self.work_root.iterdir()):
            raise SystemExit(f'gpu_check.py: error: --work-root {self.work_root} is not empty; give a new or '
                             'empty folder')
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in ('bench_fp32.json', 'bench_amp.json', 'test_metrics.json', 'log.txt'):
            (self.out_dir / stale).unlink(missing_ok=True)
        self.write_report()
        python, settings = self.args.python, self.settings
        self.step('data', data_commands(python, settings, self.data_root))
        for precision in ('fp32', 'amp'):
            name = f'train_{precision}'
            if self.needs(name, 'data'):
                work_dir = self.work_root / name
                if self.step(name, [train_command(python, settings, self.data_root, work_dir, precision == 'amp')]):
                    self.record_training(precision, work_dir)
        self.run_test()
        for precision in ('fp32', 'amp'):
            self.run_benchmark(precision)
        self.report['total_seconds'] = round(time.perf_counter() - start, 2)
        self.report['failed_steps'] = [name for name, step in self.report['steps'].items() if step['status'] != 'ok']
        self.write_report()
        if not self.keep_work:
            shutil.rmtree(self.work_root)
        return self.report

    def needs(self, name: str, *required: str) -> bool:
        """False, with ``name`` recorded as skipped, when a required step is not 'ok'."""
        missing = [step for step in required if self.report['steps'].get(step, {}).get('status') != 'ok']
        if missing:
            self.record(name, StepResult(status='skipped', reason=f'needs step {" and ".join(missing)}, which is '
                                         'not ok'))
        return not missing

    def step(self, name: str, commands: list[list[str]]) -> bool:
        """Run one step's commands within its timeout and what is left of the budget; True when it is 'ok'."""
        timeout = min(self.settings.timeouts[name], self.deadline - time.perf_counter())
        if timeout < 1:
            self.record(name, StepResult(status='skipped', reason=f'the budget of {self.args.budget:g} s was '
                                         'spent'))
            return False
        step_log = self.work_root / f'{name}.log'
        result = run_commands(commands, timeout, step_log, self.env)
        with open(self.out_dir / 'log.txt', 'a') as log:
            log.write(f'===== {name}: {result.status} in {result.seconds} s\n')
            log.writelines(f'$ {command}\n' for command in result.commands)
            log.write(step_log.read_text(errors='replace'))
        self.record(name, result)
        print(f'gpu_check: {name} {result.status} in {result.seconds} s', flush=True)
        return result.status == 'ok'

    def record(self, name: str, result: StepResult) -> None:
        """Store a step's record and rewrite gpu_check.json."""
        self.report['steps'][name] = asdict(result)
        self.write_report()

    def fail(self, name: str, reason: str) -> None:
        """Turn an 'ok' step whose output is unusable into 'failed'."""
        self.report['steps'][name].update(status='failed', reason=reason)
        self.write_report()

    def record_training(self, precision: str, work_dir: Path) -> None:
        """Read the training figures of ``work_dir``; the step becomes 'failed' when its log is unreadable."""
        try:
            figures = training_figures(work_dir, self.settings.batch_size)
        except (OSError, ValueError, KeyError) as error:
            self.fail(f'train_{precision}', f'unreadable training log: {error}')
            return
        figures['checkpoint'] = str(last_checkpoint(work_dir))
        self.report['training'][precision] = figures
        self.write_report()

    def run_test(self) -> None:
        """tools/test.py on the fp32 checkpoint, or the AMP one when fp32 training failed."""
        trained = [precision for precision in ('fp32', 'amp') if precision in self.report['training']]
        checkpoint = next((last_checkpoint(self.work_root / f'train_{precision}') for precision in trained), None)
        if checkpoint is None:
            self.record('test', StepResult(status='skipped', reason='no training step left a checkpoint'))
            return
        work_dir = self.work_root / 'test'
        if not self.step('test', [test_command(self.args.python, self.settings, self.data_root, checkpoint,
                                               work_dir)]):
            return
        metrics_file = work_dir / 'metrics.json'
        if not metrics_file.is_file():
            self.fail('test', f'tools/test.py wrote no {metrics_file}')
            return
        (self.out_dir / 'test_metrics.json').write_bytes(metrics_file.read_bytes())
        self.report['test'] = dict(checkpoint=str(checkpoint), trained_with=trained[0], metrics='test_metrics.json')
        self.write_report()

    def run_benchmark(self, precision: str) -> None:
        """benchmark.py into OUT_DIR/bench_{precision}.json; skipped when this checkout has no benchmark.py."""
        name = f'bench_{precision}'
        if not (REPO_ROOT / 'tools/analysis_tools/benchmark.py').is_file():
            self.record(name, StepResult(status='skipped', reason='tools/analysis_tools/benchmark.py is not in '
                                         'this checkout'))
            return
        out_file = self.out_dir / f'{name}.json'
        command = bench_command(self.args.python, self.settings, self.args.device, out_file, precision == 'amp')
        if not self.step(name, [command]):
            return
        if not out_file.is_file():
            self.fail(name, f'benchmark.py wrote no {out_file.name}')
            return
        self.report['benchmarks'][precision] = out_file.name
        self.write_report()

    def write_report(self) -> None:
        """Write gpu_check.json atomically (a temporary file, then a rename)."""
        path = self.out_dir / 'gpu_check.json'
        temporary = path.with_suffix('.json.tmp')
        temporary.write_text(json.dumps(self.report, indent=2) + '\n')
        temporary.replace(path)


def render_markdown(out_dir: Path) -> str:
    """The GPU section's markdown for the results in ``out_dir``: environment, steps, training and test figures.

    The benchmark JSONs (bench_fp32.json, bench_amp.json) follow as the tables of
    tools/analysis_tools/render_benchmarks.py, one column each.

    Raises:
        FileNotFoundError: ``out_dir`` holds no gpu_check.json.
    """
    report = json.loads((out_dir / 'gpu_check.json').read_text())
    environment = report['environment']
    accelerator = environment.get('gpu') or 'no GPU'
    lines = [f'Run {report["started"]} ({report["mode"]} settings, device {report["device"]}): {accelerator}, '
             f'torch {environment.get("torch")} (CUDA {environment.get("torch_cuda")}), mmengine '
             f'{environment.get("mmengine")}, Python {environment.get("python")}; '
             f'{report.get("total_seconds", "?")} s in all.', '',
             '| step | status | seconds |', '| --- | --- | --- |']
    lines += [f'| {name} | {step["status"]} | {step["seconds"]} |' for name, step in report['steps'].items()]
    settings = report['settings']
    lines += ['', f'Training with tools/train.py ({settings["config"]}, random teacher, batch '
              f'{settings["batch_size"]}, {settings["iterations"]} iterations, the first not timed):', '',
              '| precision | images/s | images/s without data wait | step s | data s | peak memory MiB | losses |',
              '| --- | --- | --- | --- | --- | --- | --- |']
    for precision, figures in report['training'].items():
        losses = ', '.join(f'{loss:.4g}' for loss in figures['losses'])
        lines.append(f'| {precision} | {figures["images_per_second"]} | {figures["compute_images_per_second"]} | '
                     f'{figures["step_seconds"]} | {figures["data_seconds"]} | {figures["peak_memory_mib"] or "-"} | '
                     f'{losses} |')
    if report.get('test'):
        metrics = json.loads((out_dir / report['test']['metrics']).read_text())
        headline = {key: value for key, value in _flatten(metrics).items() if isinstance(value, (int, float))}
        shown = ', '.join(f'{key} {value:.4f}' for key, value in list(headline.items())[:6])
        lines += ['', f'tools/test.py on the {report["test"]["trained_with"]} checkpoint: {shown} (random teacher '
                  'and synthetic data: these check the pipeline, not the detection quality).']
    failed = {name: step['reason'] for name, step in report['steps'].items() if step['status'] != 'ok'}
    for name, reason in failed.items():
        last_line = (reason or '').strip().splitlines()[-1:] or ['']
        lines.append(f'\n{name}: {report["steps"][name]["status"]}: {last_line[0]}')
    markdown = '\n'.join(lines) + '\n'
    if report['benchmarks']:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import render_benchmarks

        results = [json.loads((out_dir / name).read_text()) for name in report['benchmarks'].values()]
        markdown += '\nbenchmark.py:\n\n' + render_benchmarks.render_markdown(results, list(report['benchmarks']))
    return markdown


def _flatten(tree: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}/'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_wheels:
        print('\n'.join(f'{name}=={version}' for name, version in GPU_WHEELS.items()))
        return 0
    if args.render is not None:
        print(render_markdown(args.render), end='')
        return 0
    report = GpuCheck(args, TINY_SETTINGS if args.tiny else PAPER_SETTINGS).run()
    print(f'gpu_check: {report["total_seconds"]} s; steps: '
          + ', '.join(f'{name} {step["status"]}' for name, step in report['steps'].items())
          + f'; results in {args.out_dir}')
    return 1 if report['failed_steps'] else 0


if __name__ == '__main__':
    sys.exit(main())
