"""Hook fitting the score aggregator on the raw validation maps (the mean and std of each branch for NormalizedSum)."""
from __future__ import annotations

import copy
import sys
import warnings

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu
from mmengine.utils import ProgressBar
from torch import nn
from torch.utils.data import DataLoader

from mmad.registry import HOOKS
from mmad.utils.checkpoint import update_checkpoint_state
from mmad.utils.model_checkpoint import AGGREGATOR_PREFIX

NON_PADDING_SAMPLER = dict(type='DefaultSampler', shuffle=False, round_up=False)


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

    Args:
        dataloader: Config of the dataloader over the (normal-only) validation split, or the name of a top-level
            config entry holding it (e.g. ``'val_stats_dataloader'``). A built ``DataLoader`` is used as given.
        show_progress: Whether rank 0 shows a progress bar.
    """

    priority = 'LOWEST'

    def __init__(self, dataloader: dict | str | DataLoader, show_progress: bool = True) -> None:
        self.dataloader_cfg = dataloader
        self.show_progress = show_progress
        self._dataloader: DataLoader | None = dataloader if isinstance(dataloader, DataLoader) else None
        self._saved_at_iter: int | None = None

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch=None) -> None:
        """Reset the aggregator's fitted state: it belongs to weights that are about to change."""
        aggregator = _unwrap(runner.model).aggregator
        if aggregator.requires_fitting:
            aggregator.reset()

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

    def _fit_and_resave(self, runner: Runner) -> None:
        if not self.fit(runner) or self._saved_at_iter != runner.iter or not is_main_process():
            return
        path = runner.message_hub.get_info('last_ckpt')
        state = weights_to_cpu(get_state_dict(_unwrap(runner.model)))
        update_checkpoint_state(path, {key: value for key, value in state.items()
                                       if key.startswith(AGGREGATOR_PREFIX)})
        runner.logger.info(f'Re-saved {path} with the fitted aggregator.')

    def _fit_if_missing(self, runner: Runner, stage: str) -> None:
        aggregator = _unwrap(runner.model).aggregator
        if not aggregator.requires_fitting or aggregator.is_fitted:
            return
        message = (f'The model\'s {type(aggregator).__name__} is not fitted (no validation statistics of the branch '
                   f'maps) for {stage}; fitting it now on the validation dataloader.')
        warnings.warn(message, stacklevel=2)
        runner.logger.warning(message)
        self.fit(runner)

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


@torch.no_grad()
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


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model
