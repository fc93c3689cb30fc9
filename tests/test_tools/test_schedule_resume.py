"""Resuming with a larger max_epochs runs the learning-rate schedule to the new end, as an uninterrupted run does."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmad.engine.hooks import SafeCheckpointHook
from mmad.utils import ScheduleFollowingRunner, register_all_modules

GAMMA = 0.5
LR = 0.1


class PairDataset(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.full((2, ), float(index)))


class LinearModel(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        out = self.linear(torch.stack(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class EpochLRRecorder(Hook):
    """Records the learning rate each training epoch runs with."""

    def __init__(self) -> None:
        self.lrs = []

    def before_train_epoch(self, runner) -> None:
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])


def train(runner_class: type[Runner], work_dir: str, max_epochs: int, name: str, resume_from: str | None = None):
    recorder = EpochLRRecorder()
    runner = runner_class(
        model=LinearModel(), work_dir=work_dir, experiment_name=name, default_scope='mmad',
        train_dataloader=dict(dataset=PairDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=LR)),
        param_scheduler=dict(type='ExponentialLR', gamma=GAMMA, by_epoch=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[recorder, SafeCheckpointHook()],
        load_from=resume_from, resume=resume_from is not None)
    runner.train()
    return recorder.lrs


@pytest.fixture(scope='module')
def uninterrupted_lrs(tmp_path_factory) -> list[float]:
    register_all_modules()
    return train(Runner, str(tmp_path_factory.mktemp('uninterrupted')), 5, 'uninterrupted')


@pytest.mark.parametrize('runner_class', [Runner, ScheduleFollowingRunner])
def test_resumed_run_with_more_epochs_keeps_decaying_the_lr(tmp_path, uninterrupted_lrs, runner_class):
    first = train(runner_class, str(tmp_path), 2, f'first_{runner_class.__name__}')
    resumed = train(runner_class, str(tmp_path), 5, f'resumed_{runner_class.__name__}',
                    resume_from=str(tmp_path / 'epoch_2.pth'))
    assert uninterrupted_lrs == pytest.approx([LR * GAMMA**epoch for epoch in range(5)])
    assert first == pytest.approx(uninterrupted_lrs[:2])
    if runner_class is Runner:
        # mmengine alone restores the first run's schedule end (epoch 2): the LR stays at the second epoch's.
        assert resumed == pytest.approx([first[-1]] * 3)
        return
    assert resumed == pytest.approx(uninterrupted_lrs[2:])
    logs = ''.join(open(path).read() for path in glob.glob(osp.join(tmp_path, '*', '*.log')))
    assert ('Resumed schedule follows the config: param_scheduler[0] (ExponentialLR).end: 2 in the checkpoint, '
            '5 from the config') in logs
