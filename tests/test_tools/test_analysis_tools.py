"""The picture tools on one tiny trained run: TensorBoard events, curve plots, heatmaps, worst cases, config and
dataset browsing, and the ONNX export CLI.

The session's tiny run (conftest.py tiny_run): tools/train.py --tensorboard (2 epochs of the tiny config), then
tools/test.py --tensorboard --show-dir of its last checkpoint; every test reads what those processes wrote.
"""
from __future__ import annotations

import csv
import glob
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from process_helpers import load_tool
from tiny_config import NUM_TEST

EPOCHS = 2
plot_curves = load_tool('analysis_tools/plot_curves.py')
show_worst = load_tool('analysis_tools/show_worst.py')
print_config = load_tool('analysis_tools/print_config.py')
browse_dataset = load_tool('analysis_tools/browse_dataset.py')
export_onnx = load_tool('deploy/export_onnx.py')


def exit_message(main, argv: list[str]) -> str:
    """The message of the SystemExit that ``main(argv)`` ends with (what a failing tool prints last)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return str(exited.value.code)


def scalar_tags(work_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = glob.glob(str(work_dir / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert files, f'no TensorBoard event file under {work_dir}'
    values: dict[str, list[float]] = {}
    for file in files:
        accumulator = EventAccumulator(file)
        accumulator.Reload()
        for tag in accumulator.Tags()['scalars']:
            values.setdefault(tag, []).extend(event.value for event in accumulator.Scalars(tag))
    return values


def test_tensorboard_holds_losses_learning_rates_and_test_metrics(tiny_run):
    pytest.importorskip('tensorboard', reason='the tensorboard extra is not installed')
    train = scalar_tags(tiny_run['train_dir'])
    assert {'loss', 'rgb.loss', 'depth.loss', 'rgb.loss_decoder'} <= set(train), sorted(train)
    assert any(tag.endswith('lr') for tag in train), sorted(train)
    assert all(np.isfinite(train['loss'])) and len(train['loss']) >= EPOCHS
    test = scalar_tags(tiny_run['test_dir'])
    with open(tiny_run['test_dir'] / 'metrics.json') as file:
        metrics = json.load(file)
    for source in ('fused', 'rgb', 'depth'):
        for name, value in metrics[source]['all'].items():
            if value is not None:
                assert test[f'test/{source}/all/{name}'] == [pytest.approx(value, abs=1e-6)]


def test_test_run_writes_curve_plots_beside_metrics_json(tiny_run):
    for name in ('roc_image.png', 'roc_pixel.png', 'pro.png'):
        image = cv2.imread(str(tiny_run['test_dir'] / name))
        assert image is not None and image.shape == (450, 450, 3), name
        assert (image < 200).any(), name  # axes and curves are drawn


def test_plot_curves_redraws_from_the_saved_file(tiny_run, tmp_path, capsys):
    plot_curves.main([str(tiny_run['test_dir']), '--out', str(tmp_path)])
    assert 'Curves of fused, rgb, depth written' in capsys.readouterr().out
    for name in ('roc_image.png', 'roc_pixel.png', 'pro.png'):
        redrawn = cv2.imread(str(tmp_path / name))
        np.testing.assert_array_equal(redrawn, cv2.imread(str(tiny_run['test_dir'] / name)))
    missing = exit_message(plot_curves.main, [str(tmp_path / 'nowhere')])
    assert f"plot_curves.py: error: {tmp_path / 'nowhere'} does not exist; expected the curves.npz" in missing


def test_show_dir_writes_one_panel_per_test_sample(tiny_run):
    panels = sorted(Path(tiny_run['show_dir']).rglob('*.png'))
    assert len(panels) == NUM_TEST
    panel = cv2.imread(str(panels[0]))
    # 32 px maps enlarged to 192: image, depth input, ground truth, fused, rgb, depth maps with colour bars
    from mmad.visualization import COLOUR_BAR_WIDTH, TITLE_BAR
    assert panel.shape == (192 + TITLE_BAR, 192 * 6 + 3 * COLOUR_BAR_WIDTH, 3)


def test_show_worst_grids_the_worst_false_positives_and_negatives(tiny_run, tmp_path, capsys):
    out = tmp_path / 'worst.png'
    show_worst.main([str(tiny_run['test_dir']), str(tiny_run['show_dir']), '--num', '2', '--out', str(out)])
    with open(tiny_run['test_dir'] / 'scores.csv', newline='') as file:
        rows = list(csv.DictReader(file))
    decided = all(row['pred_label'] != '' for row in rows)
    false_positives = [r for r in rows if r['label'] == '0' and (not decided or r['pred_label'] == '1')]
    false_negatives = [r for r in rows if r['label'] == '1' and (not decided or r['pred_label'] == '0')]
    expected = (min(2, len(false_positives)), min(2, len(false_negatives)))
    assert f'{expected[0]} false positives and {expected[1]} false negatives of {len(rows)} samples' in \
        capsys.readouterr().out
    grid = cv2.imread(str(out))
    panel = cv2.imread(str(next(Path(tiny_run['show_dir']).rglob('*.png'))))
    assert grid.shape == (22 + max(expected) * (22 + panel.shape[0]), 2 * panel.shape[1], 3)


def test_print_config_shows_the_merged_config_with_overrides(tiny_run, tmp_path, capsys):
    print_config.main([str(tiny_run['config']), '--cfg-options', 'train_cfg.max_epochs=7'])
    output = capsys.readouterr().out
    assert 'max_epochs=7' in output and "type='CRD'" in output
    assert 'print_config.py: error: config file' in exit_message(print_config.main, [str(tmp_path / 'missing.py')])


def test_browse_dataset_writes_each_modality_and_the_mask(tiny_run, tmp_path, capsys):
    browse_dataset.main([str(tiny_run['config']), '--num', '3', '--out', str(tmp_path / 'browse'), '--tile-size',
                         '64'])
    assert '3 samples of the test split' in capsys.readouterr().out
    files = sorted((tmp_path / 'browse').rglob('*.png'))
    assert len(files) == 3
    from mmad.visualization import TITLE_BAR
    for file in files:
        panel = cv2.imread(str(file))
        assert panel.shape == (64 + TITLE_BAR, 64 * 3, 3)  # rgb, depth, mask; 32 px enlarged twice
        mask = panel[TITLE_BAR:, 128:]
        assert set(np.unique(mask)) <= {0, 255}
        depth = panel[TITLE_BAR:, 64:128]
        assert (depth[..., 0] == depth[..., 2]).all()  # depth is drawn grey


def test_export_onnx_refuses_a_checkpoint_without_statistics(tiny_run, tmp_path):
    pytest.importorskip('onnxscript', reason='the deploy extra is not installed')
    # the statistics are fitted after the last epoch: the first epoch's checkpoint has none
    first = tiny_run['train_dir'] / 'epoch_1.pth'
    message = exit_message(export_onnx.main, [str(tiny_run['config']), str(first), str(tmp_path / 'model.onnx')])
    assert message.startswith('export_onnx.py: error: export_onnx: the aggregator NormalizedSum holds no validation '
                              'statistics')
    assert not (tmp_path / 'model.onnx').exists()


@pytest.mark.slow
def test_export_onnx_cli_writes_the_model_and_its_threshold(tiny_run, tmp_path, capsys):
    onnx = pytest.importorskip('onnx', reason='the deploy extra is not installed')
    pytest.importorskip('onnxscript')
    import torch

    out = tmp_path / 'model.onnx'
    export_onnx.main([str(tiny_run['config']), str(tiny_run['checkpoint']), str(out), '--input-channels', 'depth=1'])
    output = capsys.readouterr().out
    assert "inputs ['rgb', 'depth'] of size 32x32 (dynamic batch)" in output
    metadata = {prop.key: prop.value for prop in onnx.load(str(out)).metadata_props}
    state = torch.load(tiny_run['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
    assert json.loads(metadata['input_channels']) == dict(rgb=3, depth=1)
    assert metadata['checkpoint'] == str(tiny_run['checkpoint'])
    # ValidationStatisticsHook fitted the default threshold (quantile of the validation scores) after training
    assert bool(state['threshold.fitted'])
    assert float(metadata['decision_threshold']) == float(state['threshold.value'])
    assert metadata['threshold_rule'].endswith('(quantile q=0.99)')
    assert f"decision threshold {float(state['threshold.value']):.6g}" in output
