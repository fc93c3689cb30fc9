import errno
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

import mmad.utils.fileio as fileio
from mmad.engine.hooks import AnomalyMapVisualizationHook
from mmad.structures import ADDataSample
from mmad.visualization import (
    COLOUR_BAR_WIDTH,
    DECISION_COLOURS,
    TITLE_BAR,
    colorize,
    colour_bar,
    draw_sample_panel,
    input_tile,
)

NO_THRESHOLD = SimpleNamespace(decision_threshold=None)


def _sample(tmp_path, name, defect, peak):
    image = np.full((40, 40, 3), 90, np.uint8)
    path = tmp_path / f'{name}.png'
    cv2.imwrite(str(path), image)
    fused = torch.zeros(16, 16)
    fused[4, 4] = peak
    sample = ADDataSample(metainfo=dict(img_path=str(path), defect_type=defect, sample_name=name))
    sample.set_gt_label(int(defect != 'good'))
    sample.set_gt_mask(fused > 0)
    sample.set_pred_score(float(peak))
    sample.set_anomaly_map(fused)
    sample.set_branch_maps({'rgb': fused * 2, 'depth': fused})
    return sample


def test_colorize_extremes():
    colours = colorize(np.array([[0.0, 1.0]]), 0.0, 1.0)
    assert colours.shape == (1, 2, 3) and colours.dtype == np.uint8
    assert colours[0, 0, 2] > colours[0, 0, 0]  # cold end is blue
    assert colours[0, 1, 0] > colours[0, 1, 2]  # hot end is red


def test_panel_layout():
    image = np.zeros((10, 12, 3), np.uint8)
    maps = {'fused': np.zeros((10, 12)), 'rgb': np.ones((10, 12))}
    panel = draw_sample_panel(image, np.zeros((10, 12)), maps, {'fused': (0, 1), 'rgb': (0, 1)})
    assert panel.shape == (10 + 18, 12 * 4 + 2 * COLOUR_BAR_WIDTH, 3)
    with_inputs = draw_sample_panel(image, None, maps, {'fused': (0, 1), 'rgb': (0, 1)},
                                    inputs={'depth': np.zeros((10, 12, 3), np.uint8)})
    assert with_inputs.shape == (10 + 18, 12 * 4 + 2 * COLOUR_BAR_WIDTH, 3)


def test_colour_bar_runs_from_the_hottest_colour_at_the_top_to_the_coldest():
    bar = colour_bar(64, -1.0, 3.0)
    assert bar.shape == (64, COLOUR_BAR_WIDTH, 3) and bar.dtype == np.uint8
    np.testing.assert_array_equal(bar[0, 1], colorize(np.array([[3.0]]), -1.0, 3.0)[0, 0])
    np.testing.assert_array_equal(bar[-1, 1], colorize(np.array([[-1.0]]), -1.0, 3.0)[0, 0])
    assert (bar[:, 12:] < 128).any()  # the value labels are written beside the gradient


def test_input_tiles_show_depth_as_grey_and_keep_rgb_values():
    depth = np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 3, 4)
    grey = input_tile(depth)
    assert grey.shape == (3, 4, 3)
    np.testing.assert_array_equal(grey[..., 0], np.rint(depth[0] * 255))
    assert (grey[..., 0] == grey[..., 2]).all()
    rgb = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2) * 20
    np.testing.assert_array_equal(input_tile(rgb), np.moveaxis(rgb, 0, -1).astype(np.uint8))
    xyz = np.array([[[-2.0, 2.0]]], np.float32)  # other ranges are stretched from min to max
    np.testing.assert_array_equal(input_tile(xyz)[0, :, 0], [0, 255])


def test_hook_writes_one_panel_per_sample(tmp_path):
    hook = AnomalyMapVisualizationHook(out_dir='heatmaps', tile_size=32)
    runner = SimpleNamespace(model=NO_THRESHOLD, work_dir=str(tmp_path), logger=MMLogger.get_instance('test_vis_hook'))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=[_sample(tmp_path, 'good_000', 'good', 0.0),
                                             _sample(tmp_path, 'crack_000', 'crack', 3.0)])
    hook.after_test_epoch(runner)
    files = sorted(p.relative_to(tmp_path / 'heatmaps').as_posix() for p in (tmp_path / 'heatmaps').rglob('*.png'))
    assert files == ['crack/crack_000.png', 'good/good_000.png']
    panel = cv2.imread(str(tmp_path / 'heatmaps' / 'crack' / 'crack_000.png'))
    # image, ground truth, fused, rgb, depth tiles of 32 px (maps of 16 px enlarged) with their colour bars, plus the
    # title bar
    assert panel.shape == (32 + 18, 32 * 5 + 3 * COLOUR_BAR_WIDTH, 3)
    assert hook._records == []


def _run_test_epoch(runner, hooks, samples):
    for hook in hooks:
        hook.before_test(runner)
    for hook in hooks:
        hook.after_test_iter(runner, 0, outputs=samples)
    for hook in hooks:
        hook.after_test_epoch(runner)


