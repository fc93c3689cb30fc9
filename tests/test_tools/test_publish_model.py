"""tools/model_converters/publish_model.py: training state stripped, hash in the name, the result tests the same."""
import hashlib
import json

from process_helpers import python_tool, run_all, run_ok
from tiny_config import write_tiny_config

from mmad.utils import load_from_local_safely

ONE_EPOCH = 'train_cfg = dict(max_epochs=1)'


def test_published_checkpoint_is_small_hashed_and_tests_the_same(data_root, tmp_path):
    config = write_tiny_config(tmp_path / 'tiny.py', data_root, extra=ONE_EPOCH)
    run_ok(python_tool('train.py', str(config), '--work-dir', str(tmp_path / 'train')), tmp_path)
    original = tmp_path / 'train' / 'epoch_1.pth'

    finished = run_ok(python_tool('model_converters/publish_model.py', str(original), str(tmp_path / 'crd_tiny.pth')),
                      tmp_path)
    published = list(tmp_path.glob('crd_tiny-*.pth'))
    assert len(published) == 1 and [path.name for path in tmp_path.glob('*.unhashed.pth')] == []
    published = published[0]
    digest = hashlib.sha256(published.read_bytes()).hexdigest()
    assert published.name == f'crd_tiny-{digest[:8]}.pth'
    assert str(published) in finished.output

    before, after = load_from_local_safely(str(original)), load_from_local_safely(str(published))
    assert {'optimizer', 'message_hub'} <= set(before)
    assert set(after) == set(before) - {'optimizer', 'param_schedulers', 'message_hub'}
    assert after['meta'] == before['meta']
    assert after['meta']['mmad']['modalities'] == ['rgb', 'depth']
    assert after['meta']['mmad']['teacher']['model_name'] == 'resnet18'
    assert bool(after['state_dict']['aggregator.fitted'])
    assert after['state_dict'].keys() == before['state_dict'].keys()
    assert all((value == before['state_dict'][key]).all() for key, value in after['state_dict'].items())
    assert published.stat().st_size < original.stat().st_size / 2  # Adam's two moments are gone

    results = run_all([(python_tool('test.py', str(config), str(path), '--work-dir', str(tmp_path / name)), tmp_path,
                        None) for name, path in (('test_original', original), ('test_published', published))])
    assert [result.returncode for result in results] == [0, 0], results[1].output[-6000:]
    metrics = [json.loads((tmp_path / name / 'metrics.json').read_text())
               for name in ('test_original', 'test_published')]
    assert {key: metrics[0][key] for key in ('fused', 'rgb', 'depth')} == {
        key: metrics[1][key] for key in ('fused', 'rgb', 'depth')}
