"""Optimiser-wrapper constructor giving each branch of a multi-branch detector its own optimiser."""
from __future__ import annotations

import copy

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from torch import nn

from mmad.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BranchOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one ``OptimWrapper`` per branch, over that branch's parameters only.

    The model (possibly wrapped, e.g. by ``MMSeparateDistributedDataParallel``) must expose ``branch_names`` and
    hold each branch as the child ``branch_<name>`` (itself possibly DDP-wrapped). The teacher and anything outside
    the branches get no optimiser. Two config forms:

    - a template applied to every branch::

        optim_wrapper = dict(constructor='BranchOptimWrapperConstructor', type='OptimWrapper',
                             optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))

    - one entry per branch, keyed by modality (each entry may carry its own ``constructor`` and
      ``paramwise_cfg``)::

        optim_wrapper = dict(constructor='BranchOptimWrapperConstructor',
                             rgb=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=0.005)),
                             depth=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=0.001)))

    A ``param_scheduler`` config without a ``type`` key but with one entry per modality schedules each branch on its
    own; a single scheduler config is applied by mmengine to every branch's optimiser.

    Args:
        optim_wrapper_cfg: The ``optim_wrapper`` config without ``constructor`` and ``paramwise_cfg``.
        paramwise_cfg: Parameter-wise options applied to every branch with the template form.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(f'optim_wrapper_cfg must be a dict, got {type(optim_wrapper_cfg).__name__}.')
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self.paramwise_cfg = paramwise_cfg
        self.is_template = 'optimizer' in self.optim_wrapper_cfg
        if not self.is_template:
            not_dicts = [key for key, value in self.optim_wrapper_cfg.items() if not isinstance(value, dict)]
            if not_dicts or not self.optim_wrapper_cfg:
                raise ValueError(
                    'BranchOptimWrapperConstructor: optim_wrapper needs either an `optimizer` (a template for every '
                    f'branch) or one config dict per branch keyed by modality; got keys {sorted(self.optim_wrapper_cfg)}'
                    f' (entries that are not dicts: {not_dicts}).')
            if paramwise_cfg is not None:
                raise ValueError('BranchOptimWrapperConstructor: with one config per branch, put `paramwise_cfg` '
                                 'inside each branch entry, not at the top level.')

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """Build the optimiser wrappers.

        Args:
            model: The detector, possibly wrapped.

        Returns:
            ``OptimWrapperDict`` keyed by branch name.
        """
        if is_model_wrapper(model):
            model = model.module
        branch_names = tuple(getattr(model, 'branch_names', ()))
        if not branch_names:
            raise TypeError(f'BranchOptimWrapperConstructor needs a model with `branch_names` (e.g. CRD), got '
                            f'{type(model).__name__}.')
        branch_cfgs = self._branch_cfgs(branch_names)
        optim_wrappers = {}
        for name in branch_names:
            branch = getattr(model, f'branch_{name}')
            if is_model_wrapper(branch):
                branch = branch.module
            optim_wrappers[name] = build_optim_wrapper(branch, branch_cfgs[name])
        return OptimWrapperDict(**optim_wrappers)

    def _branch_cfgs(self, branch_names: tuple[str, ...]) -> dict[str, dict]:
        if self.is_template:
            template = copy.deepcopy(self.optim_wrapper_cfg)
            if self.paramwise_cfg is not None:
                template['paramwise_cfg'] = self.paramwise_cfg
            return {name: copy.deepcopy(template) for name in branch_names}
        missing = sorted(set(branch_names) - set(self.optim_wrapper_cfg))
        unknown = sorted(set(self.optim_wrapper_cfg) - set(branch_names))
        if missing or unknown:
            raise ValueError(f'BranchOptimWrapperConstructor: optim_wrapper has one entry per branch but its keys do '
                             f'not match the branches {list(branch_names)}: missing {missing}, unknown {unknown}.')
        return {name: copy.deepcopy(self.optim_wrapper_cfg[name]) for name in branch_names}
