"""Hook fitting what is learnt from the validation split after training: aggregator statistics, then the threshold.

The aggregator's statistics come from the raw validation maps (the mean and std of each branch for NormalizedSum),
the decision threshold from the image scores of the fitted model.
"""
from __future__ import annotations

import copy
import sys
import warnings
from types import MappingProxyType

import numpy as np
import torch
from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu
from mmengine.utils import ProgressBar
from torch import nn
from torch.utils.data import DataLoader

from mmad.models.detectors.decision_threshold import (
    DEFAULT_QUANTILE,
    FEW_SCORES,
    DecisionThreshold,
    f1_optimal_threshold,
    quantile_threshold,
)
from mmad.registry import HOOKS
from mmad.utils.checkpoint import update_checkpoint_state
from mmad.utils.model_checkpoint import FITTED_STATE_PREFIXES

NON_PADDING_SAMPLER = dict(type='DefaultSampler', shuffle=False, round_up=False)
DEFAULT_THRESHOLD = MappingProxyType(dict(rule='quantile', q=DEFAULT_QUANTILE))


@HOOKS.register_module()
class ValidationStatisticsHook(Hook):
    """Fit the model's score aggregator (``model.aggregator``) on the raw validation maps of every branch.

    The hook only feeds the aggregator: ``aggregator.reset()``, ``aggregator.update(raw_maps)`` for every batch of
    ``model.raw_branch_maps(inputs) -> {branch: Tensor[B, H, W]}``, then ``aggregator.finalize()`` (which reduces
    across ranks). What is fitted and how is the aggregator's business; its state is a set of buffers keyed by
    branch name, so it is saved in checkpoints. Nothing is done when the aggregator needs no fitting
    (``requires_fitting`` False, e.g. ``Sum``). The dataloader uses a non-padding sampler
    (``DefaultSampler(shuffle=False, round_up=False)``), so under distributed training every validation sample
    counts exactly once.

    When it runs:

    - ``before_train_iter``: the weights are about to change, so a fitted state no longer applies; it is reset
      (a checkpoint saved later without a new fit says so, and ``tools/test.py`` fits it before testing).
    - ``after_train_epoch`` of the last epoch (and of every epoch followed by a validation run, so that the
      validation uses statistics of the current weights). Its priority is below ``CheckpointHook``: the checkpoint
      of that epoch is written first, so a failure while fitting (e.g. a wrong validation data root) loses no
      training; once fitted, that checkpoint is re-saved atomically with the aggregator's state.
    - ``before_val`` / ``before_test``: when the aggregator is not fitted (e.g. a checkpoint saved without its
      state), it warns and fits it.

    The decision threshold (``model.threshold``, a :class:`~mmad.models.detectors.DecisionThreshold`; models
    without one are skipped) is fitted right after the aggregator, at the same moments, on the image scores of the
    fitted model, with the rule of ``threshold``:

    - ``dict(rule='quantile', q=0.99)`` (the default): the ``q``-quantile of the scores of the normal samples
      (``gt_label`` 0, or no label) of ``dataloader``;
    - ``dict(rule='f1', dataloader='threshold_dataloader')``: the F1-optimal threshold on a labelled split, a
      dataloader config or the name of a config entry; the test split (``'test_dataloader'``, or a dataset of the
      same type, data root, category and split as the test dataset) is refused;
    - ``dict(rule='manual', value=0.5)``: a given value, set before testing over the checkpoint's;
    - ``None``: no threshold is fitted (decisions are off unless the checkpoint holds one).

    Args:
        dataloader: Config of the dataloader over the (normal-only) validation split, or the name of a top-level
            config entry holding it (e.g. ``'val_stats_dataloader'``). A built ``DataLoader`` is used as given.
        threshold: The threshold rule, see above.
        show_progress: Whether rank 0 shows a progress bar.
    """

    priority = 'LOWEST'

    def __init__(self, dataloader: dict | str | DataLoader, threshold: dict | None = DEFAULT_THRESHOLD,
                 show_progress: bool = True) -> None:
        self.dataloader_cfg = dataloader
        self.threshold_cfg = _check_threshold_cfg(threshold)
        self.show_progress = show_progress
        self._dataloader: DataLoader | None = dataloader if isinstance(dataloader, DataLoader) else None
        self._threshold_dataloader: DataLoader | None = None
        self._saved_at_iter: int | None = None

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch=None) -> None:
        """Reset the aggregator's fitted state and the threshold: they belong to weights that are about to change."""
        model = _unwrap(runner.model)
        if model.aggregator.requires_fitting:
            model.aggregator.reset()
        threshold = _threshold_of(model)
        if threshold is not None and self.threshold_cfg is not None:
            threshold.reset()

    def after_train_epoch(self, runner: Runner) -> None:
        """Fit after the last epoch or before a validation run, then re-save this epoch's checkpoint."""
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if self.is_last_train_epoch(runner) or self._validation_follows(runner, runner.epoch + 1):
            self._fit_and_resave(runner)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """With an iteration-based loop, fit after the last iteration or before a validation."""
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if self.is_last_train_iter(runner) or self._validation_follows(runner, runner.iter + 1):
            self._fit_and_resave(runner)

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Note the step of the save, so that a fit at the same step re-saves that checkpoint."""
        self._saved_at_iter = runner.iter

    def before_val(self, runner: Runner) -> None:
        """Fit the aggregator when the model to validate has no fitted one."""
        self._fit_if_missing(runner, 'validation')

    def before_test(self, runner: Runner) -> None:
        """Fit the aggregator when the loaded model has no fitted one."""
        self._fit_if_missing(runner, 'test')

    def fit(self, runner: Runner) -> dict[str, dict[str, float]]:
        """Fit the model's aggregator on the validation dataloader (nothing when it needs no fitting).

        Args:
            runner: The runner whose model (possibly wrapped) is measured.

        Returns:
            Branch -> fitted values (e.g. ``dict(mean=..., std=...)``), empty when nothing was fitted.
        """
        model = _unwrap(runner.model)
        if not model.aggregator.requires_fitting:
            return {}
        fitted = fit_aggregator(model, self._get_dataloader(runner),
                                show_progress=self.show_progress and is_main_process())
        runner.logger.info(f'{type(model.aggregator).__name__} fitted on the validation maps: ' + ', '.join(
            f'{name}: ' + ', '.join(f'{key} {value:.6g}' for key, value in values.items())
            for name, values in fitted.items()))
        return fitted

    def fit_threshold(self, runner: Runner) -> float | None:
        """Fit the model's decision threshold with the configured rule (after the aggregator).

        Args:
            runner: The runner whose model (possibly wrapped) is scored.

        Returns:
            The threshold, None when the model has none or no rule is configured.
        """
        model = _unwrap(runner.model)
        threshold = _threshold_of(model)
        cfg = self.threshold_cfg
        if threshold is None or cfg is None:
            return None
        rule = cfg['rule']
        if rule == 'manual':
            threshold.set(cfg['value'], 'manual')
            runner.logger.info(f'Decision threshold set by hand: {threshold.describe()}.')
            return threshold.threshold
        threshold.reset()
        show = self.show_progress and is_main_process()
        if rule == 'quantile':
            scores, labels = score_dataloader(model, self._get_dataloader(runner), show)
            normal = scores[labels != 1]
            q = cfg.get('q', DEFAULT_QUANTILE)
            threshold.set(quantile_threshold(normal, q), 'quantile', quantile=q)
            message = (f'Decision threshold {threshold.threshold:.6g}: the {q:g}-quantile of the image scores of '
                       f'{normal.size} normal validation samples (anomalous when the score is above it)')
            if normal.size < len(scores):
                message += f'; {len(scores) - normal.size} anomalous samples of the split were left out'
            if normal.size < FEW_SCORES:
                message += (f'. With fewer than {FEW_SCORES} scores the {q:g}-quantile is close to the maximum '
                            f'normal score ({normal.max():.6g})')
            runner.logger.info(message + '.')
        else:
            scores, labels = score_dataloader(model, self._get_threshold_dataloader(runner), show)
            if (labels < 0).any():
                raise ValueError(f'ValidationStatisticsHook: the F1 threshold needs a labelled split; '
                                 f'{int((labels < 0).sum())} samples of {cfg["dataloader"]!r} have no gt_label.')
            value, f1 = f1_optimal_threshold(scores, labels)
            threshold.set(value, 'f1')
            runner.logger.info(f'Decision threshold {value:.6g}: the F1-optimal threshold (F1 {f1:.4f}) on '
                               f'{len(scores)} samples ({int(labels.sum())} anomalous) of {cfg["dataloader"]!r}.')
        return threshold.threshold

    def _fit_and_resave(self, runner: Runner) -> None:
        fitted = self.fit(runner)
        threshold = self.fit_threshold(runner)
        if (not fitted and threshold is None) or self._saved_at_iter != runner.iter or not is_main_process():
            return
        path = runner.message_hub.get_info('last_ckpt')
        state = weights_to_cpu(get_state_dict(_unwrap(runner.model)))
        update_checkpoint_state(path, {key: value for key, value in state.items()
                                       if key.startswith(FITTED_STATE_PREFIXES)})
        runner.logger.info(f'Re-saved {path} with the fitted aggregator and decision threshold.')

    def _fit_if_missing(self, runner: Runner, stage: str) -> None:
        model = _unwrap(runner.model)
        aggregator = model.aggregator
        if aggregator.requires_fitting and not aggregator.is_fitted:
            message = (f'The model\'s {type(aggregator).__name__} is not fitted (no validation statistics of the '
                       f'branch maps) for {stage}; fitting it now on the validation dataloader.')
            warnings.warn(message, stacklevel=2)
            runner.logger.warning(message)
            self.fit(runner)
        threshold = _threshold_of(model)
        if threshold is None:
            return
        if self.threshold_cfg is not None and self.threshold_cfg['rule'] == 'manual' and stage == 'test':
            self.fit_threshold(runner)
        elif not threshold.is_fitted and self.threshold_cfg is not None:
            runner.logger.warning(f'The model has no decision threshold for {stage}; fitting it now '
                                  f'(rule {self.threshold_cfg["rule"]!r}).')
            self.fit_threshold(runner)
        elif not threshold.is_fitted:
            runner.logger.warning(f'The model has no decision threshold and none is configured '
                                  f'(ValidationStatisticsHook threshold=None): decisions are off for {stage}; '
                                  'scores only.')
        else:
            runner.logger.info(f'Decision threshold for {stage}: {threshold.describe()}.')

    def _get_threshold_dataloader(self, runner: Runner) -> DataLoader:
        if self._threshold_dataloader is None:
            name = self.threshold_cfg['dataloader']
            cfg = name
            if isinstance(name, str):
                if name == 'test_dataloader':
                    raise ValueError('ValidationStatisticsHook: the F1 threshold may not be fitted on the test split '
                                     "(threshold.dataloader='test_dataloader'); name a labelled split that is not "
                                     'the test split.')
                if name not in runner.cfg:
                    raise KeyError(f'ValidationStatisticsHook: the config has no entry {name!r} for the threshold '
                                   'dataloader.')
                cfg = runner.cfg[name]
            if isinstance(cfg, DataLoader):
                self._threshold_dataloader = cfg
                return cfg
            _refuse_test_split(cfg, runner.cfg.get('test_dataloader'), name)
            cfg = copy.deepcopy(dict(cfg))
            cfg['sampler'] = dict(NON_PADDING_SAMPLER)
            self._threshold_dataloader = Runner.build_dataloader(cfg)
        return self._threshold_dataloader

    def _get_dataloader(self, runner: Runner) -> DataLoader:
        if self._dataloader is None:
            cfg = self.dataloader_cfg
            if isinstance(cfg, str):
                if cfg not in runner.cfg:
                    raise KeyError(f'ValidationStatisticsHook: the config has no entry {cfg!r} for the validation '
                                   'statistics dataloader.')
                cfg = runner.cfg[cfg]
            cfg = copy.deepcopy(dict(cfg))
            sampler = cfg.get('sampler')
            if sampler is not None and dict(sampler) != NON_PADDING_SAMPLER:
                warnings.warn(f'ValidationStatisticsHook replaces the sampler {dict(sampler)} by {NON_PADDING_SAMPLER}'
                              ' so that no sample counts twice.', stacklevel=2)
            cfg['sampler'] = dict(NON_PADDING_SAMPLER)
            self._dataloader = Runner.build_dataloader(cfg)
        return self._dataloader

    @staticmethod
    def _validation_follows(runner: Runner, progress: int) -> bool:
        """Whether the train loop runs a validation once ``progress`` epochs (or iterations) are done."""
        loop = runner.train_loop
        if runner.val_loop is None or progress < loop.val_begin:
            return False
        maximum = loop.max_epochs if isinstance(loop, EpochBasedTrainLoop) else loop.max_iters
        return progress % loop.val_interval == 0 or progress == maximum


@torch.inference_mode()
def fit_aggregator(model: nn.Module, dataloader: DataLoader,
                   show_progress: bool = False) -> dict[str, dict[str, float]]:
    """Fit ``model.aggregator`` on every raw branch map of ``dataloader``.

    Under distributed training every rank feeds its own samples (a rank may have none) and the aggregator's
    ``finalize`` reduces across ranks, so all ranks end with the same state.

    Args:
        model: A model (not wrapped) with ``aggregator``, ``data_preprocessor`` and
            ``raw_branch_maps(inputs) -> {branch: Tensor[B, H, W]}``.
        dataloader: Batches of the validation split.
        show_progress: Whether to show a progress bar.

    Returns:
        Branch -> fitted values, as returned by ``aggregator.finalize()``.
    """
    aggregator = model.aggregator
    was_training = model.training
    model.eval()
    aggregator.reset()
    progress = ProgressBar(len(dataloader), file=sys.stdout) if show_progress else None
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        aggregator.update(model.raw_branch_maps(data['inputs']))
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.file.write('\n')
    model.train(was_training)
    return aggregator.finalize()


@torch.inference_mode()
def score_dataloader(model: nn.Module, dataloader: DataLoader, show_progress: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Image scores (``pred_score`` of ``model.predict``) and labels of every sample of ``dataloader``.

    Under distributed training the scores of every rank are gathered (each sample once with a non-padding sampler).

    Args:
        model: A model (not wrapped) with ``data_preprocessor`` and ``predict``; its aggregator fitted.
        dataloader: Batches of the split.
        show_progress: Whether to show a progress bar.

    Returns:
        ``scores`` float64 (N,) and ``labels`` int64 (N,): 0 good, 1 anomalous, -1 unlabelled.
    """
    was_training = model.training
    model.eval()
    scores, labels = [], []
    progress = ProgressBar(len(dataloader), file=sys.stdout) if show_progress else None
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        for sample in model.predict(data['inputs'], data['data_samples']):
            scores.append(float(sample.pred_score))
            labels.append(int(sample.gt_label) if 'gt_label' in sample else -1)
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.file.write('\n')
    model.train(was_training)
    gathered = all_gather_object((scores, labels))
    return (np.array([score for part in gathered for score in part[0]], dtype=np.float64),
            np.array([label for part in gathered for label in part[1]], dtype=np.int64))


