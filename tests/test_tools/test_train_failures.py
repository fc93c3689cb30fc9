"""tools/train.py ends a run stopped by a full disk or a dead data-loader worker with a clear message."""
import errno

from process_helpers import load_tool, python_tool, run_all
from tiny_config import write_tiny_config

from mmad.utils import find_last_checkpoint, load_from_local_safely

train_tool = load_tool('train.py')

DISK_FULL = """default_hooks = dict(logger=dict(interval=1), checkpoint=dict(
    interval=1, backend_args=dict(backend='disk_full_on_second_checkpoint')))"""
WORKER_KILLER = """train_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=False, dataset=dict(
    type='WorkerKillingMVTec3DDataset', counter_file='{counter}', kill_after=8, data_root=data_root,
    category=category, pipeline=train_pipeline))"""


def test_disk_full_and_dead_worker_end_with_a_message_and_an_intact_checkpoint(data_root, tmp_path):
    disk_config = write_tiny_config(tmp_path / 'disk_full.py', data_root, extra=DISK_FULL)
    worker_config = write_tiny_config(tmp_path / 'worker_death.py', data_root,
                                      extra=WORKER_KILLER.format(counter=tmp_path / 'loaded_samples'))
    disk_result, worker_result = run_all([
        (python_tool('train.py', str(disk_config), '--work-dir', str(tmp_path / 'disk')), tmp_path, None),
        (python_tool('train.py', str(worker_config), '--work-dir', str(tmp_path / 'worker')), tmp_path, None)])

    first = tmp_path / 'disk' / 'epoch_1.pth'
    assert disk_result.returncode == 1, disk_result.output[-6000:]
    assert 'Training stopped: the disk is full' in disk_result.output
    assert str(tmp_path / 'disk' / 'epoch_2.pth') in disk_result.output
    assert f'The last good checkpoint is {first}' in disk_result.output
    assert '--resume' in disk_result.output
    assert not (tmp_path / 'disk' / 'epoch_2.pth').exists()
    assert [path.name for path in (tmp_path / 'disk').iterdir() if path.name.endswith('.tmp')] == []
    assert load_from_local_safely(str(first))['meta']['epoch'] == 1

    assert worker_result.returncode == 1, worker_result.output[-6000:]
    assert 'Training stopped: a data-loader worker process died' in worker_result.output
    assert 'killed by signal' in worker_result.output or 'exited unexpectedly' in worker_result.output
    assert f"The last good checkpoint is {tmp_path / 'worker' / 'epoch_1.pth'}" in worker_result.output
    assert find_last_checkpoint(str(tmp_path / 'worker')) == str(tmp_path / 'worker' / 'epoch_1.pth')


def test_failure_found_behind_wrapping_exceptions(tmp_path):
    try:
        try:
            raise OSError(errno.EDQUOT, 'Disk quota exceeded', '/data/run/epoch_3.pth')
        except OSError as error:
            raise RuntimeError('saving the checkpoint failed') from error
    except RuntimeError as wrapped:
        message = train_tool.describe_training_failure(wrapped, str(tmp_path), 'configs/x.py')
    assert message.startswith('Training stopped: the disk is full')
    assert '/data/run/epoch_3.pth' in message
    assert f'No checkpoint had been written to {tmp_path} yet' in message


def test_torch_writer_error_counts_as_full_disk(tmp_path):
    error = RuntimeError('[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file '
                         'data/12: file write failed: No space left on device')
    assert 'the disk is full' in train_tool.describe_training_failure(error, str(tmp_path), 'c.py')


def test_other_failures_are_not_described(tmp_path):
    assert train_tool.describe_training_failure(ValueError('bad config value'), str(tmp_path), 'c.py') is None
    assert train_tool.describe_training_failure(OSError(errno.ENOENT, 'missing'), str(tmp_path), 'c.py') is None
