"""find_last_checkpoint: the pointer file when it names a whole checkpoint, else the newest whole checkpoint."""
import torch

from mmad.utils import find_last_checkpoint, is_complete_checkpoint


def _checkpoint(path, epoch):
    torch.save({'meta': {'epoch': epoch}}, path)
    return str(path)


def test_pointer_names_the_checkpoint(tmp_path):
    first, second = _checkpoint(tmp_path / 'epoch_1.pth', 1), _checkpoint(tmp_path / 'epoch_2.pth', 2)
    (tmp_path / 'last_checkpoint').write_text(first)
    assert find_last_checkpoint(str(tmp_path)) == first
    (tmp_path / 'last_checkpoint').write_text(second + '\n')
    assert find_last_checkpoint(str(tmp_path)) == second


def test_empty_pointer_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    _checkpoint(tmp_path / 'epoch_2.pth', 2)
    tenth = _checkpoint(tmp_path / 'epoch_10.pth', 10)
    (tmp_path / 'last_checkpoint').write_text('')
    assert find_last_checkpoint(str(tmp_path)) == tenth


def test_truncated_checkpoint_is_skipped(tmp_path):
    good = _checkpoint(tmp_path / 'epoch_1.pth', 1)
    data = (tmp_path / 'epoch_1.pth').read_bytes()
    (tmp_path / 'epoch_2.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    assert not is_complete_checkpoint(str(tmp_path / 'epoch_2.pth'))
    assert find_last_checkpoint(str(tmp_path)) == good


def test_moved_work_dir_uses_the_pointer_file_name(tmp_path):
    moved = _checkpoint(tmp_path / 'iter_400.pth', 1)
    _checkpoint(tmp_path / 'iter_500.pth', 1)
    (tmp_path / 'last_checkpoint').write_text('/old/cluster/path/iter_400.pth')
    assert find_last_checkpoint(str(tmp_path)) == moved


def test_no_checkpoint(tmp_path):
    assert find_last_checkpoint(str(tmp_path)) is None
    assert find_last_checkpoint(str(tmp_path / 'missing')) is None
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    assert find_last_checkpoint(str(tmp_path)) is None
