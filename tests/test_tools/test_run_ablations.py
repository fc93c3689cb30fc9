"""tools/analysis_tools/run_ablations.py and configs/crd_ablations/: every paper ablation row has a config with the
intended switches; two rows train and test for one epoch on tiny data and land in one table."""
import csv
import sys

import pytest
from mmengine.config import Config
from process_helpers import REPO, load_tool

from mmad.datasets.synthetic import make_synthetic_mvtec3d

ABLATIONS = REPO / 'configs' / 'crd_ablations'
run_ablations = load_tool('analysis_tools/run_ablations.py')

# config -> (branches, crossmodal filter, crossmodal amplifier, BP stride, IBP expansion, aggregator)
ROWS = {
    'crd_ablation_full': (None, True, True, 32, 2, 'NormalizedSum'),
    'crd_ablation_single_rgb': (('rgb', ), False, False, 32, 2, 'NormalizedSum'),
    'crd_ablation_single_rgb_cfca': (('rgb', ), True, True, 32, 2, 'NormalizedSum'),
    'crd_ablation_single_depth': (('depth', ), False, False, 32, 2, 'NormalizedSum'),
    'crd_ablation_single_depth_cfca': (('depth', ), True, True, 32, 2, 'NormalizedSum'),
    'crd_ablation_mbd': (None, False, False, 32, 2, 'NormalizedSum'),
    'crd_ablation_cf_only': (None, True, False, 32, 2, 'NormalizedSum'),
    'crd_ablation_ca_only': (None, False, True, 32, 2, 'NormalizedSum'),
    'crd_ablation_bp_identity': (None, True, False, None, 2, 'NormalizedSum'),
    'crd_ablation_bp_stride16': (None, True, False, 16, 2, 'NormalizedSum'),
    'crd_ablation_bp_stride64': (None, True, False, 64, 2, 'NormalizedSum'),
    'crd_ablation_ibp_identity': (None, False, True, 32, None, 'NormalizedSum'),
    'crd_ablation_ibp_x4': (None, False, True, 32, 4, 'NormalizedSum'),
    'crd_ablation_agg_sum': (None, True, True, 32, 2, 'Sum'),
    'crd_ablation_agg_product': (None, True, True, 32, 2, 'Product'),
}


def test_every_ablation_row_has_a_config_with_its_switches():
    assert sorted(path.stem for path in ABLATIONS.glob('*.py')) == sorted(ROWS)
    for name, expected in ROWS.items():
        model = Config.fromfile(ABLATIONS / f'{name}.py').model
        found = (model.get('branches'), model.crossmodal_filter, model.crossmodal_amplifier,
                 model.bottleneck.bottleneck_stride, model.amplifier.expansion, model.aggregator.type)
        assert found == expected, name
        assert model.aggregator == dict(type=expected[-1])


def test_jobs_pass_data_root_and_category_to_both_tools(tmp_path):
    configs = [str(ABLATIONS / 'crd_ablation_mbd.py'), str(ABLATIONS / 'crd_ablation_cf_only.py')]
    jobs = run_ablations.build_ablation_jobs(configs, str(tmp_path), '/data', 'bagel', ['train_cfg.max_epochs=1'])
    assert [job.method for job in jobs] == ['crd_ablation_mbd', 'crd_ablation_cf_only']
    assert all(job.category == 'bagel' for job in jobs)
    train_all = sys.modules['train_all']
    command = train_all.train_command(jobs[0])
    assert command[2:] == [configs[0], '--work-dir', str(tmp_path / 'crd_ablation_mbd'), '--data-root', '/data',
                           '--category', 'bagel', '--cfg-options', 'train_cfg.max_epochs=1']
    assert train_all.test_command(jobs[0], 'x.pth')[3:9] == ['x.pth', '--work-dir', jobs[0].work_dir, '--data-root',
                                                               '/data', '--category']
    with pytest.raises(ValueError, match="two configs are named 'crd_ablation_mbd'"):
        run_ablations.build_ablation_jobs([configs[0], configs[0]], str(tmp_path))


@pytest.mark.slow
def test_two_rows_train_test_and_tabulate(tmp_path, capsys):
    data_root = tmp_path / 'data'
    make_synthetic_mvtec3d(data_root, 'tiny', height=64, width=64, num_train=4, num_val=2, num_test_per_defect=2,
                           defect_types=('color', ))
    work_dir = tmp_path / 'ablations'
    configs = [str(ABLATIONS / 'crd_ablation_single_rgb.py'), str(ABLATIONS / 'crd_ablation_mbd.py')]
    assert run_ablations.main([*configs, '--data-root', str(data_root), '--category', 'tiny', '--work-dir',
                               str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
                               'default_hooks.checkpoint.interval=1']) == 0
    with open(work_dir / 'ablations.csv') as file:
        rows = list(csv.DictReader(file))
    columns = ['config', 'wall_s'] + [f'{source} {metric}' for source in ('fused', 'rgb', 'depth')
                                      for metric in ('I-AUROC', 'P-AUROC', 'AUPRO@0.3')]
    assert list(rows[0]) == columns
    assert [row['config'] for row in rows] == ['crd_ablation_single_rgb', 'crd_ablation_mbd']
    assert all(float(row['wall_s']) > 0 for row in rows)
    assert [rows[0][f'depth {metric}'] for metric in ('I-AUROC', 'P-AUROC', 'AUPRO@0.3')] == ['', '', '']
    values = [float(row[column]) for row in rows for column in columns[2:] if row[column]]
    assert len(values) == 6 + 9 and all(0.0 <= value <= 1.0 for value in values)
    markdown = (work_dir / 'ablations.md').read_text().splitlines()
    assert markdown[0] == '| ' + ' | '.join(columns) + ' |'
    assert markdown[2].startswith('| crd_ablation_single_rgb | ') and markdown[2].count(' - ') == 3
    assert (work_dir / 'crd_ablation_mbd' / 'metrics.json').is_file()
