"""A run SIGKILLed mid-epoch and resumed with --resume ends exactly where an uninterrupted run ends."""
import signal

import pytest
import torch
from process_helpers import python_tool, run, run_ok, tool_env
from tiny_config import NUM_TRAIN, write_tiny_config

from mmad.utils import find_last_checkpoint, load_from_local_safely

pytestmark = pytest.mark.slow  # two tools/train.py processes

ITERS_PER_EPOCH = NUM_TRAIN // 2


def _assert_equal(left, right, path='checkpoint'):
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and left.dtype == right.dtype, path
        assert torch.equal(left, right), path
    elif isinstance(left, dict):
        assert left.keys() == right.keys(), path
        for key in left:
            _assert_equal(left[key], right[key], f'{path}.{key}')
    elif isinstance(left, list | tuple):
        assert len(left) == len(right), path
        for index, (a, b) in enumerate(zip(left, right)):
            _assert_equal(a, b, f'{path}[{index}]')
    else:
        assert left == right, path


def test_killed_run_resumes_to_the_uninterrupted_state(data_root, tiny_run, tmp_path):
    """The uninterrupted reference: the session's tiny run (the same config, 2 epochs, in one go)."""
    config = write_tiny_config(tmp_path / 'tiny.py', data_root)
    # SIGKILL in epoch 2, after its second iteration.
    kill_at = ITERS_PER_EPOCH + 2
    killed_config = write_tiny_config(tmp_path / 'tiny_killed.py', data_root,
                                      extra_hooks=(f"dict(type='SigkillAtIterationHook', iteration={kill_at})", ))
    killed_result = run(python_tool('train.py', str(killed_config), '--work-dir', str(tmp_path / 'run')), tmp_path)
    assert killed_result.returncode == -signal.SIGKILL, killed_result.output[-6000:]
    assert f'Epoch(train) [2][1/{ITERS_PER_EPOCH}]' in killed_result.output
    assert find_last_checkpoint(str(tmp_path / 'run')) == str(tmp_path / 'run' / 'epoch_1.pth')
    assert not (tmp_path / 'run' / 'epoch_2.pth').exists()

    resumed = run_ok(python_tool('train.py', str(config), '--work-dir', str(tmp_path / 'run'), '--resume'), tmp_path,
                     tool_env())
    assert 'resumed epoch: 1' in resumed.output
    assert f'Epoch(train) [2][1/{ITERS_PER_EPOCH}]' in resumed.output
    assert 'Epoch(train) [1]' not in resumed.output

    expected = load_from_local_safely(str(tiny_run['checkpoint']))
    actual = load_from_local_safely(str(tmp_path / 'run' / 'epoch_2.pth'))
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        _assert_equal(actual[key], expected[key], key)
    assert (actual['meta']['epoch'], actual['meta']['iter']) == (2, 2 * ITERS_PER_EPOCH)
    assert set(actual['optimizer']) == {'rgb', 'depth'}
    assert 'exp_avg' in actual['optimizer']['rgb']['state'][0]
