"""Exact threshold-free ranking metrics for binary labels: AUROC and average precision.

Both equal scikit-learn's ``roc_auc_score`` and ``average_precision_score``: every distinct score is one
threshold, so tied scores of a positive and a negative count as one step. They sort the negatives once in the
scores' own dtype (no float64 copy of the input) and rank the positives among them with ``searchsorted``, which
keeps pixel-level evaluation of whole test sets fast and lean.

Example:
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
"""
import numpy as np
from numpy.typing import ArrayLike


def count_greater(sorted_values: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count the values strictly greater than each query, and those greater than or equal to it.

    Args:
        sorted_values: Values sorted in ascending order, shape (M,).
        queries: Query values, shape (Q,); ascending queries are searched fastest.

    Returns:
        ``(greater, greater_equal)``: two int64 arrays of shape (Q,).
    """
    num_values = sorted_values.size
    greater = num_values - np.searchsorted(sorted_values, queries, side='right')
    greater_equal = num_values - np.searchsorted(sorted_values, queries, side='left')
    return greater, greater_equal


def first_of_equal(sorted_values: np.ndarray) -> np.ndarray:
    """Index of the first value equal to each value of an ascending array, in one pass (no search).

    Args:
        sorted_values: Values sorted in ascending order, shape (M,).

    Returns:
        int64 (M,): ``np.searchsorted(sorted_values, sorted_values, side='left')``.
    """
    first = np.arange(sorted_values.size)
    if sorted_values.size > 1:
        first[1:][sorted_values[1:] == sorted_values[:-1]] = 0
        np.maximum.accumulate(first, out=first)
    return first


def auroc_from_counts(negatives_greater: np.ndarray, negatives_greater_equal: np.ndarray, num_negatives: int) -> float:
    """Area under the ROC curve from the rank of every positive among the negatives.

    A positive scores one for each negative below it and one half for each negative tied with it (the trapezoid
    of the ROC curve at tied scores). The sum is kept in integers, so the result is exact up to the final division.

    Args:
        negatives_greater: Number of negatives scored above each positive, shape (P,).
        negatives_greater_equal: Number of negatives scored at or above each positive, shape (P,).
        num_negatives: Number of negatives.

    Returns:
        The AUROC in [0, 1], or NaN when there is no positive or no negative.
    """
    num_positives = negatives_greater.size
    if num_positives == 0 or num_negatives == 0:
        return float('nan')
    twice_wins = int(np.sum(2 * num_negatives - negatives_greater - negatives_greater_equal, dtype=np.int64))
    return twice_wins / (2 * num_positives * num_negatives)


def average_precision_from_counts(sorted_positives: np.ndarray, negatives_greater_equal: np.ndarray) -> float:
    """Average precision from the positives and the number of negatives at or above each of them.

    Each positive contributes ``1 / P`` of recall at the threshold equal to its own score, where the precision is
    ``positives >= score / (positives >= score + negatives >= score)``; this is scikit-learn's step-wise sum over
    the distinct thresholds.

    Args:
        sorted_positives: Scores of the positives sorted in ascending order, shape (P,).
        negatives_greater_equal: Number of negatives scored at or above each positive, shape (P,).

    Returns:
        The average precision in [0, 1], or NaN when there is no positive.
    """
    num_positives = sorted_positives.size
    if num_positives == 0:
        return float('nan')
    positives_greater_equal = num_positives - first_of_equal(sorted_positives)
    precision = positives_greater_equal / (positives_greater_equal + negatives_greater_equal)
    return float(np.mean(precision))


def split_by_label(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check binary labels and scores and split the scores into negatives and sorted positives.

    Args:
        labels: Binary labels (bool, or numbers in {0, 1}), any shape.
        scores: Real scores of the same shape; higher means more likely positive.

    Returns:
        ``(negatives, sorted_positives)``: 1-D arrays in the scores' dtype; the negatives are unsorted copies.

    Raises:
        ValueError: If the shapes differ, a label is not 0/1, or a score is NaN.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if labels.shape != scores.shape:
        raise ValueError(f'labels and scores must have the same shape, got {labels.shape} and {scores.shape}.')
    if scores.dtype.kind not in 'biuf':
        raise ValueError(f'scores must be real numbers, got dtype {scores.dtype}.')
    if labels.dtype != bool:
        if np.any((labels != 0) & (labels != 1)):
            raise ValueError(f'labels must be binary (bool or 0/1), got values {np.unique(labels)[:10].tolist()}.')
        labels = labels != 0
    if scores.dtype.kind == 'f' and scores.size and np.isnan(scores.min()):
        raise ValueError('scores contain NaN; expected real numbers (infinities are allowed).')
    negatives = scores[~labels]
    positives = scores[labels]
    positives.sort()
    return negatives, positives


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve, equal to scikit-learn's ``roc_auc_score``.

    Args:
        labels: Binary labels (bool, or numbers in {0, 1}), any shape.
        scores: Real scores of the same shape; higher means more likely positive.

    Returns:
        The AUROC in [0, 1], or NaN when only one class is present (scikit-learn raises instead).
    """
    negatives, positives = split_by_label(labels, scores)
    negatives.sort()
    greater, greater_equal = count_greater(negatives, positives)
    return auroc_from_counts(greater, greater_equal, negatives.size)


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (area under the step-wise precision-recall curve), equal to scikit-learn's.

    Args:
        labels: Binary labels (bool, or numbers in {0, 1}), any shape.
        scores: Real scores of the same shape; higher means more likely positive.

    Returns:
        The average precision in [0, 1], or NaN when there is no positive.
    """
    negatives, positives = split_by_label(labels, scores)
    negatives.sort()
    _, greater_equal = count_greater(negatives, positives)
    return average_precision_from_counts(positives, greater_equal)
