"""Process-group set-up that also works on CPU-only machines."""
from __future__ import annotations

import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def default_backend() -> str:
    """``'nccl'`` when CUDA is available, else ``'gloo'``."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_distributed_if_needed(cfg: Config) -> None:
    """Initialise the process group before mmengine does, when mmengine's own set-up would fail.

    mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``, which fails without a GPU. When the launcher
    is not ``'none'`` and the backend (``cfg.env_cfg.dist_cfg.backend``, chosen automatically when unset) is
    ``gloo`` on a machine without CUDA, the gloo process group is initialised here from torchrun's environment
    variables; mmengine then finds it initialised and skips its own set-up. On GPUs the backend is written into
    the config and mmengine initialises as usual.

    Args:
        cfg: The full config; ``cfg.launcher`` and ``cfg.env_cfg.dist_cfg`` are read and updated.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend') or default_backend()
    dist_cfg['backend'] = backend
    if torch.cuda.is_available():
        return
    if backend != 'gloo':
        raise RuntimeError(f'Distributed backend {backend!r} needs CUDA, which is not available; use gloo on CPU '
                           "(--cfg-options env_cfg.dist_cfg.backend=gloo).")
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise RuntimeError('Set MASTER_ADDR to the first node of the SLURM allocation for CPU training.')
    torch_dist.init_process_group(backend='gloo')
