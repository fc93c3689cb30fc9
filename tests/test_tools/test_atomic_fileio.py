"""Atomic writes: a failing write leaves the old file intact and no temporary file; checkpoints use them."""
import errno
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint
from process_helpers import REPO, tool_env

from mmad.utils import AtomicLocalBackend, atomic_open, is_complete_checkpoint, remove_temp_files
from mmad.utils.fileio import temp_path_for

FILE_SIZE_LIMIT_WRITE = """
import resource, signal, sys
from mmad.utils import atomic_open
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    with atomic_open(sys.argv[1], 'wb') as file:
        file.write(b'n' * 3000)
        file.flush()
        file.write(b'n' * 3000)
except OSError as error:
    print('errno', error.errno)
"""


def _files(folder):
    return sorted(path.name for path in folder.iterdir())


def test_write_replaces_the_file(tmp_path):
    target = tmp_path / 'sub' / 'state.json'
    with atomic_open(target, 'w', encoding='utf-8') as file:
        file.write('first')
    with atomic_open(target, 'w', encoding='utf-8') as file:
        file.write('second')
        assert target.read_text() == 'first', 'the target changes only when the block ends'
    assert target.read_text() == 'second'
    assert _files(target.parent) == ['state.json']


def test_write_failing_midway_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / 'epoch_1.pth'
    target.write_bytes(b'old checkpoint')
    with pytest.raises(OSError, match='No space left on device'):
        with atomic_open(target, 'wb') as file:
            file.write(b'half of the new')
            assert os.path.exists(temp_path_for(target))
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert target.read_bytes() == b'old checkpoint'
    assert _files(tmp_path) == ['epoch_1.pth']


def test_real_write_error_from_the_kernel_keeps_the_old_file(tmp_path):
    target = tmp_path / 'big.bin'
    target.write_bytes(b'old')
    result = subprocess.run([sys.executable, '-c', FILE_SIZE_LIMIT_WRITE, str(target)], cwd=REPO, env=tool_env(),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.strip() == f'errno {errno.EFBIG}', result.stderr
    assert target.read_bytes() == b'old'
    assert _files(tmp_path) == ['big.bin']


def test_only_whole_file_modes():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'ab'"):
        with atomic_open('x', 'ab'):
            pass


def test_backend_is_registered_and_writes_loadable_checkpoints(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text('text', tmp_path / 'a' / 'note.txt')
    assert (tmp_path / 'a' / 'note.txt').read_text() == 'text'
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'state_dict': {'w': torch.arange(3.)}}, path, backend_args=dict(backend='atomic_local'))
    assert is_complete_checkpoint(path)
    assert torch.equal(torch.load(path, weights_only=True)['state_dict']['w'], torch.arange(3.))
    assert _files(tmp_path) == ['a', 'epoch_1.pth']


def test_default_runtime_checkpoints_are_atomic_and_buffers_synchronised():
    cfg = Config.fromfile(str(REPO / 'configs' / 'crd' / 'crd_demo_synthetic.py'))
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend='atomic_local')
    assert cfg.default_hooks.checkpoint.max_keep_ckpts >= 2
    assert cfg.default_hooks.sync_buffers == dict(type='SyncBuffersHook')
    assert cfg.model_wrapper_cfg.type == 'mmad.BranchDistributedDataParallel' and cfg.model_wrapper_cfg.sync_bn is None
    assert cfg.model_wrapper_cfg.broadcast_buffers is True


def test_leftover_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    leftover = tmp_path / f'.epoch_2.pth.{dead.pid}.tmp'
    leftover.write_bytes(b'partial')
    mine = tmp_path / f'.epoch_3.pth.{os.getpid()}.tmp'
    mine.write_bytes(b'being written')
    (tmp_path / 'epoch_1.pth').write_bytes(b'kept')
    (tmp_path / '.hidden.tmp').write_bytes(b'not ours')
    assert remove_temp_files(tmp_path) == [str(leftover)]
    assert _files(tmp_path) == sorted([mine.name, '.hidden.tmp', 'epoch_1.pth'])
    assert remove_temp_files(tmp_path / 'missing') == []
