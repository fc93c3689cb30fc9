"""mmad plugins for the tool tests, imported by the trained process through the test config's ``custom_imports``.

- ``DumpRankStateHook``: after the run, each rank saves its model state dict and optimiser states.
- ``SigkillAtIterationHook``: the process kills itself with SIGKILL after a given training iteration.
- ``DiskFullOnSecondCheckpointBackend``: the second checkpoint write fails halfway with ENOSPC.
- ``WorkerKillingMVTec3DDataset``: a data-loader worker kills itself with SIGKILL after a number of samples.
- ``RecordingADMetric``: ADMetric that also saves the per-sample results it evaluates.
- ``MissingWeightsEncoder``: a teacher whose pretrained weights file is missing, as offline without a cache.
"""
from __future__ import annotations

import errno
import os
import os.path as osp
import signal

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.fileio import register_backend
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.runner.checkpoint import get_state_dict
from torch.utils.data import get_worker_info

from mmad.datasets import MVTec3DDataset
from mmad.evaluation.metrics import ADMetric
from mmad.evaluation.metrics.evaluated_samples import EvaluatedSamples
from mmad.registry import DATASETS, HOOKS, METRICS, MODELS
from mmad.utils.fileio import AtomicLocalBackend, atomic_open


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    priority = 'LOWEST'

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = {key: value.detach().cpu().clone() for key, value in get_state_dict(model).items()}
        os.makedirs(self.out_dir, exist_ok=True)
        optimizer = runner.optim_wrapper.state_dict() if isinstance(runner.optim_wrapper, OptimWrapperDict) else {}
        torch.save(dict(state_dict=state, optimizer=optimizer), osp.join(self.out_dir, f'rank{get_rank()}.pt'))


@HOOKS.register_module()
class SigkillAtIterationHook(Hook):
    """SIGKILL this process once ``iteration`` training iterations (counted over epochs) are done."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


_checkpoint_puts = 0


@register_backend('disk_full_on_second_checkpoint', force=True)
class DiskFullOnSecondCheckpointBackend(AtomicLocalBackend):
    """Writes the first checkpoint; the second write stops halfway with ENOSPC, as on a full disk."""

    def put(self, obj: bytes, filepath) -> None:
        global _checkpoint_puts
        _checkpoint_puts += 1
        if _checkpoint_puts < 2:
            super().put(obj, filepath)
            return
        with atomic_open(filepath, 'wb') as file:
            file.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))


@DATASETS.register_module()
class WorkerKillingMVTec3DDataset(MVTec3DDataset):
    """MVTec3DDataset whose data-loader worker SIGKILLs itself once ``kill_after`` samples were loaded in workers.

    The count is kept in ``counter_file`` (one byte per sample) so that it survives the per-epoch worker restarts.
    """

    def __init__(self, counter_file: str, kill_after: int, **kwargs) -> None:
        self.counter_file = counter_file
        self.kill_after = kill_after
        super().__init__(**kwargs)

    def __getitem__(self, index: int) -> dict:
        if get_worker_info() is not None:
            with open(self.counter_file, 'ab') as file:
                file.write(b'.')
            if os.path.getsize(self.counter_file) > self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


@METRICS.register_module()
class RecordingADMetric(ADMetric):
    """ADMetric that saves the names, fused maps and scores it evaluates to ``<out_dir>/evaluated_samples.npz``."""

    def compute_metrics(self, results: EvaluatedSamples) -> dict[str, float]:
        os.makedirs(self.out_dir, exist_ok=True)
        np.savez(osp.join(self.out_dir, 'evaluated_samples.npz'), names=np.array(results.names),
                 maps=results.maps('fused'), scores=results.scores('fused'))
        return super().compute_metrics(results)


@MODELS.register_module()
class MissingWeightsEncoder(torch.nn.Module):
    """A teacher whose weights cannot be found: its constructor raises like a teacher offline without a cache."""

    def __init__(self, weights: str) -> None:
        super().__init__()
        raise FileNotFoundError(f'teacher weights {weights} not found and the hub is unreachable')
