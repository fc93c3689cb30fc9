"""tools/train_all.py: every category trained and tested, resumable, one results table per metric."""
import csv
import json
import math

import pytest
import torch
from process_helpers import load_tool, python_tool, run_ok
from tiny_config import write_tiny_config

from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.utils import load_from_local_safely

train_all = load_tool('train_all.py')


@pytest.fixture(scope='module')
def two_categories(tmp_path_factory):
    root = tmp_path_factory.mktemp('two_categories')
    for category in ('synthetic', 'cookie'):
        make_synthetic_mvtec3d(root, category, height=64, width=64, num_train=4, num_val=2, num_test_per_defect=2,
                               defect_types=('color', 'dent'))
    return root


@pytest.mark.slow
def test_trains_tests_and_tabulates_every_category_then_skips_them(two_categories, tmp_path):
    config = write_tiny_config(tmp_path / 'tiny_crd.py', two_categories, extra='train_cfg = dict(max_epochs=1)')
    work = tmp_path / 'runs'
    command = python_tool('train_all.py', str(config), '--categories', 'synthetic', 'cookie', '--jobs', '2',
                          '--work-dir', str(work))
    run_ok(command, tmp_path)
    metrics = {category: json.loads((work / 'tiny_crd' / category / 'metrics.json').read_text())
               for category in ('synthetic', 'cookie')}
    for category in metrics:
        log = (work / 'tiny_crd' / category / 'train_all.log').read_text()
        assert f"train_dataloader.dataset.category={category}" in log and 'tools/test.py' in log
        checkpoint = load_from_local_safely(str(work / 'tiny_crd' / category / 'epoch_1.pth'))
        assert checkpoint['meta']['dataset_meta']['category'] == category

    markdown = (work / 'results.md').read_text()
    assert '## I-AUROC' in markdown and '## AUPRO@0.3' in markdown
    assert '| method | synthetic | cookie | Average |' in markdown
    values = [metrics[category]['fused']['all']['I-AUROC'] for category in ('synthetic', 'cookie')]
    row = f'| tiny_crd | {100 * values[0]:.1f} | {100 * values[1]:.1f} | {100 * sum(values) / 2:.1f} |'
    assert row in markdown
    with open(work / 'results.csv', newline='') as file:
        rows = list(csv.reader(file))
    assert rows[0] == ['metric', 'method', 'synthetic', 'cookie', 'average']
    p_auroc = next(row for row in rows if row[0] == 'P-AUROC')
    expected = [metrics[category]['fused']['all']['P-AUROC'] for category in ('synthetic', 'cookie')]
    assert [float(value) for value in p_auroc[2:]] == pytest.approx(
        [100 * expected[0], 100 * expected[1], 50 * sum(expected)], abs=1e-3)

    logs_before = {category: (work / 'tiny_crd' / category / 'train_all.log').read_text() for category in metrics}
    (work / 'results.md').unlink()
    assert train_all.main(command[2:]) == 0
    assert (work / 'results.md').read_text() == markdown
    for category, before in logs_before.items():
        assert (work / 'tiny_crd' / category / 'train_all.log').read_text() == before


def _write_category_config(path, category):
    path.write_text(
        f"train_dataloader = dict(dataset=dict(type='MVTec3DDataset', category='{category}'))\n"
        f"test_dataloader = dict(dataset=dict(type='MVTec3DDataset', category='{category}'))\n")
    return str(path)


def test_configs_per_category_give_one_method(tmp_path):
    configs = [_write_category_config(tmp_path / f'crd_mvtec3d_{name}.py', name) for name in ('bagel', 'cable_gland')]
    jobs = train_all.build_jobs(configs, None, str(tmp_path / 'runs'), ['train_cfg.max_epochs=3'])
    assert [(job.method, job.category) for job in jobs] == [('crd_mvtec3d', 'bagel'), ('crd_mvtec3d', 'cable_gland')]
    assert jobs[1].work_dir == str(tmp_path / 'runs' / 'crd_mvtec3d' / 'cable_gland')
    assert jobs[0].cfg_options == ('train_cfg.max_epochs=3', )


def test_categories_override_every_dataloader(tmp_path):
    config = _write_category_config(tmp_path / 'rd.py', 'bagel')
    (job, ) = train_all.build_jobs([config], ['tire'], str(tmp_path), [])
    assert (job.method, job.category) == ('rd', 'tire')
    assert job.cfg_options == ('test_dataloader.dataset.category=tire', 'train_dataloader.dataset.category=tire')


def test_inconsistent_or_duplicate_configs_are_refused(tmp_path):
    mixed = tmp_path / 'mixed.py'
    mixed.write_text("train_dataloader = dict(dataset=dict(category='bagel'))\n"
                     "test_dataloader = dict(dataset=dict(category='tire'))\n")
    with pytest.raises(ValueError, match='different categories'):
        train_all.build_jobs([str(mixed)], None, str(tmp_path), [])
    plain = tmp_path / 'plain.py'
    plain.write_text('model = dict()\n')
    with pytest.raises(ValueError, match='no \\*_dataloader entry has a dataset.category'):
        train_all.build_jobs([str(plain)], ['bagel'], str(tmp_path), [])
    config = _write_category_config(tmp_path / 'rd.py', 'bagel')
    with pytest.raises(ValueError, match="both give method 'rd' on category 'bagel'"):
        train_all.build_jobs([config, config], None, str(tmp_path), [])


def test_unfinished_training_is_resumed_and_finished_runs_skipped(tmp_path):
    job = train_all.Job('rd', 'bagel', 'rd.py', str(tmp_path / 'bagel'), ())
    assert train_all.job_state(job) == 'new'
    assert '--resume' not in train_all.train_command(job)
    (tmp_path / 'bagel').mkdir()
    torch.save({'meta': {'epoch': 3}}, tmp_path / 'bagel' / 'epoch_3.pth')
    assert train_all.job_state(job) == 'partial'
    assert train_all.train_command(job)[-1] == '--resume'
    (tmp_path / 'bagel' / 'train_done.json').write_text('{}')
    assert train_all.job_state(job) == 'trained'
    (tmp_path / 'bagel' / 'metrics.json').write_text('{}')
    assert train_all.job_state(job) == 'done'
    assert train_all.run_job(job, None, 1) is None


def test_tables_mark_missing_values_and_average_only_complete_rows(tmp_path):
    jobs = [train_all.Job(method, category, 'c.py', str(tmp_path / method / category), ())
            for method in ('crd', 'rd') for category in ('bagel', 'tire')]
    values = {('crd', 'bagel'): 0.9, ('crd', 'tire'): 0.8, ('rd', 'bagel'): None}
    for job in jobs:
        if (job.method, job.category) in values:
            (tmp_path / job.method / job.category).mkdir(parents=True)
            metrics = {'fused': {'all': {'I-AUROC': values[(job.method, job.category)], 'P-AUROC': 0.5}}}
            (tmp_path / job.method / job.category / 'metrics.json').write_text(json.dumps(metrics))
    markdown = train_all.write_results(jobs, str(tmp_path))
    assert '| crd | 90.0 | 80.0 | 85.0 |' in markdown
    assert '| rd | nan | - | - |' in markdown
    table = train_all.collect_metrics(jobs)
    assert math.isnan(table['I-AUROC']['rd']['bagel'])
    rows = (tmp_path / 'results.csv').read_text().splitlines()
    assert rows[1] == 'I-AUROC,crd,90.0,80.0,85.0'
    assert rows[2] == 'I-AUROC,rd,nan,,'
