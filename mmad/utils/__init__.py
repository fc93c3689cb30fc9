from .checkpoint import (
    SAFE_GLOBALS,
    UnsafeCheckpointError,
    load_from_local_safely,
    register_safe_checkpoint_loader,
    restore_history_buffers,
    to_safe_checkpoint,
)
from .dist import cpu_model_wrapper_cfg, default_backend, init_distributed_if_needed, shutdown_distributed
from .fileio import AtomicLocalBackend, atomic_open, remove_temp_files
from .last_checkpoint import find_last_checkpoint, is_complete_checkpoint
from .setup_env import register_all_modules

__all__ = [
    'SAFE_GLOBALS', 'AtomicLocalBackend', 'UnsafeCheckpointError', 'atomic_open', 'cpu_model_wrapper_cfg',
    'default_backend', 'find_last_checkpoint', 'init_distributed_if_needed', 'is_complete_checkpoint',
    'load_from_local_safely', 'register_all_modules', 'register_safe_checkpoint_loader', 'remove_temp_files',
    'restore_history_buffers', 'shutdown_distributed', 'to_safe_checkpoint'
]
