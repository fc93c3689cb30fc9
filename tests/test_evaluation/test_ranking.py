import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mmad.evaluation.functional import auroc, average_precision, pixel_metrics
from mmad.evaluation.functional.ranking import count_greater, first_of_equal


def random_problem(seed: int, size: int, decimals: int | None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    labels = rng.random(size) < 0.2
    scores = labels * 0.7 + rng.normal(0.0, 1.0, size)
    if decimals is not None:
        scores = np.round(scores, decimals)
    return labels, scores.astype(dtype)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
@pytest.mark.parametrize(('size', 'decimals', 'dtype'), [(50, None, np.float32), (1000, 1, np.float32),
                                                         (3000, 2, np.float64), (500, 0, np.float16)])
def test_equal_to_scikit_learn(seed, size, decimals, dtype):
    labels, scores = random_problem(seed, size, decimals, dtype)
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    int_labels = labels.astype(np.int64)
    assert auroc(int_labels, scores) == auroc(labels, scores)


def test_hand_computed_values_with_ties():
    # Positives 0.8, 0.35; negatives 0.1, 0.4: 0.8 beats both, 0.35 beats one -> 3 / 4.
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # Precision at 0.8 is 1 (recall .5), at 0.35 is 2/3 (recall 1): AP = .5 + .5 * 2/3.
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 1 / 3)
    # A tie between a positive and a negative counts one half; at the tied threshold precision is 1/2.
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    assert average_precision([0, 1], [0.5, 0.5]) == 0.5
    # Integer scores and any-shaped inputs.
    assert auroc(np.array([[1, 0], [0, 1]]), np.array([[3, 1], [2, 2]])) == pytest.approx(0.875)


def test_perfect_and_reversed_scores():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.arange(5.0)
    assert auroc(labels, scores) == 1.0 and average_precision(labels, scores) == 1.0
    assert auroc(labels, -scores) == 0.0


def test_undefined_with_one_class_is_nan():
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))
    assert np.isnan(auroc([0, 0], [0.2, 0.3]))
    assert np.isnan(average_precision([0, 0], [0.2, 0.3]))
    assert average_precision([1, 1], [0.2, 0.3]) == 1.0


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r'same shape, got \(3,\) and \(2,\)'):
        auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r'binary \(bool or 0/1\), got values \[0, 1, 2\]'):
        auroc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='scores contain NaN'):
        average_precision([0, 1], [np.nan, 0.2])
    with pytest.raises(ValueError, match='scores must be real numbers'):
        auroc([0, 1], ['a', 'b'])


def test_count_greater():
    greater, greater_equal = count_greater(np.array([1.0, 2.0, 2.0, 3.0]), np.array([0.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(greater, [4, 1, 0, 0])
    np.testing.assert_array_equal(greater_equal, [4, 3, 1, 0])


def test_pixel_metrics_equal_scikit_learn_over_all_pixels():
    rng = np.random.default_rng(7)
    masks = rng.random((5, 12, 12)) < 0.1
    maps = np.round(masks * 0.5 + rng.normal(0.0, 0.5, masks.shape), 1).astype(np.float32)
    result = pixel_metrics(maps, masks)
    assert result.auroc == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert result.average_precision == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert result.auroc == pytest.approx(auroc(masks, maps), abs=1e-15)



def test_first_of_equal_is_the_left_search_of_each_value():
    rng = np.random.default_rng(3)
    for values in (np.sort(rng.integers(0, 5, 200)).astype(np.float32), np.array([-np.inf, -np.inf, 0.5, np.inf]),
                   np.array([2.0]), np.empty(0)):
        np.testing.assert_array_equal(first_of_equal(values), np.searchsorted(values, values, side='left'))
    assert first_of_equal(np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0])).tolist() == [0, 0, 2, 3, 3, 3]
