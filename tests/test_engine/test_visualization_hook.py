from types import SimpleNamespace

import cv2
import numpy as np
import torch
from mmengine.logging import MMLogger

from mmad.engine.hooks import AnomalyMapVisualizationHook
from mmad.structures import ADDataSample
from mmad.visualization import colorize, draw_sample_panel


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
    assert panel.shape == (10 + 18, 12 * 4, 3)


def test_hook_writes_one_panel_per_sample(tmp_path):
    hook = AnomalyMapVisualizationHook(out_dir='heatmaps', tile_size=32)
    runner = SimpleNamespace(work_dir=str(tmp_path), logger=MMLogger.get_instance('test_vis_hook'))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=[_sample(tmp_path, 'good_000', 'good', 0.0),
                                             _sample(tmp_path, 'crack_000', 'crack', 3.0)])
    hook.after_test_epoch(runner)
    files = sorted(p.relative_to(tmp_path / 'heatmaps').as_posix() for p in (tmp_path / 'heatmaps').rglob('*.png'))
    assert files == ['crack/crack_000.png', 'good/good_000.png']
    panel = cv2.imread(str(tmp_path / 'heatmaps' / 'crack' / 'crack_000.png'))
    # image, ground truth, fused, rgb, depth tiles of 32 px (maps of 16 px enlarged), plus the title bar
    assert panel.shape == (32 + 18, 32 * 5, 3)
    assert hook._records == []
