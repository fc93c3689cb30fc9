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

    - a template applied to every branch (it has an ``optimizer``)::

        optim_wrapper = dict(constructor='BranchOptimWrapperConstructor', type='OptimWrapper',
                             optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))

    - one entry per branch, keyed by modality, each with its own ``optimizer`` (and optionally ``constructor``,
      ``paramwise_cfg``, ``type``...). The other top-level keys are defaults shared by every entry, an entry's own
      keys win: ``tools/train.py --amp`` sets the top-level ``type='AutocastOptimWrapper'``, which reaches every entry
      that does not set ``type`` itself::

        optim_wrapper = dict(constructor='BranchOptimWrapperConstructor', clip_grad=dict(max_norm=1.0),
                             rgb=dict(optimizer=dict(type='Adam', lr=0.005)),
                             depth=dict(optimizer=dict(type='Adam', lr=0.001)))

    A ``param_scheduler`` config without a ``type`` key but with one entry per modality schedules each branch on its
    own; a single scheduler config is applied by mmengine to every branch's optimiser.

    Args:
        optim_wrapper_cfg: The ``optim_wrapper`` config without ``constructor`` and ``paramwise_cfg``.
        paramwise_cfg: Parameter-wise options for every branch (an entry's own ``paramwise_cfg`` wins).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(f'optim_wrapper_cfg must be a dict, got {type(optim_wrapper_cfg).__name__}.')
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if paramwise_cfg is not None:
            cfg['paramwise_cfg'] = paramwise_cfg
        self.is_template = 'optimizer' in cfg
        self.branch_cfgs = {} if self.is_template else {
            key: dict(value) for key, value in cfg.items() if isinstance(value, dict) and 'optimizer' in value}
        self.shared_cfg = {key: value for key, value in cfg.items() if key not in self.branch_cfgs}
        if not self.is_template and not self.branch_cfgs:
            raise ValueError(
                'BranchOptimWrapperConstructor: optim_wrapper needs either an `optimizer` (a template for every '
                'branch) or one entry per branch keyed by modality, each with its own `optimizer`; got keys '
                f'{sorted(cfg)}.')

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
        optim_wrappers = {}
        for name, cfg in self._branch_cfgs(branch_names).items():
            branch = getattr(model, f'branch_{name}')
            if is_model_wrapper(branch):
                branch = branch.module
            optim_wrappers[name] = build_optim_wrapper(branch, cfg)
        return OptimWrapperDict(**optim_wrappers)

    def _branch_cfgs(self, branch_names: tuple[str, ...]) -> dict[str, dict]:
        if self.is_template:
            return {name: copy.deepcopy(self.shared_cfg) for name in branch_names}
        missing = sorted(set(branch_names) - set(self.branch_cfgs))
        unknown = sorted(set(self.branch_cfgs) - set(branch_names))
        if missing or unknown:
            without_optimizer = sorted(set(missing) & set(self.shared_cfg))
            raise ValueError(
                'BranchOptimWrapperConstructor: the optim_wrapper entries do not match the branches '
                f'{list(branch_names)}: missing {missing}, unknown {unknown}'
                + (f' (entries {without_optimizer} have no `optimizer`).' if without_optimizer else '.'))
        return {name: {**copy.deepcopy(self.shared_cfg), **copy.deepcopy(self.branch_cfgs[name])}
                for name in branch_names}
