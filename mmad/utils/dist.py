"""Process-group set-up that works on GPUs (nccl) and on CPU-only machines (gloo).

mmengine's launchers (``pytorch``, ``slurm``, ``mpi``) call ``torch.cuda.set_device`` and its runner gives every
``DistributedDataParallel`` wrapper ``device_ids=[LOCAL_RANK]``; both fail without a GPU. On a CPU-only machine
:func:`init_distributed_if_needed` therefore initialises the gloo process group itself, from the launcher's
environment variables, before mmengine touches CUDA, and makes the model wrapper build its DDP modules without
``device_ids``. mmengine then finds the group initialised and skips its own set-up. With GPUs nothing is done
beyond choosing the backend: mmengine initialises as usual.

Example:
    >>> cfg = Config.fromfile('configs/crd/crd_demo_synthetic.py')
    >>> cfg.launcher = 'pytorch'  # started by torchrun
    >>> init_distributed_if_needed(cfg)  # gloo on CPU, nccl (through mmengine) on GPUs
    >>> runner = Runner.from_cfg(cfg)
"""
from __future__ import annotations

import datetime
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from torch.nn.parallel import DistributedDataParallel

from mmad.registry import MODEL_WRAPPERS

DEFAULT_MASTER_PORT = '29500'
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
# Wrapper used by mmengine when ``model_wrapper_cfg`` is None.
DEFAULT_WRAPPER = 'MMDistributedDataParallel'


def default_backend() -> str:
    """``'nccl'`` when CUDA is available, else ``'gloo'``."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_distributed_if_needed(cfg: Config) -> None:
    """Choose the backend and, on CPU, initialise the gloo process group before mmengine does.

    Does nothing when ``cfg.launcher`` is ``'none'``. Otherwise the backend is ``cfg.env_cfg.dist_cfg.backend``
    or, when unset, :func:`default_backend`; it is written back into the config. Without CUDA the backend must be
    gloo; unless a group exists, it is initialised here from the launcher's environment (torchrun's ``RANK``/
    ``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``; slurm's ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``/
    ``SLURM_NODELIST``; Open MPI's ``OMPI_COMM_WORLD_*``), honouring ``dist_cfg.timeout`` (seconds) and, for
    slurm, ``dist_cfg.port``; and ``cfg.model_wrapper_cfg`` gets ``device_ids=None``.

    Args:
        cfg: The full config; ``launcher``, ``env_cfg.dist_cfg`` and ``model_wrapper_cfg`` are read and updated.

    Raises:
        ValueError: Unknown launcher.
        RuntimeError: A backend other than gloo without CUDA, or a launcher environment that lacks a variable.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher not in LAUNCHERS:
        raise ValueError(f'Unknown launcher {launcher!r}; expected one of {LAUNCHERS}.')
    if launcher == 'none':
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend') or default_backend()
    dist_cfg['backend'] = backend
    if torch.cuda.is_available():
        return
    if backend != 'gloo':
        raise RuntimeError(f'Distributed backend {backend!r} needs CUDA, which is not available; use gloo on CPU '
                           '(--cfg-options env_cfg.dist_cfg.backend=gloo).')
    if not torch_dist.is_initialized():
        if launcher == 'slurm':
            _export_slurm_env(dist_cfg.get('port'))
        elif launcher == 'mpi':
            _export_mpi_env()
        _require_env('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', launcher=launcher)
        timeout = dist_cfg.get('timeout')
        kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
        torch_dist.init_process_group(backend='gloo', **kwargs)
    cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg.get('model_wrapper_cfg'), cfg.get('find_unused_parameters'))


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group; nothing happens without one.

    Call it when a job has finished successfully. A gloo group left for the interpreter's exit to tear down can abort
    a rank whose peer is still exiting ("terminate called without an active exception", SIGABRT), which turns a
    finished run into a failed one.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def cpu_model_wrapper_cfg(model_wrapper_cfg: dict | None, find_unused_parameters: bool | None = None) -> dict:
    """The model-wrapper config for CPU processes: the same wrapper, a DDP one built without ``device_ids``.

    Args:
        model_wrapper_cfg: The config's ``model_wrapper_cfg`` (None: mmengine's default DDP wrapper, which keeps
            ``broadcast_buffers=False``, as mmengine does).
        find_unused_parameters: The config's top-level ``find_unused_parameters``, used with the default wrapper.

    Returns:
        A new config; ``device_ids=None`` when the wrapper is a ``DistributedDataParallel``.
    """
    if model_wrapper_cfg is None:
        return dict(type=DEFAULT_WRAPPER, device_ids=None, broadcast_buffers=False,
                    find_unused_parameters=bool(find_unused_parameters))
    wrapper_cfg = dict(model_wrapper_cfg)
    wrapper_type = wrapper_cfg.setdefault('type', DEFAULT_WRAPPER)
    wrapper_cls = MODEL_WRAPPERS.get(wrapper_type) if isinstance(wrapper_type, str) else wrapper_type
    if wrapper_cls is None:
        raise KeyError(f'model_wrapper_cfg.type {wrapper_type!r} is not a registered model wrapper.')
    if issubclass(wrapper_cls, DistributedDataParallel):
        wrapper_cfg['device_ids'] = None
    return wrapper_cfg


def _export_slurm_env(port: int | str | None) -> None:
    """Translate slurm's task variables into torch's, as mmengine's slurm launcher does (without CUDA)."""
    _require_env('SLURM_PROCID', 'SLURM_NTASKS', launcher='slurm')
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', DEFAULT_MASTER_PORT)
    if 'MASTER_ADDR' not in os.environ and 'SLURM_NODELIST' in os.environ:
        first_node = subprocess.run(['scontrol', 'show', 'hostname', os.environ['SLURM_NODELIST']],
                                    capture_output=True, text=True, check=False).stdout.split()
        if first_node:
            os.environ['MASTER_ADDR'] = first_node[0]


def _export_mpi_env() -> None:
    """Translate Open MPI's variables into torch's."""
    _require_env('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', launcher='mpi')
    os.environ.setdefault('RANK', os.environ['OMPI_COMM_WORLD_RANK'])
    os.environ.setdefault('WORLD_SIZE', os.environ['OMPI_COMM_WORLD_SIZE'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '0'))
    os.environ.setdefault('MASTER_PORT', DEFAULT_MASTER_PORT)


def _require_env(*names: str, launcher: str) -> None:
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher {launcher} on CPU needs the environment variables {missing}, which are not set. Start the '
            'processes with tools/dist_train.sh (torchrun), tools/slurm_train.sh (srun) or mpirun, or export them '
            '(MASTER_ADDR: address of the rank-0 machine, e.g. the first node of the allocation).')
