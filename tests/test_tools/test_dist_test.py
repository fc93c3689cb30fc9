"""tools/test.py in 1 process and tools/dist_test.sh in 2 give the same metrics over the whole (odd-sized) split."""
import json
import math

import numpy as np
import pytest
from process_helpers import TOOLS, free_port, python_tool, run_all, tool_env
from tiny_config import NUM_TEST, write_tiny_config

pytestmark = pytest.mark.slow  # tools/test.py and a 2-process tools/dist_test.sh

RECORDING_METRIC = "test_evaluator = dict(type='RecordingADMetric', integration_limits=(0.3, ), out_dir='{out_dir}')"


@pytest.fixture(scope='module')
def one_and_two_process_results(ddp_run, data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('dist_test')
    checkpoint = str(ddp_run / 'work' / 'epoch_2.pth')
    commands, out_dirs = [], {}
    for processes in (1, 2):
        out_dirs[processes] = out_dir = folder / f'{processes}proc'
        config = write_tiny_config(folder / f'test_{processes}proc.py', data_root,
                                   extra=RECORDING_METRIC.format(out_dir=out_dir))
        if processes == 1:
            command = python_tool('test.py', str(config), checkpoint, '--work-dir', str(out_dir))
        else:
            command = ['bash', str(TOOLS / 'dist_test.sh'), str(config), checkpoint, '2', '--work-dir', str(out_dir)]
        commands.append((command, folder, tool_env(PORT=str(free_port()))))
    results = {}
    for processes, finished in zip((1, 2), run_all(commands)):
        assert finished.returncode == 0, finished.output[-6000:]
        out_dir = out_dirs[processes]
        results[processes] = dict(output=finished.output, samples=np.load(out_dir / 'evaluated_samples.npz'),
                                  metrics=json.loads((out_dir / 'metrics.json').read_text()))
    return results


def test_checkpoint_loaded_completely_in_both(one_and_two_process_results):
    for result in one_and_two_process_results.values():
        assert 'do not match exactly' not in result['output']
        assert 'Load checkpoint from' in result['output']


def test_every_sample_evaluated_exactly_once(one_and_two_process_results):
    assert NUM_TEST % 2 == 1, 'an odd count makes the sampler pad the second rank'
    names = {processes: list(result['samples']['names']) for processes, result in one_and_two_process_results.items()}
    assert len(names[1]) == len(names[2]) == NUM_TEST
    assert len(set(names[2])) == NUM_TEST
    assert set(names[1]) == set(names[2])


def test_maps_and_scores_agree(one_and_two_process_results):
    one, two = (one_and_two_process_results[processes]['samples'] for processes in (1, 2))
    order = {name: index for index, name in enumerate(two['names'])}
    permutation = [order[name] for name in one['names']]
    np.testing.assert_allclose(two['maps'][permutation], one['maps'], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two['scores'][permutation], one['scores'], rtol=0, atol=1e-5)


def test_metrics_agree(one_and_two_process_results):
    one, two = (one_and_two_process_results[processes]['metrics'] for processes in (1, 2))
    flat = {}
    for processes, metrics in ((1, one), (2, two)):
        flat[processes] = {f'{source}/{subset}/{name}': value for source, subsets in metrics.items()
                           if source not in ('notes', 'run')
                           for subset, values in subsets.items() for name, value in values.items()}
    assert flat[1].keys() == flat[2].keys()
    assert 'fused/all/I-AUROC' in flat[1] and 'depth/dent/AUPRO@0.3' in flat[1]
    for key, value in flat[1].items():
        if value is None or math.isnan(value):
            assert flat[2][key] is None or math.isnan(flat[2][key]), key
        else:
            assert abs(value - flat[2][key]) <= 1e-4, key
