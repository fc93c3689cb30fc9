from .checkpoint import (
    SAFE_GLOBALS,
    UnsafeCheckpointError,
    load_from_local_safely,
    register_safe_checkpoint_loader,
    restore_history_buffers,
    to_safe_checkpoint,
)
from .config_checks import ConfigError, check_common_values, check_overrides, parse_cfg_options, set_data_location
from .config_file import read_config
from .dist import cpu_model_wrapper_cfg, default_backend, init_distributed_if_needed, shutdown_distributed
from .failures import describe_environment_failure
from .fileio import AtomicLocalBackend, atomic_open, remove_temp_files
from .last_checkpoint import find_last_checkpoint, is_complete_checkpoint
from .log_filters import ConciseLogProcessor, silence_known_notices
from .preflight import PreflightError, preflight_check, required_input_multiple, run_dataloaders
from .schedule_resume import ScheduleFollowingRunner
from .setup_env import register_all_modules
from .work_dir import describe_previous_run, previous_run_files, remove_previous_run

__all__ = [
    'SAFE_GLOBALS', 'AtomicLocalBackend', 'UnsafeCheckpointError', 'atomic_open', 'cpu_model_wrapper_cfg',
    'default_backend', 'find_last_checkpoint', 'init_distributed_if_needed', 'is_complete_checkpoint',
    'load_from_local_safely', 'register_all_modules', 'register_safe_checkpoint_loader', 'remove_temp_files',
    'restore_history_buffers', 'shutdown_distributed', 'to_safe_checkpoint'
]
__all__ += [
    'ConciseLogProcessor', 'ConfigError', 'PreflightError', 'ScheduleFollowingRunner', 'check_common_values',
    'check_overrides', 'describe_environment_failure', 'describe_previous_run', 'parse_cfg_options',
    'preflight_check', 'previous_run_files', 'read_config', 'remove_previous_run', 'required_input_multiple',
    'run_dataloaders', 'set_data_location', 'silence_known_notices'
]
