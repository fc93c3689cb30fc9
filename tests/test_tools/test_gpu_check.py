"""tools/analysis_tools/gpu_check.{sh,py} and fetch_gpu_wheels.sh: the carried wheels, the step runner, the CPU run."""
from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from process_helpers import REPO, TOOLS, load_tool, run, tool_env

from mmad.datasets.synthetic import make_synthetic_mvtec3d

tomllib = pytest.importorskip('tomllib')
gpu_check = load_tool('analysis_tools/gpu_check.py')

# The Python distributions of the GPU machine's image ('cuda'), as the workplace's device notes list them (read on
# the machine on 2026-11-17). The check installs everything else that mmad, mmengine and mmcv-lite need from wheels.
DEVICE_DISTRIBUTIONS = frozenset(canonicalize_name(name) for name in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split())
# Required by name, met on the machine by another distribution that installs the same module.
MET_BY_DEVICE = {'opencv-python': 'opencv-python-headless'}
# Required by mmad's pyproject.toml but imported by nothing the check runs (test_check_imports_are_met asserts it).
NOT_CARRIED = {'open3d': 'point-cloud extras; a 400 MB binary wheel'}
# The GPU machine: Python 3.12 on x86-64 Linux.
DEVICE_MARKERS = dict(default_environment(), python_version='3.12', python_full_version='3.12.3',
                      sys_platform='linux', platform_system='Linux', platform_machine='x86_64', extra='')
# The local modules of the scripts the check runs (tools/analysis_tools is on their sys.path).
TOOL_MODULES = {'benchmark_aupro', 'plain_crd_step', 'render_benchmarks'}


def required_distributions() -> dict[str, list[tuple[Requirement, str]]]:
    """The distributions the GPU machine lacks that mmad (pyproject.toml) and mmcv-lite need, transitively.

    Returns:
        Canonical name -> (requirement, who requires it) pairs. The requirements of a carried distribution are
        read from the one installed here (its wheel's metadata), those of the machine's own are not followed.
    """
    project = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']
    queue = deque((Requirement(text), 'mmad') for text in project['dependencies'])
    queue.append((Requirement(f'mmcv-lite=={gpu_check.GPU_WHEELS["mmcv-lite"]}'), 'tools/setup_env.sh'))
    needed: dict[str, list[tuple[Requirement, str]]] = {}
    while queue:
        requirement, parent = queue.popleft()
        if requirement.marker is not None and not requirement.marker.evaluate(DEVICE_MARKERS):
            continue
        name = canonicalize_name(requirement.name)
        if name in DEVICE_DISTRIBUTIONS or name in MET_BY_DEVICE or name in NOT_CARRIED:
            continue
        if name not in needed:
            queue.extend((Requirement(text), name) for text in importlib.metadata.requires(name) or [])
        needed.setdefault(name, []).append((requirement, parent))
    return needed


def test_wheels_cover_what_the_machine_lacks():
    needed = required_distributions()
    carried = {canonicalize_name(name): version for name, version in gpu_check.GPU_WHEELS.items()}
    assert set(needed) == set(carried), (
        f'GPU_WHEELS of gpu_check.py carries {sorted(carried)}; the GPU machine lacks {sorted(needed)}')
    for name, requirements in needed.items():
        for requirement, parent in requirements:
            assert requirement.specifier.contains(carried[name], prereleases=True), (
                f'{parent} requires {requirement}; GPU_WHEELS pins {name}=={carried[name]}')
    assert carried['mmengine'] == '0.10.7' and carried['mmcv-lite'] == '2.2.0'
    assert set(MET_BY_DEVICE.values()) <= DEVICE_DISTRIBUTIONS


