import numpy as np
import pytest
from reference_aupro import reference_au_pro
from scipy import ndimage

from mmad.evaluation.functional import au_pro, pixel_metrics, split_by_regions
from mmad.evaluation.functional.regions import SAMPLE_STRIDE, num_highest_to_reach

# One region of 2 pixels (scores 0.9, 0.5) and 4 normal pixels (0.8, 0.3, 0.2, 0.1). Curve:
# (0,0) (0,.5) [0.9] (.25,.5) [0.8] (.25,1) [0.5] (.5,1) (.75,1) (1,1).
ONE_REGION_MAPS = np.array([[[0.9, 0.5, 0.8], [0.3, 0.2, 0.1]]], dtype=np.float32)
ONE_REGION_MASKS = np.array([[[1, 1, 0], [0, 0, 0]]], dtype=np.uint8)

# Region A = {(0,0)} (1 pixel, score 0.7), region B = {(0,2),(0,3),(1,3)} (3 pixels, 0.9, 0.4, 0.4), 8 normal pixels.
# PRO = mean over regions: 0.9 -> (0 + 1/3)/2 = 1/6; 0.7 -> (1 + 1/3)/2 = 2/3; 0.4 -> 1.
# Curve: (0,0) (0,1/6) (1/8,1/6) [0.8] (1/8,2/3) [0.7] (2/8,2/3) [0.6] (2/8,1) [0.4] (3/8,1) ... (1,1).
TWO_REGION_MAPS = np.array([[[0.7, 0.8, 0.9, 0.4],
                             [0.6, 0.35, 0.3, 0.4],
                             [0.2, 0.15, 0.1, 0.05]]])
TWO_REGION_MASKS = np.array([[[1, 0, 1, 1],
                              [0, 0, 0, 1],
                              [0, 0, 0, 0]]], dtype=bool)

# Tie: the normal pixel at 0.5 and the anomalous pixel at 0.5 are one threshold, a diagonal step
# (0,.5) -> (.25,1) of the curve: (0,0) (0,.5) [0.9] (.25,1) [0.5] (.5,1) (.75,1) (1,1).
TIE_MAPS = np.array([[[0.9, 0.5, 0.5], [0.2, 0.1, 0.0]]], dtype=np.float32)
TIE_MASKS = np.array([[[1, 1, 0], [0, 0, 0]]], dtype=bool)


