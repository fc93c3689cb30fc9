"""tools/analysis_tools/benchmark_ddp.py measures 1 and 2 processes on the tiny config in one run."""
import json

import pytest
from process_helpers import load_tool, python_tool, run_ok
from tiny_config import write_tiny_config

benchmark = load_tool('analysis_tools/benchmark_ddp.py')


@pytest.mark.slow
def test_measures_one_and_two_processes(data_root, tmp_path):
    config = write_tiny_config(tmp_path / 'tiny_benchmark.py', data_root)
    out = tmp_path / 'throughput.json'
    finished = run_ok(python_tool('analysis_tools/benchmark_ddp.py', str(config), '--processes', '1', '2', '--iters',
                                  '2', '--warmup', '1', '--out', str(out)), tmp_path)
    results = json.loads(out.read_text())
    assert [result['processes'] for result in results] == [1, 2]
    for result in results:
        assert result['batch_per_process'] == 2 and result['iters'] == 2 and result['threads_per_process'] == 1
        assert result['images'] == 2 * 2 * result['processes']
        assert result['seconds'] > 0
        assert abs(result['images_per_second'] - result['images'] / result['seconds']) < 1e-9
    assert finished.output.splitlines()[0].split() == ['processes', 'threads/process', 'batch/process', 'images/s',
                                                       'speed-up', 'efficiency']


def test_speedup_and_efficiency_are_relative_to_the_first_measurement():
    results = [dict(processes=1, threads_per_process=1, batch_per_process=8, images_per_second=10.0),
               dict(processes=2, threads_per_process=1, batch_per_process=8, images_per_second=15.0)]
    lines = benchmark.format_results(results).splitlines()
    assert lines[1].split() == ['1', '1', '8', '10.00', '1.00', '100%']
    assert lines[2].split() == ['2', '1', '8', '15.00', '1.50', '75%']
