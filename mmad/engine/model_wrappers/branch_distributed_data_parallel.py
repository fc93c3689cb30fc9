"""DDP wrapper of a multi-branch model: one DDP per trainable child, optionally with synchronised BatchNorm."""
from mmengine.device import get_device
from mmengine.model import MMSeparateDistributedDataParallel
from torch import nn

from mmad.registry import MODEL_WRAPPERS

SYNC_BN_IMPLEMENTATIONS = ('torch', )


def has_trainable_parameters(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` requires a gradient."""
    return any(parameter.requires_grad for parameter in module.parameters())


def convert_trainable_children_to_sync_batchnorm(model: nn.Module) -> list[str]:
    """Replace the BatchNorm layers of every direct child that has trainable parameters by ``nn.SyncBatchNorm``.

    For CRD these children are the student branches (``branch_<modality>``); the frozen teacher has no trainable
    parameter and keeps its layers. The new layers share the parameters and buffers of the old ones, so the state
    dict keeps its keys and values.

    Args:
        model: The model, modified in place.

    Returns:
        Names of the converted children, in order.
    """
    converted = []
    for name, child in model.named_children():
        if has_trainable_parameters(child):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
            converted.append(name)
    return converted


@MODEL_WRAPPERS.register_module()
class BranchDistributedDataParallel(MMSeparateDistributedDataParallel):
    """``MMSeparateDistributedDataParallel`` (each trainable child in its own DDP) with an optional SyncBN switch.

    BatchNorm is per process: with N processes of batch B each, every student BatchNorm layer normalises with the
    statistics of B images, not of N x B. ``sync_bn='torch'`` converts the BatchNorm layers of the trainable
    children (CRD's branches) to ``nn.SyncBatchNorm``, whose training statistics are those of the global batch, as
    one process with batch N x B would compute them; the frozen teacher (always in eval mode, running statistics) is
    not converted. The price is an all-gather per BatchNorm layer in every training forward and backward. torch's
    SyncBatchNorm trains on GPUs only, so ``sync_bn`` is refused when the model is on the CPU (gloo runs).
    Single-process runs build no wrapper and are unaffected.

    Args:
        module: The model; its children with trainable parameters are wrapped one by one.
        sync_bn: None keeps per-process BatchNorm; ``'torch'`` converts to ``torch.nn.SyncBatchNorm``.
        broadcast_buffers: Whether every forward starts from rank 0's buffers (DDP's option).
        find_unused_parameters: DDP's option.
        **kwargs: Further arguments of ``MMDistributedDataParallel`` (e.g. ``device_ids``).
    """

    def __init__(self,
                 module: nn.Module,
                 sync_bn: str | None = None,
                 broadcast_buffers: bool = False,
                 find_unused_parameters: bool = False,
                 **kwargs) -> None:
        if sync_bn is not None:
            if sync_bn not in SYNC_BN_IMPLEMENTATIONS:
                raise ValueError(f'model_wrapper_cfg.sync_bn={sync_bn!r}: expected None or one of '
                                 f'{SYNC_BN_IMPLEMENTATIONS} (mmcv-lite has no SyncBN)')
            device = get_device()
            if device == 'cpu':
                raise ValueError(f"model_wrapper_cfg.sync_bn={sync_bn!r}: torch's SyncBatchNorm trains on GPUs only "
                                 'and this run is on the CPU; set model_wrapper_cfg.sync_bn=None for CPU (gloo) runs')
            convert_trainable_children_to_sync_batchnorm(module)
        super().__init__(module, broadcast_buffers=broadcast_buffers,
                         find_unused_parameters=find_unused_parameters, **kwargs)
