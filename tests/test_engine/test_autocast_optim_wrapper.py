"""AutocastOptimWrapper: bfloat16 autocast on CPU for training (tools/train.py --amp) and autocast scoring agreeing
with float32 (tools/test.py --amp)."""
import copy
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, autocast, load_checkpoint
from sklearn.metrics import roc_auc_score

from mmad.engine.optimizers import AutocastOptimWrapper
from mmad.registry import MODELS, OPTIM_WRAPPERS
from mmad.utils import ConfigError, register_all_modules

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / 'test_models'))
from test_crd import build_crd, make_batch  # noqa: E402
from tiny_crd_model import write_config  # noqa: E402

AMP_OPTIM = dict(constructor='BranchOptimWrapperConstructor', type='AutocastOptimWrapper',
                 optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'mmad_tool_{name}', TESTS.parent / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


def test_cpu_autocasts_to_bfloat16_without_loss_scaling():
    layer = torch.nn.Conv2d(3, 4, 3)
    wrapper = OPTIM_WRAPPERS.build(dict(type='AutocastOptimWrapper', optimizer=torch.optim.SGD(layer.parameters(),
                                                                                                lr=0.1)))
    assert wrapper.device_type == 'cpu' and wrapper.cast_dtype == torch.bfloat16 and wrapper.loss_scaler is None
    with wrapper.optim_context(layer):
        output = layer(torch.rand(1, 3, 8, 8))
    assert output.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    assert 'loss_scaler' not in wrapper.state_dict()
    with pytest.raises(ValueError, match=r"CPU autocast trains in bfloat16 \(no loss scaling\), got "
                                         r"dtype='float16'; set optim_wrapper.dtype='bfloat16' or None"):
        AutocastOptimWrapper(optimizer=torch.optim.SGD(layer.parameters(), lr=0.1), dtype='float16')
    with pytest.raises(ValueError, match=r"dtype must be one of \['float16', 'bfloat16'\] or None, got 'int8'"):
        AutocastOptimWrapper(optimizer=torch.optim.SGD(layer.parameters(), lr=0.1), dtype='int8')


def test_crd_train_step_under_cpu_autocast_lowers_the_loss():
    model = build_crd().train()
    optim_wrapper = build_optim_wrapper(model, AMP_OPTIM)
    assert all(isinstance(optim_wrapper[name], AutocastOptimWrapper) for name in model.branch_names)
    batch = make_batch(model.modalities)
    losses = [float(model.train_step(copy.deepcopy(batch), optim_wrapper)['loss']) for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert all(param.dtype == torch.float32 for param in model.parameters())


def test_train_amp_flag_selects_the_autocast_wrapper_and_refuses_other_wrappers(tmp_path):
    train = load_tool('train')
    config = write_config(tmp_path / 'tiny.py', tmp_path / 'data')
    cfg = train.merge_args(train.parse_args([str(config), '--amp', '--work-dir', str(tmp_path / 'work')]))
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    with pytest.raises(ConfigError, match=r"--amp replaces the optimiser wrapper by AutocastOptimWrapper, but .*"
                                          r"tiny.py sets \{'optim_wrapper': 'ApexOptimWrapper'\}; expected one of"):
        train.merge_args(train.parse_args([str(config), '--amp', '--cfg-options',
                                           'optim_wrapper.type=ApexOptimWrapper']))


def test_test_amp_flag_sets_fp16_scoring(tmp_path):
    test = load_tool('test')
    config = write_config(tmp_path / 'tiny.py', tmp_path / 'data')
    cfg = test.merge_args(test.parse_args([str(config), str(tmp_path / 'ckpt.pth'), '--amp']))
    assert cfg.test_cfg == dict(type='TestLoop', fp16=True)


def test_maps_under_autocast_agree_with_float32(tiny_crd):
    trained = tiny_crd
    register_all_modules()
    cfg = Config.fromfile(str(trained['config']))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(trained['checkpoint']), map_location='cpu')
    model.eval()
    dataloader = Runner.build_dataloader(cfg.test_dataloader)
    results = dict(fp32=([], [], []), amp=([], [], []))
    for batch in dataloader:
        for key, enabled in (('fp32', False), ('amp', True)):
            with autocast(enabled=enabled):  # what mmengine's TestLoop does with test_cfg.fp16=True
                samples = model.test_step(copy.deepcopy(batch))
            maps, scores, labels = results[key]
            maps.extend(sample.anomaly_map for sample in samples)
            scores.extend(float(sample.pred_score) for sample in samples)
            labels.extend(int(sample.gt_label) for sample in samples)
    fp32_maps, amp_maps = torch.stack(results['fp32'][0]), torch.stack(results['amp'][0])
    assert amp_maps.dtype == torch.float32
    assert not torch.equal(amp_maps, fp32_maps)  # the networks did run in bfloat16
    torch.testing.assert_close(amp_maps, fp32_maps, rtol=0.05, atol=0.05 * fp32_maps.abs().max().item())
    labels = results['fp32'][2]
    assert 0 < sum(labels) < len(labels)
    auroc_fp32 = roc_auc_score(labels, results['fp32'][1])
    auroc_amp = roc_auc_score(labels, results['amp'][1])
    assert abs(auroc_amp - auroc_fp32) <= 0.01, (auroc_fp32, auroc_amp)


@pytest.mark.slow
def test_train_tool_trains_under_amp_on_cpu(tmp_path, tiny_crd):
    train = load_tool('train')
    config = write_config(tmp_path / 'tiny_amp.py', tiny_crd['data_root'])
    work_dir = tmp_path / 'amp_work'
    train.main([str(config), '--amp', '--work-dir', str(work_dir)])
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['epoch'] == 1
    assert all(torch.isfinite(value).all() for value in checkpoint['state_dict'].values()
               if value.is_floating_point())
    # Its test under autocast says so in metrics.json (the numbers differ slightly from float32).
    test_dir = tmp_path / 'amp_test'
    load_tool('test').main([str(config), str(work_dir / 'epoch_1.pth'), '--amp', '--work-dir', str(test_dir)])
    metrics = json.loads((test_dir / 'metrics.json').read_text())
    assert metrics['run']['precision'] == 'autocast'
    assert 0.0 <= metrics['fused']['all']['I-AUROC'] <= 1.0
