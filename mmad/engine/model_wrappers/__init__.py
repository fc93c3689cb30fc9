"""Model wrappers for distributed training."""
from .branch_distributed_data_parallel import (
    BranchDistributedDataParallel,
    convert_trainable_children_to_sync_batchnorm,
)

__all__ = ['BranchDistributedDataParallel', 'convert_trainable_children_to_sync_batchnorm']
