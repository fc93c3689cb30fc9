
import pytest
import torch
from mmengine.model import BaseModel, MMSeparateDistributedDataParallel
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

from mmad.engine.optimizers import BranchOptimWrapperConstructor
from mmad.registry import OPTIM_WRAPPER_CONSTRUCTORS


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


class TwoBranchModel(nn.Module):
    """Frozen teacher + two branches, laid out like CRD."""

    branch_names = ('rgb', 'depth')

    def __init__(self):
        super().__init__()
        self.teacher = nn.Linear(2, 2).requires_grad_(False)
        self.branch_rgb = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2))
        self.branch_depth = nn.Linear(2, 4)


TEMPLATE = dict(constructor='BranchOptimWrapperConstructor', type='OptimWrapper',
                optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))


def param_ids(optim_wrapper):
    return {id(p) for group in optim_wrapper.optimizer.param_groups for p in group['params']}


def test_template_gives_one_optimizer_per_branch_over_its_parameters():
    model = TwoBranchModel()
    optim_wrapper = build_optim_wrapper(model, TEMPLATE)
    assert isinstance(optim_wrapper, OptimWrapperDict)
    assert list(optim_wrapper.keys()) == ['rgb', 'depth']
    for name in ('rgb', 'depth'):
        wrapper = optim_wrapper[name]
        assert type(wrapper) is OptimWrapper and isinstance(wrapper.optimizer, torch.optim.Adam)
        assert param_ids(wrapper) == {id(p) for p in getattr(model, f'branch_{name}').parameters()}
        assert wrapper.optimizer.defaults['lr'] == 0.005 and wrapper.optimizer.defaults['betas'] == (0.5, 0.999)
    assert not param_ids(optim_wrapper['rgb']) & param_ids(optim_wrapper['depth'])
    assert not {id(p) for p in model.teacher.parameters()} & (param_ids(optim_wrapper['rgb'])
                                                              | param_ids(optim_wrapper['depth']))


def test_per_branch_configs_and_paramwise():
    model = TwoBranchModel()
    cfg = dict(constructor='BranchOptimWrapperConstructor',
               rgb=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1),
                        paramwise_cfg=dict(bias_lr_mult=0.5)),
               depth=dict(optimizer=dict(type='Adam', lr=0.001)))
    optim_wrapper = build_optim_wrapper(model, cfg)
    assert isinstance(optim_wrapper['rgb'].optimizer, torch.optim.SGD)
    assert isinstance(optim_wrapper['depth'].optimizer, torch.optim.Adam)
    assert optim_wrapper['depth'].optimizer.defaults['lr'] == 0.001
    bias_lrs = {group['lr'] for group in optim_wrapper['rgb'].optimizer.param_groups if group['params'][0].dim() == 1}
    assert bias_lrs == {0.05}


def test_top_level_keys_are_shared_defaults_of_per_branch_entries():
    model = TwoBranchModel()
    cfg = dict(constructor='BranchOptimWrapperConstructor', accumulative_counts=2, clip_grad=dict(max_norm=1.0),
               rgb=dict(optimizer=dict(type='SGD', lr=0.1)),
               depth=dict(optimizer=dict(type='SGD', lr=0.2), accumulative_counts=4))
    optim_wrapper = build_optim_wrapper(model, cfg)
    assert optim_wrapper['rgb']._accumulative_counts == 2 and optim_wrapper['depth']._accumulative_counts == 4
    assert optim_wrapper['rgb'].clip_grad_kwargs == dict(max_norm=1.0) == optim_wrapper['depth'].clip_grad_kwargs
    template = dict(TEMPLATE, clip_grad=dict(max_norm=2.0))
    assert build_optim_wrapper(model, template)['depth'].clip_grad_kwargs == dict(max_norm=2.0)


def test_config_errors():
    model = TwoBranchModel()
    with pytest.raises(ValueError, match=r"missing \['depth'\], unknown \['normals'\]\.$"):
        build_optim_wrapper(model, dict(constructor='BranchOptimWrapperConstructor',
                                        rgb=dict(optimizer=dict(type='SGD', lr=0.1)),
                                        normals=dict(optimizer=dict(type='SGD', lr=0.1))))
    with pytest.raises(ValueError, match=r"entries \['depth'\] have no `optimizer`"):
        build_optim_wrapper(model, dict(constructor='BranchOptimWrapperConstructor',
                                        rgb=dict(optimizer=dict(type='SGD', lr=0.1)), depth=dict(lr=0.1)))
    with pytest.raises(ValueError, match='either an `optimizer`'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type='BranchOptimWrapperConstructor', optim_wrapper_cfg=dict(lr=1)))
    with pytest.raises(TypeError, match='branch_names'):
        BranchOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)))(nn.Linear(2, 2))


class TwoBranchTrainModel(BaseModel):
    """Minimal model stepping each branch with its own optimiser, as CRD.train_step does."""

    branch_names = ('rgb', 'depth')

    def __init__(self):
        super().__init__()
        self.branch_rgb = nn.Linear(2, 1)
        self.branch_depth = nn.Linear(2, 1)

    def train_step(self, data, optim_wrapper):
        inputs = torch.stack(data)
        log_vars = {}
        for name in self.branch_names:
            loss = getattr(self, f'branch_{name}')(inputs).square().mean()
            optim_wrapper[name].update_params(loss)
            log_vars[f'{name}.loss'] = loss.detach()
        return log_vars

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return inputs


@pytest.mark.parametrize('param_scheduler, gammas', [
    (dict(type='ExponentialLR', gamma=0.95, by_epoch=True), dict(rgb=0.95, depth=0.95)),
    (dict(rgb=dict(type='ExponentialLR', gamma=0.5, by_epoch=True),
          depth=dict(type='ExponentialLR', gamma=0.9, by_epoch=True)), dict(rgb=0.5, depth=0.9)),
])
def test_runner_schedules_every_branch(tmp_path, param_scheduler, gammas):
    runner = Runner(
        model=TwoBranchTrainModel(), work_dir=str(tmp_path), default_scope='mmad',
        train_dataloader=dict(dataset=[torch.ones(2)] * 4, batch_size=2, collate_fn=dict(type='pseudo_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=True, max_epochs=2), optim_wrapper=TEMPLATE, param_scheduler=param_scheduler,
        default_hooks=dict(logger=None, checkpoint=None), log_level='WARNING')
    runner.train()
    for name, gamma in gammas.items():  # mmengine ends a by-epoch scheduler at max_epochs: epoch i used lr * gamma^i
        assert runner.optim_wrapper[name].optimizer.param_groups[0]['lr'] == pytest.approx(0.005 * gamma)


def test_wrapped_model_with_ddp_wrapped_branches(single_process_group):
    model = TwoBranchModel()
    wrapped = MMSeparateDistributedDataParallel(model)
    assert type(model.branch_rgb).__name__ == 'MMDistributedDataParallel'
    assert isinstance(model.teacher, nn.Linear)  # no trainable parameter: not wrapped
    optim_wrapper = build_optim_wrapper(wrapped, TEMPLATE)
    assert param_ids(optim_wrapper['rgb']) == {id(p) for p in model.branch_rgb.module.parameters()}
    assert param_ids(optim_wrapper['depth']) == {id(p) for p in model.branch_depth.module.parameters()}