def imported_top_level_modules(path: Path) -> set[str]:
    """Absolute imports of ``path`` (any depth of the file), as top-level module names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    return names


def test_check_imports_are_met():
    """Every module that mmad and the scripts of the check import comes from the machine or from a carried wheel."""
    scripts = [*sorted((REPO / 'mmad').rglob('*.py')), TOOLS / 'train.py', TOOLS / 'test.py',
               TOOLS / 'misc/make_synthetic_mvtec3d.py',
               *(TOOLS / 'analysis_tools' / f'{name}.py' for name in (*TOOL_MODULES, 'benchmark', 'gpu_check'))]
    modules = set().union(*(imported_top_level_modules(path) for path in scripts if path.is_file()))
    modules -= set(sys.stdlib_module_names) | TOOL_MODULES | {'mmad'}
    providers = importlib.metadata.packages_distributions()
    available = DEVICE_DISTRIBUTIONS | {canonicalize_name(name) for name in gpu_check.GPU_WHEELS}
    unmet = {module: providers.get(module) for module in sorted(modules)
             if not any(canonicalize_name(dist) in available for dist in providers.get(module, []))}
    assert not unmet, f'imported by mmad or the check, neither on the GPU machine nor carried: {unmet}'
    assert not any(canonicalize_name(dist) in NOT_CARRIED for module in modules for dist in providers.get(module, []))


def test_list_wheels_prints_the_pins(capsys):
    assert gpu_check.main(['--list-wheels']) == 0
    assert capsys.readouterr().out.splitlines() == [f'{name}=={version}'
                                                    for name, version in gpu_check.GPU_WHEELS.items()]


# Stands in for python3 in gpu_check.sh: records each call; `-c` (the import check) exits with $IMPORT_STATUS.
PYTHON_RECORDER = """#!/usr/bin/env bash
{{ printf '%s|' "$@"; echo; }} >> "{log}"
if [[ $1 == -c ]]; then exit "$IMPORT_STATUS"; fi
if [[ $1 == -m ]]; then exit 0; fi
echo "PYTHONPATH=$PYTHONPATH PWD=$PWD" >> "{log}"
"""


def run_gpu_check_sh(tmp_path: Path, import_status: int, *args: str) -> tuple[subprocess.CompletedProcess, list]:
    python = tmp_path / 'python3'
    log = tmp_path / 'calls.txt'
    log.unlink(missing_ok=True)
    python.write_text(PYTHON_RECORDER.format(log=log))
    python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(python), IMPORT_STATUS=str(import_status), GPU_CHECK_SITE='/tmp/gpu_site',
               GPU_CHECK_WHEELS=str(tmp_path / 'wheels'), PYTHONPATH='/elsewhere')
    finished = subprocess.run(['bash', str(TOOLS / 'analysis_tools/gpu_check.sh'), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return finished, calls


def test_gpu_check_sh_installs_the_wheels_only_when_mmengine_is_missing(tmp_path):
    (tmp_path / 'wheels').mkdir()
    for name in ('mmengine-0.10.7-py3-none-any.whl', 'addict-2.4.0-py3-none-any.whl'):
        (tmp_path / 'wheels' / name).touch()
    finished, calls = run_gpu_check_sh(tmp_path, 1, 'out', '--device', 'cpu')
    assert finished.returncode == 0, finished.stderr
    wheels = tmp_path / 'wheels'
    assert calls == [
        '-c|import mmengine, mmcv|',
        '-m|pip|install|-q|--no-index|--no-deps|--no-compile|--no-cache-dir|--upgrade|--target|/tmp/gpu_site|'
        f'{wheels}/addict-2.4.0-py3-none-any.whl|{wheels}/mmengine-0.10.7-py3-none-any.whl|',
        f'tools/analysis_tools/gpu_check.py|{tmp_path / "out"}|--device|cpu|',
        f'PYTHONPATH=/tmp/gpu_site:{REPO}:/elsewhere PWD={REPO}']
    assert (tmp_path / 'out').is_dir()

    finished, calls = run_gpu_check_sh(tmp_path, 0, 'out')
    assert finished.returncode == 0 and calls == [
        '-c|import mmengine, mmcv|', f'tools/analysis_tools/gpu_check.py|{tmp_path / "out"}|',
        f'PYTHONPATH={REPO}:/elsewhere PWD={REPO}']


def test_gpu_check_sh_refuses_without_wheels_or_out_dir(tmp_path):
    finished, calls = run_gpu_check_sh(tmp_path, 1, 'out')
    assert finished.returncode == 1 and len(calls) == 1
    assert finished.stderr.strip() == (
        f'gpu_check.sh: mmengine/mmcv are not importable with {tmp_path / "python3"} and {tmp_path / "wheels"} '
        'holds no wheels; run tools/analysis_tools/fetch_gpu_wheels.sh where pip reaches an index and carry .whl')
    finished, calls = run_gpu_check_sh(tmp_path, 0, '--tiny')
    assert finished.returncode == 2 and calls == [] and finished.stderr.startswith('usage: bash ')


def test_paper_settings_fit_six_minutes():
    """Every step has a timeout; together they fit the default budget, which leaves the installation 30 s."""
    budget = gpu_check.parse_args(['out']).budget
    for settings in (gpu_check.PAPER_SETTINGS, gpu_check.TINY_SETTINGS):
        assert set(settings.timeouts) == set(gpu_check.STEP_NAMES)
    assert sum(gpu_check.PAPER_SETTINGS.timeouts.values()) <= budget <= 330
    documented = (REPO / 'docs/gpu_check.md').read_text()
    for name, seconds in gpu_check.PAPER_SETTINGS.timeouts.items():
        row = next(line for line in documented.splitlines() if line.startswith(f'| `{name}` |'))
        assert row.endswith(f'| {seconds} s |'), row


def start_child_script(pid_file: Path, then: str) -> str:
    """Python code that starts a child sleeping 60 s, writes its pid to ``pid_file``, prints, then runs ``then``."""
    return ('import subprocess, sys, time; '
            'child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]); '
            f'open({str(pid_file)!r}, "w").write(str(child.pid)); print("started", flush=True); {then}')


def assert_ends(pid: int, within: float = 10.0) -> None:
    deadline = time.perf_counter() + within
    while Path(f'/proc/{pid}').exists() and Path(f'/proc/{pid}/stat').read_text().split()[2] != 'Z':
        assert time.perf_counter() < deadline, f'process {pid}, started by a step, outlived it'
        time.sleep(0.1)


def test_step_timeout_stops_the_whole_process_group(tmp_path):
    """A step over its timeout is recorded as such, and its children (data-loader workers, say) are ended too."""
    script = start_child_script(tmp_path / 'child.pid', 'time.sleep(60)')
    start = time.perf_counter()
    result = gpu_check.run_commands([[sys.executable, '-c', script]], 3.0, tmp_path / 'step.log', dict(os.environ))
    assert time.perf_counter() - start < 20
    assert result.status == 'timeout' and result.returncodes == [None]
    assert result.reason.startswith('stopped after 3 s;') and 'started' in result.reason
    assert_ends(int((tmp_path / 'child.pid').read_text()))


def test_finished_step_leaves_no_process_behind(tmp_path):
    script = start_child_script(tmp_path / 'child.pid', 'pass')
    result = gpu_check.run_commands([[sys.executable, '-c', script]], 30.0, tmp_path / 'step.log', dict(os.environ))
    assert result.status == 'ok' and result.returncodes == [0] and result.reason is None
    assert (tmp_path / 'step.log').read_text() == 'started\n'
    assert_ends(int((tmp_path / 'child.pid').read_text()))


def test_failed_step_keeps_the_end_of_its_output(tmp_path):
    commands = [[sys.executable, '-c', 'pass'],
                [sys.executable, '-c', 'import sys; print("\\n".join(map(str, range(40)))); sys.exit(3)']]
    result = gpu_check.run_commands(commands, 30.0, tmp_path / 'step.log', dict(os.environ))
    assert result.status == 'failed' and result.returncodes == [0, 3]
    assert result.reason.splitlines() == [str(i) for i in range(40 - gpu_check.OUTPUT_TAIL_LINES, 40)]
    assert len(result.commands) == 2 and result.commands[0].endswith(' -c pass')


def test_spent_budget_skips_every_step_and_says_why(tmp_path, capsys):
    out_dir, work_root = tmp_path / 'out', tmp_path / 'work'
    out_dir.mkdir()
    (out_dir / 'bench_amp.json').write_text('{}')
    assert gpu_check.main([str(out_dir), '--device', 'cpu', '--tiny', '--budget', '0.5', '--work-root',
                           str(work_root)]) == 1
    report = json.loads((out_dir / 'gpu_check.json').read_text())
    assert {name: step['reason'] for name, step in report['steps'].items()} == {
        'data': 'the budget of 0.5 s was spent', 'train_fp32': 'needs step data, which is not ok',
        'train_amp': 'needs step data, which is not ok', 'test': 'no training step left a checkpoint',
        'bench_fp32': 'the budget of 0.5 s was spent', 'bench_amp': 'the budget of 0.5 s was spent'}
    assert all(step['status'] == 'skipped' for step in report['steps'].values())
    assert report['failed_steps'] == list(gpu_check.STEP_NAMES) and report['training'] == {}
    assert sorted(path.name for path in out_dir.iterdir()) == ['gpu_check.json']
    assert capsys.readouterr().out.startswith('gpu_check: ')
    assert work_root.is_dir()
    with pytest.raises(SystemExit, match='--work-root .* is not empty'):
        (work_root / 'left').touch()
        gpu_check.main([str(out_dir), '--device', 'cpu', '--tiny', '--work-root', str(work_root)])


def test_training_figures_leave_out_the_first_iteration(tmp_path):
    log = tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    records = [dict(loss=3.0, time=9.0, data_time=1.0, memory=900, iter=1),
               dict(loss=2.0, time=0.5, data_time=0.1, memory=1000, iter=2),
               dict(loss=1.5, time=0.3, data_time=0.1, memory=1000, iter=3),
               dict(loss=1.0, time=0.4, data_time=0.2, memory=1200, iter=4),
               dict(**{'fused/all/I-AUROC': 0.5}, iter=4)]
    log.write_text(''.join(json.dumps(record) + '\n' for record in records))
    figures = gpu_check.training_figures(tmp_path, batch_size=16)
    assert figures == dict(iterations=4, timed_iterations=3, batch_size=16, step_seconds=0.4, data_seconds=0.1,
                           images_per_second=40.0, compute_images_per_second=53.33, peak_memory_mib=1200,
                           losses=[3.0, 2.0, 1.5, 1.0])
    with pytest.raises(FileNotFoundError, match='no \\*/vis_data/scalars.json under'):
        gpu_check.training_figures(tmp_path / 'missing', batch_size=16)


@pytest.mark.slow
def test_cpu_tiny_run_end_to_end(tmp_path):
    """gpu_check.sh --device cpu --tiny: every step of the GPU flow on a CPU, results as the GPU run writes them."""
    out_dir, work_root = tmp_path / 'out', tmp_path / 'work'
    finished = run(['bash', str(TOOLS / 'analysis_tools/gpu_check.sh'), str(out_dir), '--device', 'cpu', '--tiny',
                    '--work-root', str(work_root), '--budget', '900'], cwd=REPO, env=tool_env(), timeout=900)
    report = json.loads((out_dir / 'gpu_check.json').read_text())
    steps = report['steps']
    assert list(steps) == list(gpu_check.STEP_NAMES), finished.output[-3000:]
    for name in ('data', 'train_fp32', 'test', 'bench_fp32', 'bench_amp'):
        assert steps[name]['status'] == 'ok', f'{name}: {steps[name]["reason"]}'
        assert steps[name]['seconds'] > 0 and all(code == 0 for code in steps[name]['returncodes'])
    assert len(steps['data']['commands']) == 3 and '--amp' in steps['train_amp']['commands'][0]
    assert report['mode'] == 'tiny' and report['device'] == 'cpu'
    assert report['environment']['cuda_available'] is False
    assert report['environment']['mmengine'] == gpu_check.GPU_WHEELS['mmengine']

    fp32 = report['training']['fp32']
    assert (fp32['iterations'], fp32['timed_iterations'], fp32['batch_size']) == (2, 1, 4)
    assert len(fp32['losses']) == 2 and all(math.isfinite(loss) and loss > 0 for loss in fp32['losses'])
    assert fp32['images_per_second'] == round(4 / fp32['step_seconds'], 2) and fp32['peak_memory_mib'] is None
    assert fp32['checkpoint'] == str(work_root / 'train_fp32' / 'epoch_2.pth')

    assert report['test'] == dict(checkpoint=fp32['checkpoint'], trained_with='fp32', metrics='test_metrics.json')
    metrics = json.loads((out_dir / 'test_metrics.json').read_text())
    assert metrics == json.loads((work_root / 'test' / 'metrics.json').read_text())
    assert 0.0 <= metrics['fused']['all']['I-AUROC'] <= 1.0

    assert report['benchmarks'] == dict(fp32='bench_fp32.json', amp='bench_amp.json')
    for precision, amp in (('fp32', False), ('amp', True)):
        bench = json.loads((out_dir / f'bench_{precision}.json').read_text())
        assert (bench['meta']['amp'], bench['meta']['random_teacher'], bench['meta']['device']) == (amp, True, 'cpu')
        assert (bench['meta']['batch_size'], bench['meta']['image_size']) == (2, 64)
        assert bench['train']['steps']['crd_step']['images_per_s'] > 0
        assert bench['train']['steps']['plain_step']['images_per_s'] > 0

    log = (out_dir / 'log.txt').read_text()
    assert all(f'===== {name}: {step["status"]} in ' in log for name, step in steps.items())
    assert sorted(path.name for path in out_dir.iterdir()) == [
        'bench_amp.json', 'bench_fp32.json', 'gpu_check.json', 'log.txt', 'test_metrics.json']
    markdown = gpu_check.render_markdown(out_dir)
    assert '| train_fp32 | ok |' in markdown and '| fp32 | ' in markdown and '**Training**' in markdown

    assert steps['train_amp']['status'] == 'ok', steps['train_amp']['reason']
    assert report['failed_steps'] == [] and finished.returncode == 0
    assert report['training']['amp']['iterations'] == 2


@pytest.mark.slow
def test_paper_commands_pass_the_dry_run(tmp_path, capsys):
    """The GPU run's tools/train.py and tools/test.py commands (paper config, overrides) as dry runs on CPU."""
    settings = gpu_check.PAPER_SETTINGS
    data_root = tmp_path / 'data'
    make_synthetic_mvtec3d(data_root, settings.category, height=64, width=64, num_train=2, num_val=1,
                           num_test_per_defect=1, defect_types=('crack', ))
    train_words = gpu_check.train_command(sys.executable, settings, data_root, tmp_path / 'work', amp=True)
    assert train_words[1:3] == ['tools/train.py', 'configs/crd/crd_mvtec3d_bagel.py']
    load_tool('train.py').main([*train_words[2:], '--dry-run'])
    output = capsys.readouterr().out
    assert 'Dry run of configs/crd/crd_mvtec3d_bagel.py: train_dataloader 2 samples' in output
    assert 'model CRD built. Nothing was trained.' in output
    test_words = gpu_check.test_command(sys.executable, settings, data_root, tmp_path / 'missing.pth', tmp_path)
    load_tool('test.py').main([*test_words[2:], '--dry-run'])
    output = capsys.readouterr().out
    assert output.startswith('Dry run of configs/crd/crd_mvtec3d_bagel.py: ') and 'test_dataloader 2 samples' in output
    assert 'model CRD built. Nothing was tested.' in output