def test_a_full_disk_stops_the_hook_with_an_error_naming_the_heatmap(tmp_path, monkeypatch):
    """Case 4 of issue 8: the second write fails with ENOSPC; before, cv2.imwrite's False was ignored."""
    real_atomic_open, calls = fileio.atomic_open, []

    def disk_full_after_one_file(path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_atomic_open(path, *args, **kwargs)

    monkeypatch.setattr(fileio, 'atomic_open', disk_full_after_one_file)
    log_file = tmp_path / 'hook.log'
    hook = AnomalyMapVisualizationHook(out_dir='heatmaps', tile_size=16)
    runner = SimpleNamespace(model=NO_THRESHOLD, work_dir=str(tmp_path), hooks=[hook],
                             logger=MMLogger.get_instance('test_vis_hook_disk_full', log_file=str(log_file)))
    samples = [_sample(tmp_path, f'crack_00{index}', 'crack', 1.0 + index) for index in range(4)]
    with pytest.raises(OSError, match=r"No space left on device while writing: '.*heatmaps/crack/crack_001\.png'") \
            as error:
        _run_test_epoch(runner, [hook], samples)
    assert error.value.errno == errno.ENOSPC
    assert sorted(path.name for path in (tmp_path / 'heatmaps' / 'crack').iterdir()) == ['crack_000.png']
    assert 'Heatmaps of' not in log_file.read_text()


def test_a_later_heatmap_hook_replaces_the_configs_one(tmp_path):
    """A config's hook plus the one tools/test.py --show-dir appends: every heatmap is written once, to show-dir."""
    log_file = tmp_path / 'hook.log'
    config_hook = AnomalyMapVisualizationHook(out_dir='heatmaps', max_samples=64, tile_size=16)
    show_dir_hook = AnomalyMapVisualizationHook(out_dir=str(tmp_path / 'show'), tile_size=16)
    runner = SimpleNamespace(model=NO_THRESHOLD, work_dir=str(tmp_path), hooks=[config_hook, show_dir_hook],
                             logger=MMLogger.get_instance('test_vis_hook_twice', log_file=str(log_file)))
    _run_test_epoch(runner, [config_hook, show_dir_hook],
                    [_sample(tmp_path, 'good_000', 'good', 0.0), _sample(tmp_path, 'crack_000', 'crack', 3.0)])
    assert not (tmp_path / 'heatmaps').exists()
    assert sorted(p.name for p in (tmp_path / 'show').rglob('*.png')) == ['crack_000.png', 'good_000.png']
    log_text = log_file.read_text()
    assert f"AnomalyMapVisualizationHook(out_dir='heatmaps') is idle: the one registered after it writes the " \
           f"heatmaps, to '{tmp_path / 'show'}'" in log_text
    assert log_text.count('Heatmaps of 2 samples written') == 1


def test_panel_shows_the_inputs_the_decision_and_the_contour_at_the_threshold(tmp_path):
    """With a threshold: the other modalities' tiles, the decision in the title and the fused region outlined."""
    hook = AnomalyMapVisualizationHook(out_dir='heatmaps', tile_size=16, low=0.0, high=100.0)
    runner = SimpleNamespace(model=SimpleNamespace(decision_threshold=1.5), work_dir=str(tmp_path),
                             logger=MMLogger.get_instance('test_vis_hook_threshold'))
    sample = _sample(tmp_path, 'crack_000', 'crack', 3.0)
    fused = torch.zeros(16, 16)
    fused[4:10, 5:12] = 3.0
    sample.set_anomaly_map(fused)
    sample.set_branch_maps({'rgb': fused * 2, 'depth': fused})
    sample.set_field(torch.tensor(1), 'pred_label')
    depth = torch.linspace(0, 1, 16).repeat(16, 1)[None]
    normals = torch.stack([torch.full((16, 16), value) for value in (0.0, 0.5, 1.0)])
    batch = dict(inputs=dict(rgb=[torch.zeros(3, 16, 16)], depth=[depth], normals=[normals]))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, data_batch=batch, outputs=[sample])
    hook.after_test_epoch(runner)
    panel = cv2.imread(str(tmp_path / 'heatmaps' / 'crack' / 'crack_000.png'))[..., ::-1]
    # image, depth, normals, ground truth, then fused, rgb, depth maps each with a colour bar
    assert panel.shape == (16 + TITLE_BAR, 16 * 7 + 3 * COLOUR_BAR_WIDTH, 3)
    body = panel[TITLE_BAR:]
    np.testing.assert_array_equal(body[:, 16:32, 0], np.rint(depth[0].numpy() * 255).astype(np.uint8))
    np.testing.assert_array_equal(body[0, 32:48], np.repeat([[0, 128, 255]], 16, axis=0))
    fused_tile = body[:, 64:80].astype(int)
    region = fused.numpy() > 1.5
    inner = np.zeros_like(region)
    inner[1:-1, 1:-1] = region[1:-1, 1:-1] & region[:-2, 1:-1] & region[2:, 1:-1] & region[1:-1, :-2] & region[1:-1, 2:]
    border = region & ~inner
    assert (fused_tile[border] == 255).all()  # the outline is white
    assert not (fused_tile[~region] == 255).all(axis=-1).any()  # nothing outside the region is outlined
    # the decision: a red frame inside the image tile (the image itself is grey 90)
    assert (body[0, :16] == DECISION_COLOURS[True]).all() and (body[:, 0] == DECISION_COLOURS[True]).all()
    assert (body[2:-2, 2:14] == 90).all()
