"""A fresh training run does not mix its checkpoints with another run's: refused unless --resume or --overwrite."""
import json

import pytest
from process_helpers import load_tool
from tiny_config import earlier_run, write_tiny_config

from mmad.utils import find_last_checkpoint, load_from_local_safely, previous_run_files

train_tool = load_tool('train.py')


def test_fresh_run_into_a_work_dir_with_checkpoints_is_refused(data_root, tmp_path):
    work_dir = earlier_run(tmp_path / 'work')
    config = write_tiny_config(tmp_path / 'tiny.py', data_root)
    with pytest.raises(SystemExit) as exited:
        train_tool.main([str(config), '--work-dir', str(work_dir)])
    message = str(exited.value.code)
    assert message.startswith(f'train.py: error: {work_dir} holds the checkpoints of an earlier run (epoch_2.pth, '
                              'epoch_3.pth, last_checkpoint)')
    assert '--resume' in message and '--overwrite' in message and 'another --work-dir' in message
    assert (work_dir / 'epoch_3.pth').read_bytes() == b'earlier run'
    assert previous_run_files(str(tmp_path / 'empty')) == []


def test_overwrite_deletes_the_earlier_checkpoints_before_training(tiny_run):
    """The session's tiny run trained 2 epochs with --overwrite into a work dir holding an earlier run's files."""
    work_dir, output = tiny_run['train_dir'], tiny_run['train_output']
    assert f"--overwrite: deleted the earlier run's epoch_2.pth, epoch_3.pth, last_checkpoint in {work_dir}" in output
    assert sorted(path.name for path in work_dir.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    assert find_last_checkpoint(str(work_dir)) == str(work_dir / 'epoch_2.pth')
    assert load_from_local_safely(str(work_dir / 'epoch_2.pth'))['meta']['epoch'] == 2
    assert (work_dir / '20260101_000000').is_dir()


def test_console_log_is_one_short_line_per_interval_and_the_scalar_log_keeps_every_loss(tiny_run):
    work_dir, output = tiny_run['train_dir'], tiny_run['train_output']
    lines = [line for line in output.splitlines() if 'Epoch(train) [1]' in line]
    assert len(lines) == 4  # 8 samples, batch 2, logger interval 1
    assert all('  loss: ' in line and 'rgb.loss: ' in line and 'depth.loss: ' in line for line in lines)
    assert not any('loss_decoder' in line or 'loss_filter' in line for line in lines)
    assert 'will be deprecated' not in output and 'is the alias of' not in output
    [scalars] = work_dir.glob('*/vis_data/scalars.json')
    first = json.loads(scalars.read_text().splitlines()[0])
    assert {'loss', 'rgb.loss', 'rgb.loss_decoder', 'rgb.loss_filter', 'depth.loss_output'} <= set(first)