def blob_data(seed: int, num: int, size: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random maps correlated with blob-shaped masks; a third of the images all normal; rounding makes ties."""
    rng = np.random.default_rng(seed)
    masks = ndimage.gaussian_filter(rng.random((num, size, size)), (0, 3, 3)) > 0.55
    masks[::3] = False
    maps = (masks + rng.normal(0.0, 0.8, masks.shape)).astype(np.float32)
    if decimals is not None:
        maps = np.round(maps, decimals).astype(np.float32)
    return maps, masks


@pytest.mark.parametrize(('limit', 'expected'), [(1.0, 0.875), (0.3, (0.125 + 0.05) / 0.3), (0.2, 0.5),
                                                 (0.25, 0.5)])
def test_one_region_hand_computed(limit, expected):
    assert au_pro(ONE_REGION_MAPS, ONE_REGION_MASKS, integration_limit=limit) == pytest.approx(expected, abs=1e-12)
    assert reference_au_pro(ONE_REGION_MAPS, ONE_REGION_MASKS, limit) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(('limit', 'expected'), [(1.0, 41 / 48), (0.3, (5 / 48 + 0.05) / 0.3),
                                                 (0.1, (0.1 * 1 / 6) / 0.1), (0.2, (1 / 48 + 0.075 * 2 / 3) / 0.2)])
def test_two_regions_of_different_size_hand_computed(limit, expected):
    assert au_pro(TWO_REGION_MAPS, TWO_REGION_MASKS, integration_limit=limit) == pytest.approx(expected, abs=1e-12)
    assert reference_au_pro(TWO_REGION_MAPS, TWO_REGION_MASKS, limit) == pytest.approx(expected, abs=1e-12)


def test_regions_are_eight_connected_and_weigh_equally():
    regions = split_by_regions(TWO_REGION_MAPS, TWO_REGION_MASKS)
    assert regions.num_regions == 2
    np.testing.assert_array_equal(regions.anomalous_scores, [0.4, 0.4, 0.7, 0.9])
    np.testing.assert_allclose(regions.anomalous_weights, [1 / 3, 1 / 3, 1.0, 1 / 3])
    diagonal = np.array([[[1, 0], [0, 1]]], dtype=bool)
    assert split_by_regions(np.zeros((1, 2, 2)), diagonal).num_regions == 1


@pytest.mark.parametrize(('limit', 'expected'), [(1.0, 0.9375), (0.2, 0.5 * (0.5 + 0.9) * 0.2 / 0.2),
                                                 (0.25, 0.5 * 1.5 * 0.25 / 0.25)])
def test_tied_normal_and_anomalous_scores_are_one_threshold(limit, expected):
    assert au_pro(TIE_MAPS, TIE_MASKS, integration_limit=limit) == pytest.approx(expected, abs=1e-12)
    assert reference_au_pro(TIE_MAPS, TIE_MASKS, limit) == pytest.approx(expected, abs=1e-12)


def test_image_without_anomalous_pixels_only_adds_normal_pixels():
    # A second, all-normal image of six pixels at 0.0: 10 normal pixels; curve (0,0) (0,.5) (.1,.5) (.1,1) (.2,1)
    # (.3,1) (.4,1) (1,1), so the area up to 0.3 is 0.1 * 0.5 + 0.2 * 1.
    maps = np.concatenate([ONE_REGION_MAPS, np.zeros_like(ONE_REGION_MAPS)])
    masks = np.concatenate([ONE_REGION_MASKS, np.zeros_like(ONE_REGION_MASKS)])
    assert au_pro(maps, masks, integration_limit=0.3) == pytest.approx(0.25 / 0.3, abs=1e-12)
    assert reference_au_pro(maps, masks, 0.3) == pytest.approx(0.25 / 0.3, abs=1e-12)


def test_undefined_without_regions_or_without_normal_pixels():
    maps = np.random.default_rng(0).random((2, 4, 4))
    assert np.isnan(au_pro(maps, np.zeros((2, 4, 4), dtype=bool)))
    assert np.isnan(au_pro(maps, np.ones((2, 4, 4), dtype=bool)))
    result = pixel_metrics(maps, np.zeros((2, 4, 4), dtype=bool), (0.3, 0.1))
    assert np.isnan(result.auroc) and np.isnan(result.average_precision) and all(np.isnan(result.au_pros))


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize(('num', 'size', 'decimals'), [(12, 32, None), (9, 40, 1), (6, 24, 2), (30, 64, None),
                                                      (30, 64, 1)])
def test_equals_reference_on_random_maps(seed, num, size, decimals):
    maps, masks = blob_data(seed, num, size, decimals)
    for limit in (0.3, 0.1, 0.05, 0.01, 1.0, 1e-4):
        expected = reference_au_pro(maps, masks, limit)
        assert abs(au_pro(maps, masks, limit) - expected) < 1e-6
    limits = (0.3, 0.05, 1.0)
    combined = pixel_metrics(maps, masks, limits).au_pros
    np.testing.assert_allclose(combined, [reference_au_pro(maps, masks, limit) for limit in limits], atol=1e-6)


def test_maps_of_different_shapes_and_dtypes():
    maps, masks = blob_data(3, 4, 30)
    map_list = [maps[0], maps[1, :20], maps[2, :, :25].astype(np.float16), maps[3].astype(np.float64)]
    mask_list = [masks[0], masks[1, :20], masks[2, :, :25].astype(np.uint8), masks[3]]
    expected = reference_au_pro([np.asarray(m, dtype=np.float64) for m in map_list], mask_list, 0.3)
    assert au_pro(map_list, mask_list, 0.3) == pytest.approx(expected, abs=1e-9)
    assert pixel_metrics(map_list, mask_list).au_pros[0] == pytest.approx(expected, abs=1e-9)


def test_invariant_to_monotone_transforms_of_the_scores():
    maps, masks = blob_data(5, 8, 32)
    maps = maps.astype(np.float64)
    value = au_pro(maps, masks, 0.3)
    assert au_pro(np.exp(maps), masks, 0.3) == pytest.approx(value, abs=1e-12)
    assert au_pro(3.0 * maps - 7.0, masks, 0.3) == pytest.approx(value, abs=1e-12)
    assert au_pro(-maps, masks, 0.3) != pytest.approx(value, abs=1e-3)


def test_does_not_modify_the_inputs():
    maps, masks = blob_data(6, 4, 16)
    maps_copy, masks_copy = maps.copy(), masks.copy()
    au_pro(maps, masks)
    pixel_metrics(maps, masks)
    np.testing.assert_array_equal(maps, maps_copy)
    np.testing.assert_array_equal(masks, masks_copy)


def test_number_of_highest_scores_to_reach_the_limit():
    assert num_highest_to_reach(0.3, 10) == 3
    assert num_highest_to_reach(0.31, 10) == 4
    assert num_highest_to_reach(1.0, 7) == 7
    assert num_highest_to_reach(1e-9, 7) == 1
    for num in range(1, 200):
        count = num_highest_to_reach(0.3, num)
        assert count / num >= 0.3 and (count == 1 or (count - 1) / num < 0.3)


@pytest.mark.parametrize('limit', [0.0, -0.1, 1.5])
def test_rejects_limits_outside_zero_one(limit):
    with pytest.raises(ValueError, match=r'integration_limit must lie in \(0, 1\]'):
        au_pro(ONE_REGION_MAPS, ONE_REGION_MASKS, integration_limit=limit)
    with pytest.raises(ValueError, match=r'integration_limit must lie in \(0, 1\]'):
        pixel_metrics(ONE_REGION_MAPS, ONE_REGION_MASKS, (0.3, limit))


def test_rejects_bad_inputs_naming_the_argument():
    with pytest.raises(ValueError, match=r'anomaly_maps\[0\] has shape \(2, 3\) but gt_masks\[0\] has shape'):
        au_pro(ONE_REGION_MAPS, np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r'anomaly_maps must have shape \(N, H, W\)'):
        au_pro(ONE_REGION_MAPS[0], ONE_REGION_MASKS[0])
    with pytest.raises(ValueError, match='as many maps, got 1 and 2'):
        au_pro(ONE_REGION_MAPS, np.concatenate([ONE_REGION_MASKS] * 2))
    with pytest.raises(ValueError, match=r'anomaly_maps\[0\] contains NaN'):
        au_pro(np.where(ONE_REGION_MASKS, np.nan, ONE_REGION_MAPS), ONE_REGION_MASKS)
    with pytest.raises(ValueError, match=r'gt_masks\[1\] must be a 2-D map'):
        au_pro([ONE_REGION_MAPS[0]] * 2, [ONE_REGION_MASKS[0], ONE_REGION_MASKS])


def test_floor_keeps_the_needed_highest_normal_scores():
    maps, masks = blob_data(8, 30, 64)
    everything = split_by_regions(maps, masks)
    assert everything.normal_scores.size == everything.num_normal == np.count_nonzero(~masks)
    kept = split_by_regions(maps, masks, normal_fraction=0.3)
    assert kept.num_normal == everything.num_normal
    needed = num_highest_to_reach(0.3, kept.num_normal)
    assert needed <= kept.normal_scores.size < 0.4 * kept.num_normal
    highest = np.sort(everything.normal_scores)[-kept.normal_scores.size:]
    np.testing.assert_array_equal(np.sort(kept.normal_scores), highest)
    np.testing.assert_array_equal(kept.anomalous_scores, everything.anomalous_scores)
    kept_from_list = split_by_regions(list(maps), list(masks.astype(np.uint8)), normal_fraction=0.3)
    np.testing.assert_array_equal(np.sort(kept_from_list.normal_scores), np.sort(kept.normal_scores))


@pytest.mark.parametrize('as_list', [False, True])
def test_keeps_every_normal_score_when_the_sampled_floor_is_too_high(as_list):
    # The sampled rows and columns score far above the rest, so the sampled floor would keep too few scores.
    maps, masks = blob_data(9, 30, 64)
    maps[:, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE] += 100.0
    inputs = (list(maps), list(masks)) if as_list else (maps, masks)
    regions = split_by_regions(*inputs, normal_fraction=0.3)
    assert regions.normal_scores.size == regions.num_normal
    assert au_pro(*inputs, integration_limit=0.3) == pytest.approx(reference_au_pro(maps, masks, 0.3), abs=1e-9)