def _check_threshold_cfg(cfg: dict | None) -> dict | None:
    if cfg is None:
        return None
    cfg = dict(cfg)
    rule = cfg.get('rule')
    allowed = dict(quantile={'q'}, f1={'dataloader'}, manual={'value'})
    if rule not in allowed:
        raise ValueError(f"ValidationStatisticsHook: threshold.rule must be one of {sorted(allowed)} (or "
                         f"threshold=None), got {rule!r}.")
    unknown = set(cfg) - allowed[rule] - {'rule'}
    if unknown:
        raise ValueError(f'ValidationStatisticsHook: threshold rule {rule!r} takes {sorted(allowed[rule])}, got the '
                         f'unknown keys {sorted(unknown)}.')
    if rule == 'quantile' and not 0 < cfg.get('q', DEFAULT_QUANTILE) <= 1:
        raise ValueError(f"ValidationStatisticsHook: threshold.q must be in (0, 1], got {cfg['q']}.")
    if rule == 'f1' and not cfg.get('dataloader'):
        raise ValueError("ValidationStatisticsHook: threshold rule 'f1' needs dataloader=, a labelled split that is "
                         "not the test split (a config entry name such as 'threshold_dataloader').")
    if rule == 'manual' and 'value' not in cfg:
        raise ValueError("ValidationStatisticsHook: threshold rule 'manual' needs value=.")
    return cfg


_SPLIT_KEYS = ('type', 'data_root', 'category', 'split')


def _refuse_test_split(cfg, test_cfg, name) -> None:
    """Raise when the dataloader config ``cfg`` reads the same split as the test dataloader."""
    if test_cfg is None:
        return
    dataset, test_dataset = dict(cfg).get('dataset') or {}, dict(test_cfg).get('dataset') or {}
    same = all(dataset.get(key) == test_dataset.get(key) for key in _SPLIT_KEYS)
    if same:
        described = ', '.join(f'{key}={dataset.get(key)!r}' for key in _SPLIT_KEYS)
        raise ValueError(f'ValidationStatisticsHook: the F1 threshold dataloader {name!r} reads the test split '
                         f'({described}); fit the threshold on a labelled split that is not the test split.')


def _threshold_of(model: nn.Module) -> DecisionThreshold | None:
    threshold = getattr(model, 'threshold', None)
    return threshold if isinstance(threshold, DecisionThreshold) else None


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model
