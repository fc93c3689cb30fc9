"""tools/analysis_tools/benchmark_run_setup.py: both variants train and test the same model; mmad's lays each config
out once."""
import json

import pytest
from process_helpers import load_tool
from tiny_config import write_tiny_config

benchmark = load_tool('analysis_tools/benchmark_run_setup.py')


@pytest.mark.slow
def test_mmad_lays_out_each_config_once_and_scores_as_the_baseline(data_root, tmp_path):
    config = write_tiny_config(tmp_path / 'tiny_setup.py', data_root)
    out = tmp_path / 'setup.json'
    result = benchmark.main([str(config), '--data-root', str(data_root), '--category', 'synthetic', '--repeats', '1',
                             '--work-dir', str(tmp_path / 'runs'), '--out', str(out)])
    assert json.loads(out.read_text()) == result
    baseline, mmad = result['variants']['mmengine_defaults'], result['variants']['mmad']
    # One layout for the training's config and one for the test's; the baseline lays each out at every use.
    assert mmad['layouts_per_run'] == [2]
    assert baseline['layouts_per_run'][0] >= 8
    assert result['same_results'] and baseline['fused_i_auroc'] == mmad['fused_i_auroc']
    assert all(0.0 <= value <= 1.0 for value in mmad['fused_i_auroc'])
    assert result['cpu_ratio'] == round(mmad['cpu_s'] / baseline['cpu_s'], 3)
    assert sorted(path.name for path in (tmp_path / 'runs').iterdir()) == ['mmad_0', 'mmengine_defaults_0']
    assert all((tmp_path / 'runs' / name / 'metrics.json').is_file() for name in ('mmad_0', 'mmengine_defaults_0'))


def test_variants_scoring_differently_end_with_an_error_after_writing_the_results(data_root, tmp_path, monkeypatch):
    """Timings of two computations that disagree are not a speed-up: exit non-zero, naming both scores."""
    def run_once(tools, variant, config, data, options, loaders, work_dir):
        assert data == ['--data-root', str(data_root), '--category', 'synthetic']
        assert options[:len(benchmark.SMALL_RUN)] == list(benchmark.SMALL_RUN)
        return dict(wall_s=1.0, cpu_s=1.0, layouts=1, fused_i_auroc=0.5 if variant == 'mmad' else 0.75)
    monkeypatch.setattr(benchmark, 'run_once', run_once)
    monkeypatch.setattr(benchmark, 'load_tool', lambda name: None)
    out = tmp_path / 'setup.json'
    with pytest.raises(SystemExit, match=r"scored differently \(fused I-AUROC \[0.75\] with mmengine's defaults, "
                                         r"\[0.5\] with mmad's\)"):
        benchmark.main([str(write_tiny_config(tmp_path / 'tiny.py', data_root)), '--data-root', str(data_root),
                        '--category', 'synthetic', '--repeats', '2', '--work-dir', str(tmp_path), '--out', str(out)])
    assert json.loads(out.read_text())['same_results'] is False
