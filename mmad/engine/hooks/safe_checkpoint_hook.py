"""Hook that makes every saved checkpoint loadable with ``torch.load(weights_only=True)`` and every load strict."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu

from mmad.registry import HOOKS
from mmad.utils.checkpoint import register_safe_checkpoint_loader, restore_history_buffers, to_safe_checkpoint
from mmad.utils.model_checkpoint import checkpoint_info, match_checkpoint_to_model


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Sanitise checkpoints before saving; check them against the model and restore message-hub history on loading.

    The model's state dict is saved without the keys of nested DDP wrappers (``branch_rgb.module.*``).

    Before saving it also records what inference needs and what a load is checked against in
    ``checkpoint['meta']['mmad']``: the modalities and the branch names (lists, in order), the teacher's identity
    (``model.teacher.identity``) and the image size (``cfg.image_size`` when the config defines it). The fitted
    aggregator state (validation statistics) is a set of buffers of the model and lives in ``state_dict``.

    Every checkpoint the runner loads (``load_from``, ``resume``, ``tools/test.py``) goes through
    :func:`~mmad.utils.model_checkpoint.match_checkpoint_to_model` before it reaches the model: recorded modalities
    (and their order), branches, teacher, every key and every shape must fit, else the load stops with a one-line
    ``CheckpointMismatchError``; checkpoints written before the aggregator owned its statistics are mapped by its
    one explicit key map. mmengine then loads a state dict that has exactly the model's keys.

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
        checkpoint.setdefault('meta', {})['mmad'] = dict(image_size=image_size, **checkpoint_info(model))
        # Under MMSeparateDistributedDataParallel the branches are wrapped inside the model, so model.state_dict()
        # has keys like 'branch_rgb.module.ocbe...'; save wrapper-free keys, which load into any model.
        checkpoint['state_dict'] = weights_to_cpu(get_state_dict(model))
        for key in list(checkpoint):
            checkpoint[key] = to_safe_checkpoint(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check the checkpoint against the model, leave exactly the model's keys, restore the history buffers."""
        filename = getattr(runner, '_load_from', None) or 'the checkpoint'
        checkpoint['state_dict'] = match_checkpoint_to_model(checkpoint, runner.model, filename)
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = restore_history_buffers(checkpoint['message_hub'])
