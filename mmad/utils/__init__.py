from .checkpoint import (SAFE_GLOBALS, UnsafeCheckpointError, load_checkpoint_safely, register_safe_checkpoint_loader,
                         restore_history_buffers, to_safe_checkpoint)
from .dist import default_backend, init_distributed_if_needed
from .setup_env import register_all_modules

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'default_backend', 'init_distributed_if_needed',
    'load_checkpoint_safely', 'register_all_modules', 'register_safe_checkpoint_loader', 'restore_history_buffers',
    'to_safe_checkpoint'
]
