"""The decision threshold of a detector: image score -> good (0) / anomalous (1), saved in the state dict.

:class:`DecisionThreshold` is a child module of the detector (``model.threshold``) whose buffers travel with every
checkpoint: ``threshold.value`` (float64 scalar), ``threshold.fitted`` (bool), ``threshold.rule`` (int64 index into
:data:`THRESHOLD_RULES`) and ``threshold.quantile`` (float64, 0 unless the rule is ``'quantile'``); unset values are
0, never NaN, so that state dicts compare equal. A sample is
anomalous when its image score is strictly greater than the value. It is fitted after training by
``ValidationStatisticsHook`` with one of two rules:

- ``'quantile'``: the ``q``-quantile (numpy's linear interpolation) of the image scores of the normal validation
  samples, :func:`quantile_threshold`;
- ``'f1'``: the threshold of highest F1 on a labelled split that is not the test split, :func:`f1_optimal_threshold`.

A value set by hand (``--threshold`` of the tools, ``threshold=`` of ``mmad.apis.inference_model``) has the rule
``'manual'``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

THRESHOLD_RULES = ('quantile', 'f1', 'manual')
DEFAULT_QUANTILE = 0.99
#: Below this many scores a high quantile lies close to the maximum score (said in the log).
FEW_SCORES = 100


class DecisionThreshold(nn.Module):
    """Image-score threshold of a detector, held in buffers so that it is saved and loaded with the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer('value', torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer('fitted', torch.tensor(False))
        self.register_buffer('rule', torch.tensor(-1, dtype=torch.int64))
        self.register_buffer('quantile', torch.tensor(0.0, dtype=torch.float64))

    @property
    def is_fitted(self) -> bool:
        """Whether a threshold is set."""
        return bool(self.fitted)

    @property
    def threshold(self) -> float | None:
        """The threshold, None when not set."""
        return float(self.value) if self.is_fitted else None

    @property
    def rule_name(self) -> str | None:
        """``'quantile'``, ``'f1'`` or ``'manual'``; None when not set."""
        return THRESHOLD_RULES[int(self.rule)] if self.is_fitted else None

    def describe(self) -> str:
        """One phrase for logs and titles, e.g. ``'0.0123 (quantile q=0.99)'`` or ``'not fitted'``."""
        if not self.is_fitted:
            return 'not fitted'
        rule = self.rule_name
        detail = f'quantile q={float(self.quantile):g}' if rule == 'quantile' else rule
        return f'{self.threshold:.6g} ({detail})'

    def set(self, value: float, rule: str = 'manual', quantile: float | None = None) -> None:
        """Set the threshold.

        Args:
            value: The threshold (finite).
            rule: One of :data:`THRESHOLD_RULES`.
            quantile: The quantile, for ``rule='quantile'``.
        """
        if not math.isfinite(float(value)):
            raise ValueError(f'DecisionThreshold: the threshold must be a finite number, got {value}.')
        if rule not in THRESHOLD_RULES:
            raise ValueError(f'DecisionThreshold: rule must be one of {THRESHOLD_RULES}, got {rule!r}.')
        if (rule == 'quantile') != (quantile is not None):
            raise ValueError(f"DecisionThreshold: a quantile is given with rule 'quantile' only (rule {rule!r}, "
                             f'quantile {quantile}).')
        self.value.fill_(float(value))
        self.rule.fill_(THRESHOLD_RULES.index(rule))
        self.quantile.fill_(0.0 if quantile is None else float(quantile))
        self.fitted.fill_(True)

    def reset(self) -> None:
        """Forget the threshold (it belongs to weights about to change)."""
        self.value.fill_(0.0)
        self.rule.fill_(-1)
        self.quantile.fill_(0.0)
        self.fitted.fill_(False)

    def forward(self, scores: Tensor) -> Tensor:
        """Decisions of image scores.

        Args:
            scores: Image scores (B,).

        Returns:
            Long tensor (B,): 1 where the score is above the threshold, else 0.
        """
        if not self.is_fitted:
            raise RuntimeError('DecisionThreshold is not fitted: fit it on the validation split '
                               '(ValidationStatisticsHook(threshold=...)) or set one (--threshold).')
        return (scores.double() > self.value).long()


def quantile_threshold(scores: np.ndarray, q: float = DEFAULT_QUANTILE) -> float:
    """The ``q``-quantile of normal image scores (numpy's default linear interpolation).

    Args:
        scores: Image scores of normal samples (N,), N >= 1.
        q: Quantile in (0, 1].

    Returns:
        The threshold.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if not 0 < q <= 1:
        raise ValueError(f'quantile_threshold: q must be in (0, 1], got {q}.')
    if scores.size == 0:
        raise ValueError('quantile_threshold: no normal score to take the quantile of (empty split).')
    if not np.isfinite(scores).all():
        raise ValueError('quantile_threshold: the scores hold NaN or inf.')
    return float(np.quantile(scores, q))


def f1_optimal_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold of highest F1 (anomalous = positive, decision ``score > threshold``).

    Every distinct score is a candidate cut (samples with at least that score are anomalous); the threshold is
    the midpoint between the best cut's score and the next lower distinct score (below the lowest score when
    every sample is called anomalous). Ties of F1 keep the higher threshold.

    Args:
        scores: Image scores (N,).
        labels: Ground truth (N,), 1 anomalous, 0 good; both classes needed.

    Returns:
        ``(threshold, f1)``.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f'f1_optimal_threshold: {scores.size} scores but {labels.size} labels.')
    if labels.all() or not labels.any():
        raise ValueError('f1_optimal_threshold: the split needs good and anomalous samples to fit an F1 threshold, '
                         f'got {int(labels.sum())} anomalous of {labels.size}.')
    if not np.isfinite(scores).all():
        raise ValueError('f1_optimal_threshold: the scores hold NaN or inf.')
    cuts = np.unique(scores)[::-1]
    positives = labels.sum()
    best_index, best_f1 = 0, -1.0
    for index, cut in enumerate(cuts):
        called = scores >= cut
        true_positives = np.count_nonzero(called & labels)
        f1 = 2 * true_positives / (np.count_nonzero(called) + positives)
        if f1 > best_f1:
            best_index, best_f1 = index, f1
    cut = cuts[best_index]
    below = cuts[best_index + 1] if best_index + 1 < len(cuts) else None
    threshold = (cut + below) / 2 if below is not None else float(np.nextafter(cut, -np.inf))
    return float(threshold), float(best_f1)
