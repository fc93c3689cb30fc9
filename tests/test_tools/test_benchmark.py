"""The plain-PyTorch reference CRD step and the benchmark tool (tools/analysis_tools/benchmark.py)."""
from __future__ import annotations

import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from process_helpers import REPO, load_tool

from mmad.registry import MODELS
from mmad.utils.tool_args import load_tool_config

plain = load_tool('analysis_tools/plain_crd_step.py')

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
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(tiny_cfg.optim_wrapper))
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

