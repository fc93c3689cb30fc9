"""The tools end a run stopped by a full disk or a failed or dead data-loader worker with a clear message."""
import errno
import glob
import os.path as osp
import shutil
import signal

import pytest
from mmengine.runner import Runner
from process_helpers import load_tool, python_tool, run_all
from tiny_config import write_tiny_config
from torch._utils import ExceptionWrapper

from mmad.utils import describe_environment_failure, find_last_checkpoint, load_from_local_safely

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')

DISK_FULL = """default_hooks = dict(logger=dict(interval=1), checkpoint=dict(
    interval=1, backend_args=dict(backend='disk_full_on_second_checkpoint')))"""
TWO_WORKERS = """train_dataloader = dict(batch_size=2, num_workers=2, persistent_workers=False, dataset=dict(
    data_root=data_root, category=category, pipeline=train_pipeline))"""
WORKER_KILLER = """train_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=False, dataset=dict(
    type='WorkerKillingMVTec3DDataset', counter_file='{counter}', kill_after=8, data_root=data_root,
    category=category, pipeline=train_pipeline))"""


@pytest.mark.slow
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


def worker_exception(error: Exception) -> Exception:
    """``error`` as torch's data loader re-raises it in the main process when a worker's sample loading raised it."""
    try:
        try:
            raise error
        except type(error):
            wrapper = ExceptionWrapper(where='in DataLoader worker process 1')
        wrapper.reraise()
    except type(error) as reraised:
        return reraised


def test_worker_exception_is_reported_as_such_and_a_worker_death_as_one(tmp_path):
    corrupt = worker_exception(ValueError('/data/bagel/train/good/rgb/003.png is not a readable PNG image: the file '
                                          'is corrupt, truncated or of another format'))
    message = describe_environment_failure(corrupt)
    assert message.startswith('data-loader worker 1 failed while loading a sample: ValueError: /data/bagel/train/good/'
                              'rgb/003.png is not a readable PNG image')
    assert 'out-of-memory' not in message and 'died' not in message
    death = RuntimeError(f'DataLoader worker (pid 4242) is killed by signal: {signal.strsignal(signal.SIGKILL)}.')
    assert 'out-of-memory killer' in describe_environment_failure(death)
    assert 'a data-loader worker process died: DataLoader worker (pid 4242)' in describe_environment_failure(death)


@pytest.mark.slow
def test_corrupt_file_read_in_a_worker_is_named(data_root, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(data_root, data)
    corrupt = data / 'synthetic' / 'train' / 'good' / 'rgb' / '003.png'
    corrupt.write_bytes(b'not a png')
    config = write_tiny_config(tmp_path / 'two_workers.py', data, extra=TWO_WORKERS)
    [result] = run_all([(python_tool('train.py', str(config), '--work-dir', str(tmp_path / 'work')), tmp_path, None)])
    assert result.returncode == 1, result.output[-6000:]
    assert 'Training stopped: data-loader worker ' in result.output
    assert f'failed while loading a sample: ValueError: {corrupt} is not a readable PNG image' in result.output
    assert 'out-of-memory' not in result.output
    assert f'No checkpoint had been written to {tmp_path / "work"} yet' in result.output


def test_test_tool_on_a_full_disk_ends_with_a_message(data_root, tmp_path, monkeypatch):
    config = write_tiny_config(tmp_path / 'tiny.py', data_root)
    checkpoint = tmp_path / 'epoch_2.pth'
    checkpoint.write_bytes(b'')
    metrics = tmp_path / 'work' / 'metrics.json'

    def full_disk(runner):
        raise OSError(errno.ENOSPC, 'No space left on device', str(metrics))

    monkeypatch.setattr(Runner, 'test', full_disk)
    with pytest.raises(SystemExit) as exited:
        test_tool.main([str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work')])
    assert exited.value.code == 1
    [log] = glob.glob(osp.join(tmp_path, 'work', '*', '*.log'))
    assert (f'Testing stopped: the disk is full (or a quota or file-size limit was reached) while writing {metrics} '
            '(No space left on device)') in open(log).read()
