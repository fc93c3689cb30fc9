"""The plain-PyTorch reference CRD step and the benchmark tool (tools/analysis_tools/benchmark.py)."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from process_helpers import REPO, load_tool

from mmad.registry import MODELS
from mmad.utils.tool_args import load_tool_config

plain = load_tool('analysis_tools/plain_crd_step.py')
benchmark = load_tool('analysis_tools/benchmark.py')
render = load_tool('analysis_tools/render_benchmarks.py')

RANDOM_TEACHER_CONFIG = str(REPO / 'configs' / 'crd' / 'crd_demo_synthetic_random_teacher.py')
# Random resnet18 layers 1-2 (strides 4, 8): the tiny model of the tool tests.
TINY_MODEL = ['model.teacher.strides=[4,8]', 'model.bottleneck.bottleneck_stride=16']


@pytest.fixture(scope='module')
def tiny_cfg():
    return load_tool_config(RANDOM_TEACHER_CONFIG, TINY_MODEL)


def random_batch(batch_size: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return dict(rgb=torch.rand(batch_size, 3, size, size, generator=generator) * 255,
                depth=torch.rand(batch_size, 1, size, size, generator=generator))


@pytest.mark.parametrize('size', [32, 64])
def test_plain_step_is_the_crd_step(tiny_cfg, size):
    """From identical weights, one plain step and one CRD.train_step give the same losses and the same weights."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg.model)
    optimizer_cfg = tiny_cfg.optim_wrapper.optimizer
    reference = plain.PlainCRDStep.from_crd(model, lr=optimizer_cfg.lr, betas=tuple(optimizer_cfg.betas))
    # The same single-tensor Adam as the plain step: the schedule's fused Adam rounds differently, and Adam's first
    # steps (about lr * sign(gradient)) turn that rounding of near-zero gradients into weight differences of 2 * lr.
    optim_cfg = copy.deepcopy(tiny_cfg.optim_wrapper)
    optim_cfg.optimizer.fused = False
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    initial = {name: param.detach().clone() for name, param in model.named_parameters()}
    for seed in range(2):
        images = random_batch(2, size, seed)
        log_vars = model.train_step(dict(inputs=images, data_samples=None), optim_wrapper)
        plain_losses = reference(images)
        for branch, losses in plain_losses.items():
            assert set(losses) == {'loss_decoder', 'loss_filter', 'loss_amplifier', 'loss_output'}
            for key, value in losses.items():
                torch.testing.assert_close(value, log_vars[f'{branch}.{key}'], rtol=0, atol=1e-5)
                assert value.item() > 0
    for branch, student in reference.students.items():
        crd_params = dict(getattr(model, f'branch_{branch}').named_parameters())
        moved = 0
        for name, param in student.named_parameters():
            torch.testing.assert_close(param, crd_params[name], rtol=0, atol=1e-5, msg=f'{branch}.{name}')
            moved += int(not torch.equal(param, initial[f'branch_{branch}.{name}']))
        assert moved == len(crd_params)
        for name, buffer in student.named_buffers():
            torch.testing.assert_close(buffer, dict(getattr(model, f'branch_{branch}').named_buffers())[name],
                                       rtol=0, atol=1e-5)



TINY_RUN = [RANDOM_TEACHER_CONFIG, '--cfg-options', *TINY_MODEL, '--batch-size', '2', '--image-size', '32',
            '--iters', '2', '--warmup', '1', '--infer-batch-sizes', '1,2', '--data-size', '32', '--data-samples', '3',
            '--workers', '0', '--metric-maps', '12', '--metric-size', '32', '--profile-steps', '1']


@pytest.fixture(scope='module')
def benchmark_run(tmp_path_factory):
    """One in-process run of every part of the tool on the tiny model, with the CPU memory child and --profile."""
    folder = tmp_path_factory.mktemp('benchmark')
    results = benchmark.main([*TINY_RUN, '--out', str(folder / 'tiny.json'), '--profile', str(folder / 'profile'),
                              '--note', 'test run'])
    return folder, results


def assert_positive(value, what: str) -> None:
    assert isinstance(value, float) and math.isfinite(value) and value > 0, f'{what} = {value!r}'


