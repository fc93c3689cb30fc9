"""tools/model_converters/publish_model.py: training state stripped, hash in the name, the result tests the same."""
import hashlib
import json

import pytest
from process_helpers import python_tool, run_ok

from mmad.utils import load_from_local_safely

pytestmark = pytest.mark.slow  # publish_model.py and tools/test.py processes


def test_published_checkpoint_is_small_hashed_and_tests_the_same(tiny_run, tmp_path):
    """The last checkpoint of the session's tiny run, published, then tested like the original was in that run."""
    original = tiny_run['checkpoint']
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

    run_ok(python_tool('test.py', str(tiny_run['config']), str(published), '--work-dir', str(tmp_path / 'test')),
           tmp_path)
    metrics = [json.loads((folder / 'metrics.json').read_text())
               for folder in (tiny_run['test_dir'], tmp_path / 'test')]
    assert {key: metrics[0][key] for key in ('fused', 'rgb', 'depth')} == {
        key: metrics[1][key] for key in ('fused', 'rgb', 'depth')}
