"""Hook that makes every saved checkpoint loadable with ``torch.load(weights_only=True)``."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu

from mmad.registry import HOOKS
from mmad.utils.checkpoint import register_safe_checkpoint_loader, restore_history_buffers, to_safe_checkpoint


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Sanitise checkpoints before saving, restore message-hub history after loading.

    The model's state dict is saved without the keys of nested DDP wrappers (``branch_rgb.module.*``).

    Before saving it also records what inference needs in ``checkpoint['meta']['mmad']``: the modality list, the
    branch names, the image size (``cfg.image_size`` when the config defines it) and whether the validation
    statistics are set. The statistics themselves are buffers of the model and live in ``state_dict``.

    Args:
        image_size: Model input size recorded in the checkpoint; defaults to the config's ``image_size``.
    """

    priority = 'VERY_LOW'

    def __init__(self, image_size: int | None = None) -> None:
        register_safe_checkpoint_loader()
        self.image_size = image_size

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Replace numpy values and history buffers by plain data, add mmad's inference metadata."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        image_size = self.image_size if self.image_size is not None else runner.cfg.get('image_size')
        info = dict(image_size=image_size)
        for attr in ('modalities', 'branch_names'):
            if hasattr(model, attr):
                info[attr] = list(getattr(model, attr))
        if hasattr(model, 'val_stats_ready'):
            info['val_stats_ready'] = bool(model.val_stats_ready)
        checkpoint.setdefault('meta', {})['mmad'] = info
        # Under MMSeparateDistributedDataParallel the branches are wrapped inside the model, so model.state_dict()
        # has keys like 'branch_rgb.module.ocbe...'; save wrapper-free keys, which load into any model.
        checkpoint['state_dict'] = weights_to_cpu(get_state_dict(model))
        for key in list(checkpoint):
            checkpoint[key] = to_safe_checkpoint(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Turn the tagged history-buffer dicts back into ``HistoryBuffer`` objects before resuming."""
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = restore_history_buffers(checkpoint['message_hub'])