@pytest.mark.slow
def test_benchmark_json_schema_and_consistent_ratios(benchmark_run):
    folder, results = benchmark_run
    assert json.loads((folder / 'tiny.json').read_text()) == json.loads(json.dumps(results))
    assert results['schema'] == 'mmad-benchmark/1'
    meta = results['meta']
    assert (meta['device'], meta['batch_size'], meta['image_size'], meta['iters']) == ('cpu', 2, 32, 2)
    assert meta['parts'] == ['train', 'infer', 'data', 'metrics'] and meta['note'] == 'test run'

    train = results['train']
    steps = train['steps']
    assert set(steps) == {'crd_step', 'teacher_forward', 'branch_step.rgb', 'branch_step.depth', 'plain_step'}
    for name, step in steps.items():
        assert len(step['times']) == 2
        assert step['seconds'] == pytest.approx(sorted(step['times'])[0] / 2 + sorted(step['times'])[1] / 2)
        assert_positive(step['peak_memory_mib'], f'{name} peak memory')
        assert step['step_memory_mib'] >= 0
    for name in ('crd_step', 'plain_step'):
        assert steps[name]['images_per_s'] == pytest.approx(2 / steps[name]['seconds'])
    parts = steps['teacher_forward']['seconds'] + steps['branch_step.rgb']['seconds'] + \
        steps['branch_step.depth']['seconds']
    assert train['parts_seconds'] == pytest.approx(parts)
    assert train['crd_over_parts'] == pytest.approx(steps['crd_step']['seconds'] / parts)
    assert train['crd_over_plain'] == pytest.approx(steps['crd_step']['seconds'] / steps['plain_step']['seconds'])
    assert train['crd_over_plain'] * train['plain_over_crd'] == pytest.approx(1)
    for name in steps:
        assert_positive(steps[name]['cpu_seconds'], f'{name} CPU seconds')
    assert train['crd_over_plain_cpu'] == pytest.approx(steps['crd_step']['cpu_seconds']
                                                        / steps['plain_step']['cpu_seconds'])
    assert train['crd_over_parts_cpu'] == pytest.approx(steps['crd_step']['cpu_seconds'] / train['parts_cpu_seconds'])
    assert train['memory_kind'] == 'cpu_peak_rss_of_child'

    assert set(results['infer']) == {'batch_1', 'batch_2'}
    for key, batch_size in (('batch_1', 1), ('batch_2', 2)):
        infer = results['infer'][key]
        assert infer['batch_size'] == batch_size
        assert_positive(infer['images_per_s'], f'{key} images/s')
        assert infer['latency_ms_per_image'] * infer['images_per_s'] == pytest.approx(1000)

    data = results['data']
    assert (data['samples'], data['source_size'], data['workers']) == (3, 32, 0)
    assert data['samples_per_s'] == pytest.approx(3 / data['seconds_per_pass'])
    assert data['train_images_per_s'] == steps['crd_step']['images_per_s']
    assert data['bottleneck'] == (data['samples_per_s'] < data['train_images_per_s'])

    metrics = results['metrics']
    assert (metrics['maps'], metrics['map_size'], metrics['sources']) == (12, 32, ['fused', 'rgb', 'depth'])
    # fused and two branches, on 'all' and each defect type, 5 metrics each.
    assert metrics['metrics_computed'] == 3 * 5 * 5
    assert metrics['seconds'] == pytest.approx(metrics['process_seconds'] + metrics['compute_seconds'])
    assert_positive(metrics['compute_seconds'], 'metric compute seconds')


@pytest.mark.slow
def test_benchmark_profile_writes_top_ops_and_traces(benchmark_run):
    folder, results = benchmark_run
    for name in ('crd_step', 'plain_step'):
        table = (folder / 'profile' / f'{name}_ops.txt').read_text()
        assert table.startswith(f'{name}: 1 steps of ') and 'Self CPU' in table
        assert 'aten::convolution_backward' in table
        trace = json.loads((folder / 'profile' / f'{name}_trace.json').read_text())
        assert trace['traceEvents']
        assert results['train']['profile'][name]['ops'] == str(folder / 'profile' / f'{name}_ops.txt')


@pytest.mark.slow
def test_render_benchmarks_one_column_per_run(benchmark_run, tmp_path, capsys):
    folder, results = benchmark_run
    only_train = dict(results, meta=dict(results['meta'], amp=True), infer=None, data=None, metrics=None)
    (tmp_path / 'amp.json').write_text(json.dumps(only_train))
    render.main([str(folder / 'tiny.json'), str(tmp_path / 'amp.json'), '--names', 'fp32', 'amp'])
    text = capsys.readouterr().out
    assert '| | fp32 | amp |' in text
    ratio = f"{results['train']['crd_over_parts']:.3g}"
    assert f'| **CRD step / sum of parts** (target <= 1.1) | {ratio} | {ratio} |' in text
    assert '| AMP / compile / memory format | off / off / contiguous_format | on / off / contiguous_format |' in text
    images_per_s = f"{results['infer']['batch_2']['images_per_s']:.3g}"
    assert f'| batch 2: images/s | {images_per_s} | - |' in text
    assert '**Metrics (ADMetric)**' in text and '| maps (H = W) | 12 (32) | - |' in text
    with pytest.raises(SystemExit, match='2 --names for 1 JSON files'):
        render.main([str(folder / 'tiny.json'), '--names', 'a', 'b'])


def test_benchmark_shared_plain_weights_step_the_model(tmp_path):
    """--plain-weights shared: the plain reference trains the CRD model's own modules with its own optimisers."""
    args = benchmark.parse_args([*TINY_RUN, '--plain-weights', 'shared', '--parts', 'train', '--no-memory'])
    bench = benchmark.TrainBench(benchmark.prepare_config(args), args)
    before = bench.model.branch_rgb.ocbe.state_dict()
    before = {key: value.clone() for key, value in before.items()}
    losses = bench.plain_step()
    assert bench.plain.optimizers['rgb'] is bench.optim_wrapper['rgb'].optimizer
    assert all(math.isfinite(value.item()) for branch in losses.values() for value in branch.values())
    after = bench.model.branch_rgb.ocbe.state_dict()
    assert any(not torch.equal(before[key], after[key]) for key in before)


def test_benchmark_refuses_unknown_parts(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args([RANDOM_TEACHER_CONFIG, '--parts', 'train,speed'])
    assert "--parts 'train,speed': unknown ['speed']" in capsys.readouterr().err
