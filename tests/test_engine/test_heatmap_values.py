"""The heatmap hook's tiles by value: each map tile is the jet colouring of the map with the range shared over the test
set (per map kind, from the hook's ``low``-th to ``high``-th percentile), blended half and half over the image.

The expected tiles are computed here from the documented recipe with OpenCV's colour map, not with
``mmad.visualization``. Maps are multiples of 1/8, exact in the float16 the hook keeps, and the tiles are drawn at
the maps' size (no resize), so the only tolerance is the blend's rounding.
"""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmad.engine.hooks import AnomalyMapVisualizationHook
from mmad.structures import ADDataSample

SIZE = 24
TITLE_BAR = 18
LOW, HIGH = 5.0, 90.0
NAMES = ('fused', 'rgb', 'depth')


def make_maps(seed, peak):
    """Map name -> (SIZE, SIZE) float32 scores, multiples of 1/8 in [0, peak]."""
    rng = np.random.default_rng(seed)
    fused = rng.integers(0, 8 * peak + 1, size=(SIZE, SIZE)).astype(np.float32) / 8
    return dict(fused=fused, rgb=fused[::-1].copy() * 2, depth=fused.T.copy() + 1)


def make_image(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)


def expected_tile(image, scores, vmin, vmax):
    """Jet colour of ``clip((scores - vmin) / (vmax - vmin), 0, 1)`` in 256 steps, blended 50/50 over the image."""
    normed = np.clip((scores.astype(np.float32) - np.float32(vmin)) / np.float32(vmax - vmin), 0, 1)
    heat = cv2.applyColorMap((normed * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return 0.5 * image.astype(np.float64) + 0.5 * heat.astype(np.float64)


@pytest.fixture(scope='module')
def drawn(tmp_path_factory):
    """Two samples (peaks 2 and 6) drawn by the hook: their maps, images, masks and the written panels (RGB)."""
    tmp_path = tmp_path_factory.mktemp('heatmaps')
    samples, records = [], []
    for index, (defect, peak) in enumerate((('crack', 2), ('hole', 6))):
        image, maps = make_image(index), make_maps(index, peak)
        mask = np.zeros((SIZE, SIZE), bool)
        mask[3 + index:9, 5:12 + index] = True
        path = tmp_path / f'{defect}.png'
        cv2.imwrite(str(path), image[..., ::-1])
        sample = ADDataSample(metainfo=dict(img_path=str(path), defect_type=defect, sample_name=f'{defect}_000'))
        sample.set_gt_mask(torch.from_numpy(mask))
        sample.set_pred_score(float(maps['fused'].max()))
        sample.set_anomaly_map(torch.from_numpy(maps['fused']))
        sample.set_branch_maps({name: torch.from_numpy(maps[name]) for name in NAMES[1:]})
        samples.append(sample)
        records.append(dict(image=image, maps=maps, mask=mask, defect=defect))
    hook = AnomalyMapVisualizationHook(out_dir='heatmaps', low=LOW, high=HIGH, tile_size=SIZE)
    runner = SimpleNamespace(work_dir=str(tmp_path), logger=MMLogger.get_instance('test_heatmap_values'))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=samples)
    hook.after_test_epoch(runner)
    for record in records:
        panel = cv2.imread(str(tmp_path / 'heatmaps' / record['defect'] / f"{record['defect']}_000.png"))
        record['panel'] = panel[..., ::-1]
    return records


def tile(panel, index):
    """Tile ``index`` (0 image, 1 ground truth, 2.. maps) of a panel, without its title bar."""
    return panel[TITLE_BAR:, index * SIZE:(index + 1) * SIZE].astype(np.float64)


def test_panel_holds_image_mask_and_one_tile_per_map(drawn):
    for record in drawn:
        assert record['panel'].shape == (TITLE_BAR + SIZE, SIZE * (2 + len(NAMES)), 3)
        np.testing.assert_array_equal(tile(record['panel'], 0), record['image'])
        np.testing.assert_array_equal(tile(record['panel'], 1), np.repeat(record['mask'][..., None] * 255.0, 3, 2))


def test_map_tiles_use_the_range_shared_over_the_test_set(drawn):
    for position, name in enumerate(NAMES, start=2):
        values = np.concatenate([record['maps'][name].ravel() for record in drawn])
        shared = (np.percentile(values, LOW), np.percentile(values, HIGH))
        for record in drawn:
            got = tile(record['panel'], position)
            expected = expected_tile(record['image'], record['maps'][name], *shared)
            assert np.abs(got - expected).max() <= 0.5 + 1e-9, (record['defect'], name)
            # A range of this sample alone gives another picture: the test tells the shared range apart.
            own = (np.percentile(record['maps'][name], LOW), np.percentile(record['maps'][name], HIGH))
            assert np.abs(got - expected_tile(record['image'], record['maps'][name], *own)).max() > 20
