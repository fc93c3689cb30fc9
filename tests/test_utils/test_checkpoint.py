import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from mmad.utils.checkpoint import (
    NotACheckpointError,
    UnsafeCheckpointError,
    load_from_local_safely,
    register_safe_checkpoint_loader,
    restore_history_buffers,
    to_safe_checkpoint,
)


def _mmengine_like_checkpoint():
    buffer = HistoryBuffer([0.5, 0.25, 0.125], [1, 1, 2])
    return {
        'meta': {'epoch': 3, 'seed': np.int64(42), 'cfg': 'model = dict()', 'dataset_meta': {'classes': ('good', )}},
        'state_dict': OrderedDict(weight=torch.arange(6.).reshape(2, 3)),
        'message_hub': {'log_scalars': OrderedDict({'train/loss': buffer}),
                        'runtime_info': {'epoch': 3, 'lr': np.float32(0.005), 'hist': np.arange(3)},
                        'resumed_keys': {'epoch': True}},
    }


def test_raw_mmengine_checkpoint_is_refused_with_clear_error(tmp_path):
    path = tmp_path / 'raw.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    with pytest.raises(UnsafeCheckpointError, match='raw.pth'):
        load_from_local_safely(str(path))


def test_sanitised_checkpoint_round_trip(tmp_path):
    path = tmp_path / 'safe.pth'
    torch.save(to_safe_checkpoint(_mmengine_like_checkpoint()), path)
    loaded = load_from_local_safely(str(path))
    assert loaded['meta']['seed'] == 42 and isinstance(loaded['meta']['seed'], int)
    assert loaded['message_hub']['runtime_info']['lr'] == pytest.approx(0.005)
    assert torch.equal(loaded['message_hub']['runtime_info']['hist'], torch.arange(3))
    assert torch.equal(loaded['state_dict']['weight'], torch.arange(6.).reshape(2, 3))
    assert isinstance(loaded['state_dict'], OrderedDict)
    assert loaded['meta']['dataset_meta']['classes'] == ('good', )
    restored = restore_history_buffers(loaded['message_hub'])
    buffer = restored['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    np.testing.assert_allclose(buffer.data[0], [0.5, 0.25, 0.125])
    np.testing.assert_allclose(buffer.data[1], [1, 1, 2])
    assert buffer.mean() == pytest.approx((0.5 + 0.25 + 0.125) / 4)


class _RunsCode:
    """A pickle payload that would create a file if it were unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_malicious_checkpoint_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_from_local_safely(str(path))
    message = str(info.value)
    assert 'evil.pth' in message and 'system' in message and 'weights_only' in message
    assert not marker.exists()


def test_mmengine_uses_the_safe_loader(tmp_path):
    register_safe_checkpoint_loader()
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'payload': _RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()
    good = tmp_path / 'good.pth'
    torch.save(to_safe_checkpoint(_mmengine_like_checkpoint()), good)
    assert _load_checkpoint(str(good), map_location='cpu')['meta']['epoch'] == 3


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_from_local_safely(str(tmp_path / 'nope.pth'))


def test_a_text_file_is_named_not_a_checkpoint(tmp_path):
    """Issue 8 case 10: a README given as the checkpoint used to raise the security alarm."""
    path = tmp_path / 'README.md'
    path.write_text('# mmad\n\nMultimodal anomaly detection.\n')
    with pytest.raises(NotACheckpointError) as info:
        load_from_local_safely(str(path))
    assert str(info.value) == (f"{path} is not a checkpoint: a text file starting with '# mmad', while a torch.save "
                               'file starts with a zip or pickle header.')
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_an_empty_file_is_named_empty(tmp_path):
    """Issue 8 case 10: a zero-byte .pth used to raise a bare EOFError."""
    path = tmp_path / 'epoch_1.pth'
    path.touch()
    with pytest.raises(NotACheckpointError, match=f'^Checkpoint {path} is empty \\(0 bytes\\): not a checkpoint'):
        load_from_local_safely(str(path))


@pytest.mark.parametrize('zip_format', [True, False])
def test_a_truncated_file_is_named_truncated(tmp_path, zip_format):
    """Issue 8 case 10: a truncated .pth used to raise torch's 'failed finding central directory'."""
    whole = tmp_path / 'whole.pth'
    torch.save(to_safe_checkpoint(_mmengine_like_checkpoint()), whole, _use_new_zipfile_serialization=zip_format)
    path = tmp_path / 'epoch_2.pth'
    path.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    with pytest.raises(NotACheckpointError) as info:
        load_from_local_safely(str(path))
    message = str(info.value)
    assert message.startswith(f'Checkpoint {path} is truncated: ') and '\n' not in message
    assert 'central directory' not in message or 'zip archive without its end' in message
