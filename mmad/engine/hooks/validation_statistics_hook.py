"""Hook computing the validation statistics of each branch's anomaly maps (mean and std for NormalizedSum)."""
from __future__ import annotations

import copy
import sys
import warnings

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.utils import ProgressBar
from torch import nn
from torch.utils.data import DataLoader

from mmad.registry import HOOKS

NON_PADDING_SAMPLER = dict(type='DefaultSampler', shuffle=False, round_up=False)


@HOOKS.register_module()
class ValidationStatisticsHook(Hook):
    """Compute one global mean and standard deviation per branch over every pixel of every raw validation map.

    The raw (unsmoothed) map of each branch comes from ``model.raw_branch_maps(inputs) -> {branch: Tensor[B, H, W]}``;
    sums and sums of squares are accumulated in float64, all-reduced across ranks, and the results are written into
    the model with ``model.set_validation_statistics(mean, std)`` (buffers, so they are saved in checkpoints).
    The dataloader uses a non-padding sampler (``DefaultSampler(shuffle=False, round_up=False)``), so under
    distributed training every validation sample counts exactly once.

    When it runs:

    - ``after_train_epoch`` of the last epoch (and of every epoch followed by a validation run, so that the
      validation uses statistics of the current weights). Its priority is above ``CheckpointHook`` so the last
      checkpoint holds the statistics.
    - ``before_val`` / ``before_test``: when the model has no statistics (e.g. a checkpoint saved without them), it
      warns and computes them.

    Args:
        dataloader: Config of the dataloader over the (normal-only) validation split, or the name of a top-level
            config entry holding it (e.g. ``'val_stats_dataloader'``). A built ``DataLoader`` is used as given.
        show_progress: Whether rank 0 shows a progress bar.
    """

    priority = 'NORMAL'

    def __init__(self, dataloader: dict | str | DataLoader, show_progress: bool = True) -> None:
        self.dataloader_cfg = dataloader
        self.show_progress = show_progress
        self._dataloader: DataLoader | None = dataloader if isinstance(dataloader, DataLoader) else None

    def after_train_epoch(self, runner: Runner) -> None:
        """Compute the statistics after the last epoch or before a validation run."""
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if self.is_last_train_epoch(runner) or self._validation_follows(runner, runner.epoch + 1):
            self.compute_statistics(runner)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """With an iteration-based loop, compute the statistics after the last iteration or before a validation."""
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if self.is_last_train_iter(runner) or self._validation_follows(runner, runner.iter + 1):
            self.compute_statistics(runner)

    def before_val(self, runner: Runner) -> None:
        """Compute the statistics when the model to validate has none."""
        self._compute_if_missing(runner, 'validation')

    def before_test(self, runner: Runner) -> None:
        """Compute the statistics when the loaded model has none."""
        self._compute_if_missing(runner, 'test')

    def compute_statistics(self, runner: Runner) -> tuple[dict[str, float], dict[str, float]]:
        """Run the model over the validation dataloader and store the statistics in it.

        Args:
            runner: The runner whose model (possibly wrapped) is measured.

        Returns:
            ``(mean, std)``, each a dict branch -> float.
        """
        model = _unwrap(runner.model)
        mean, std = compute_map_statistics(model, self._get_dataloader(runner),
                                           show_progress=self.show_progress and is_main_process())
        model.set_validation_statistics(mean, std)
        runner.logger.info('Validation map statistics: ' + ', '.join(
            f'{name}: mean {mean[name]:.6g}, std {std[name]:.6g}' for name in mean))
        return mean, std

    def _compute_if_missing(self, runner: Runner, stage: str) -> None:
        model = _unwrap(runner.model)
        if bool(model.val_stats_ready):
            return
        message = (f'The model has no validation statistics (mean/std of the branch maps) for {stage}; '
                   'computing them now from the validation dataloader.')
        warnings.warn(message, stacklevel=2)
        runner.logger.warning(message)
        self.compute_statistics(runner)

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
def compute_map_statistics(model: nn.Module, dataloader: DataLoader,
                           show_progress: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """Global mean and (population) standard deviation of every pixel of every raw branch map.

    Under distributed training every rank accumulates its own samples (a rank may have none) and the float64 sums
    are all-reduced, so all ranks return the same statistics.

    Args:
        model: A model (not wrapped) with ``branch_names``, ``data_preprocessor`` and
            ``raw_branch_maps(inputs) -> {branch: Tensor[B, H, W]}``.
        dataloader: Batches of the validation split.
        show_progress: Whether to show a progress bar.

    Returns:
        ``(mean, std)``, each a dict branch -> float.
    """
    names = list(model.branch_names)
    # rows: pixel count, sum, sum of squares; one column per branch
    sums = torch.zeros(3, len(names), dtype=torch.float64, device=model.data_preprocessor.device)
    was_training = model.training
    model.eval()
    progress = ProgressBar(len(dataloader), file=sys.stdout) if show_progress else None
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        maps = model.raw_branch_maps(data['inputs'])
        for index, name in enumerate(names):
            values = maps[name].double()
            sums[0, index] += values.numel()
            sums[1, index] += values.sum()
            sums[2, index] += values.square().sum()
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.file.write('\n')
    model.train(was_training)
    all_reduce(sums, op='sum')
    count, total, total_of_squares = sums
    if (count == 0).any():
        raise ValueError('ValidationStatisticsHook: the validation dataloader is empty; the statistics need at '
                         'least one sample.')
    mean = total / count
    std = (total_of_squares / count - mean.square()).clamp_min(0).sqrt()
    return dict(zip(names, mean.tolist())), dict(zip(names, std.tolist()))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model
