"""BranchDistributedDataParallel: one DDP per branch, SyncBatchNorm in the branches only (teacher untouched)."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import DefaultScope
from torch import nn

from mmad.engine.model_wrappers import BranchDistributedDataParallel, convert_trainable_children_to_sync_batchnorm
from mmad.registry import MODEL_WRAPPERS, MODELS

SIZE = 64
NORMALISATION = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
OPTIM = dict(constructor='BranchOptimWrapperConstructor', type='OptimWrapper',
             optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))
_CACHE = {}


def tiny_crd():
    """A CRD with a resnet18 teacher (random weights), rgb + depth; a fresh copy per call."""
    if 'model' not in _CACHE:
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmad'):
            _CACHE['model'] = MODELS.build(dict(
                type='CRD', modalities=('rgb', 'depth'), teacher=dict(type='TimmEncoder', model_name='resnet18'),
                data_preprocessor=dict(type='ADDataPreprocessor',
                                       modalities=dict(rgb=NORMALISATION, depth=NORMALISATION))))
    return copy.deepcopy(_CACHE['model'])


def batchnorm_types(module):
    return {type(layer) for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)}


def test_branches_converted_teacher_untouched():
    model = tiny_crd()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    teacher_layers = list(model.teacher.modules())
    assert convert_trainable_children_to_sync_batchnorm(model) == ['branch_rgb', 'branch_depth']
    for name in ('branch_rgb', 'branch_depth'):
        assert batchnorm_types(getattr(model, name)) == {nn.SyncBatchNorm}
    assert batchnorm_types(model.teacher) == {nn.BatchNorm2d}
    assert all(a is b for a, b in zip(model.teacher.modules(), teacher_layers, strict=True))
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[key], value) for key, value in before.items())
    assert all(not p.requires_grad for p in model.teacher.parameters())


def test_sync_bn_refused_on_cpu_and_unknown_implementation():
    with pytest.raises(ValueError, match=r"sync_bn='torch': torch's SyncBatchNorm trains on GPUs only and this run "
                                         r'is on the CPU; set model_wrapper_cfg.sync_bn=None'):
        BranchDistributedDataParallel(tiny_crd(), sync_bn='torch')
    with pytest.raises(ValueError, match=r"sync_bn='mmcv': expected None or one of \('torch',\)"):
        BranchDistributedDataParallel(tiny_crd(), sync_bn='mmcv')


def test_without_sync_bn_each_branch_in_its_own_ddp(single_process_group):
    model = tiny_crd()
    wrapper = MODEL_WRAPPERS.build(dict(type='BranchDistributedDataParallel', module=model, device_ids=None))
    assert wrapper.module is model
    assert [type(model._modules[name]).__name__ for name in ('teacher', 'branch_rgb', 'branch_depth')] == [
        'TimmEncoder', 'MMDistributedDataParallel', 'MMDistributedDataParallel']
    assert batchnorm_types(model) == {nn.BatchNorm2d}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch's SyncBatchNorm trains on GPUs only")
def test_training_step_with_sync_bn_on_gpu(single_process_group):
    model = tiny_crd().cuda()
    wrapper = BranchDistributedDataParallel(model, sync_bn='torch', device_ids=None)
    branch = model.branch_rgb.module
    assert batchnorm_types(branch) == {nn.SyncBatchNorm} and batchnorm_types(model.teacher) == {nn.BatchNorm2d}
    with DefaultScope.overwrite_default_scope('mmad'):
        optim_wrapper = build_optim_wrapper(wrapper, OPTIM)
    generator = torch.Generator().manual_seed(1)
    data = dict(inputs=dict(rgb=[torch.rand(3, SIZE, SIZE, generator=generator) for _ in range(2)],
                            depth=[torch.rand(1, SIZE, SIZE, generator=generator) for _ in range(2)]))
    before = [p.detach().clone() for p in branch.parameters()]
    wrapper.train()
    log_vars = wrapper.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert any(not torch.equal(a, b) for a, b in zip(before, branch.parameters(), strict=True))


def test_default_runtime_wrapper_is_found_by_mmengine_runner():
    cfg = Config.fromfile(Path(__file__).parents[2] / 'configs' / '_base_' / 'default_runtime.py')
    assert MMENGINE_MODEL_WRAPPERS.get(cfg.model_wrapper_cfg.type) is BranchDistributedDataParallel
    assert cfg.model_wrapper_cfg.sync_bn is None
