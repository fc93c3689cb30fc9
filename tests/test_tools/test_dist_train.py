"""torchrun with 2 processes on CPU (gloo): DDP keeps parameters, BatchNorm buffers and optimisers identical."""
import pytest
import torch
from tiny_config import NUM_TRAIN

from mmad.utils import load_from_local_safely

pytestmark = pytest.mark.slow  # a 2-process torchrun training


def _flatten(state, prefix=''):
    if isinstance(state, dict):
        items = {}
        for key, value in state.items():
            items.update(_flatten(value, f'{prefix}{key}.'))
        return items
    if isinstance(state, list | tuple):
        return _flatten(dict(enumerate(state)), prefix)
    return {prefix.rstrip('.'): state}


def test_both_ranks_end_with_identical_parameters_buffers_and_optimisers(ddp_run):
    rank0 = torch.load(ddp_run / 'dumps' / 'rank0.pt', weights_only=True)
    rank1 = torch.load(ddp_run / 'dumps' / 'rank1.pt', weights_only=True)
    assert rank0['state_dict'].keys() == rank1['state_dict'].keys()
    different = [key for key, value in rank0['state_dict'].items() if not torch.equal(value, rank1['state_dict'][key])]
    assert different == []
    optimizer0, optimizer1 = _flatten(rank0['optimizer']), _flatten(rank1['optimizer'])
    assert optimizer0.keys() == optimizer1.keys()
    assert any('exp_avg_sq' in key for key in optimizer0)
    for key, value in optimizer0.items():
        same = torch.equal(value, optimizer1[key]) if isinstance(value, torch.Tensor) else value == optimizer1[key]
        assert same, key


def test_batchnorm_statistics_were_trained_and_synchronised(ddp_run):
    state = torch.load(ddp_run / 'dumps' / 'rank1.pt', weights_only=True)['state_dict']
    counters = {key: value for key, value in state.items()
                if key.startswith('branch_') and key.endswith('num_batches_tracked')}
    assert counters, 'the branches have BatchNorm layers'
    # 2 epochs of NUM_TRAIN samples, batch 2 per process, 2 processes.
    iterations = 2 * NUM_TRAIN // (2 * 2)
    assert {int(value) for value in counters.values()} == {iterations}
    running_means = [value for key, value in state.items()
                     if key.startswith('branch_') and key.endswith('running_mean')]
    assert all(value.abs().sum() > 0 for value in running_means)
    assert bool(state['aggregator.fitted'])


def test_saved_checkpoint_equals_the_state_of_rank_1(ddp_run):
    checkpoint = load_from_local_safely(str(ddp_run / 'work' / 'epoch_2.pth'))
    rank1 = torch.load(ddp_run / 'dumps' / 'rank1.pt', weights_only=True)['state_dict']
    wrapper_keys = [key for key in checkpoint['state_dict'] if '.module.' in key]
    assert wrapper_keys == [], 'the checkpoint must hold the keys of the unwrapped model, loadable in 1 process'
    assert checkpoint['state_dict'].keys() == rank1.keys()
    assert all(torch.equal(value, rank1[key]) for key, value in checkpoint['state_dict'].items())
    assert set(checkpoint['optimizer']) == {'rgb', 'depth'}


def test_run_was_distributed_without_unused_parameter_errors(ddp_run):
    output = (ddp_run / 'train_output.txt').read_text()
    assert 'Distributed training: True' in output
    assert "'backend': 'gloo'" in output or "backend='gloo'" in output
    assert 'unused parameters' not in output.lower()
    assert 'terminate called' not in output
    assert 'Epoch(train) [2][2/2]' in output


def test_buffers_are_synchronised_before_the_validation_statistics_and_the_checkpoint(ddp_run):
    output = (ddp_run / 'train_output.txt').read_text()
    section = output.split('after_train_epoch:\n', 1)[1].split('-----', 1)[0]
    hooks = [line.split(')')[1].strip() for line in section.splitlines() if line.startswith('(')]
    # the checkpoint is written before the statistics (a failure there loses no training), then re-saved with them
    assert hooks.index('SyncBuffersHook') < hooks.index('CheckpointHook') < hooks.index('ValidationStatisticsHook')
