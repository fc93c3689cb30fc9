"""Score aggregators: per-branch anomaly maps -> one fused anomaly map (paper Tab. 7).

An aggregator is an ``nn.Module`` registered in ``mmad.registry.AGGREGATORS`` (a registry of its own, kept apart
from ``MODELS`` so that ``aggregator=dict(type=...)`` lists only aggregators). It is built for the branch names of
its detector and owns whatever state it needs, keyed by branch name: ``NormalizedSum`` holds the buffers
``mean_<branch>``, ``std_<branch>`` (float64 scalars) and ``fitted`` (bool), so a CRD checkpoint has
``aggregator.mean_rgb`` etc. A stateful aggregator is fitted on the raw validation maps of every branch:

    >>> from mmad.registry import AGGREGATORS
    >>> aggregator = AGGREGATORS.build(dict(type='NormalizedSum', branch_names=('rgb', 'depth')))
    >>> aggregator.reset()
    >>> for raw_maps in validation_raw_maps:  # each {branch: Tensor[B, H, W]}
    ...     aggregator.update(raw_maps)
    >>> aggregator.finalize()  # all-reduced across ranks when a process group is initialised
    >>> fused = aggregator(dict(rgb=rgb_map, depth=depth_map))
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from mmengine.dist import all_reduce
from mmengine.model import BaseModule
from torch import Tensor

from mmad.registry import AGGREGATORS


class BranchMapAggregator(BaseModule):
    """Base class: checks the branch maps and combines them with :meth:`combine`.

    Stateless aggregators need no fitting (``requires_fitting = False``); stateful ones override :meth:`reset`,
    :meth:`update` and :meth:`finalize`, set ``requires_fitting = True`` and keep a ``fitted`` flag.

    Args:
        branch_names: The branches whose maps are fused, in the detector's order.
        init_cfg: mmengine initialisation config.
    """

    requires_fitting: bool = False

    def __init__(self, branch_names: Sequence[str], init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg)
        if isinstance(branch_names, str) or not branch_names or len(set(branch_names)) != len(branch_names):
            raise ValueError(f'{type(self).__name__}: branch_names must be distinct names, got {branch_names!r}.')
        invalid = [name for name in branch_names if not name.isidentifier()]
        if invalid:
            raise ValueError(f'{type(self).__name__}: branch names must be identifiers (they name buffers), got '
                             f'{invalid}.')
        self.branch_names = tuple(branch_names)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`forward` can run: always for stateless aggregators."""
        return True

    def reset(self) -> None:
        """Start a new fit: forget what :meth:`update` accumulated and the fitted state (nothing without state)."""

    def update(self, branch_maps: Mapping[str, Tensor]) -> None:
        """Accumulate one batch of raw validation maps (nothing to do without state).

        Args:
            branch_maps: Branch -> raw map (B, H, W).
        """

    def finalize(self) -> dict[str, dict[str, float]]:
        """Turn what :meth:`update` accumulated into the fitted state.

        Returns:
            Branch -> fitted values, for the log (empty without state).
        """
        return {}

    def forward(self, branch_maps: Mapping[str, Tensor]) -> Tensor:
        """Fuse the branch maps.

        Args:
            branch_maps: Branch -> anomaly map, one per name of ``branch_names``, every map of the same shape,
                e.g. (B, H, W).

        Returns:
            The fused map, same shape as each branch map.
        """
        self._check_names(branch_maps)
        shapes = {name: tuple(branch_map.shape) for name, branch_map in branch_maps.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f'{type(self).__name__} needs branch maps of one shape, got {shapes}.')
        if not self.is_fitted:
            raise RuntimeError(
                f'{type(self).__name__} is not fitted: it needs the statistics of the raw validation maps of '
                f'branches {list(self.branch_names)}. Add ValidationStatisticsHook to custom_hooks (it fits the '
                'aggregator after training and before testing) or load a checkpoint that holds them.')
        return self.combine([branch_maps[name] for name in self.branch_names])

    def combine(self, maps: list[Tensor]) -> Tensor:
        """Combine checked maps of one shape, given in the order of ``branch_names``."""
        raise NotImplementedError

    def _check_names(self, branch_maps: Mapping[str, Tensor]) -> None:
        if set(branch_maps) != set(self.branch_names):
            raise ValueError(f'{type(self).__name__} fuses the maps of branches {list(self.branch_names)}, got '
                             f'{list(branch_maps)}.')


@AGGREGATORS.register_module()
class NormalizedSum(BranchMapAggregator):
    """Sum of standardised maps, ``A = sum_m (A_m - mu_m) / sigma_m`` (the paper's choice).

    ``mu_m`` and ``sigma_m`` are one global mean and (population) standard deviation per branch over every pixel of
    every raw validation map, held in the float64 buffers ``mean_<m>`` and ``std_<m>``; ``fitted`` says whether they
    are set. Fitting accumulates the pixel count, sum and sum of squares per branch in float64 and all-reduces them
    across ranks in :meth:`finalize`, so under distributed training every rank gets the same statistics.

    Args:
        branch_names: The branches whose maps are fused.
        init_cfg: mmengine initialisation config.
    """

    requires_fitting = True

    def __init__(self, branch_names: Sequence[str], init_cfg: dict | None = None) -> None:
        super().__init__(branch_names, init_cfg)
        for name in self.branch_names:
            self.register_buffer(f'mean_{name}', torch.tensor(0.0, dtype=torch.float64))
            self.register_buffer(f'std_{name}', torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer('fitted', torch.tensor(False))
        # rows: pixel count, sum, sum of squares; one column per branch (not saved)
        self.register_buffer('_sums', torch.zeros(3, len(self.branch_names), dtype=torch.float64), persistent=False)

    @property
    def is_fitted(self) -> bool:
        """Whether the statistics are set."""
        return bool(self.fitted)

    def mean(self, name: str) -> Tensor:
        """The validation mean of branch ``name`` (float64 scalar)."""
        return getattr(self, f'mean_{name}')

    def std(self, name: str) -> Tensor:
        """The validation standard deviation of branch ``name`` (float64 scalar)."""
        return getattr(self, f'std_{name}')

    def reset(self) -> None:
        """Start a new fit: zero the accumulated count, sum and sum of squares, and mark the statistics unset."""
        self._sums.zero_()
        self.fitted.fill_(False)

    @torch.no_grad()
    def update(self, branch_maps: Mapping[str, Tensor]) -> None:
        """Add the pixels of one batch of raw maps to the float64 count, sum and sum of squares of each branch.

        Args:
            branch_maps: Branch -> raw map (B, H, W).
        """
        self._check_names(branch_maps)
        for index, name in enumerate(self.branch_names):
            values = branch_maps[name].double()
            self._sums[0, index] += values.numel()
            self._sums[1, index] += values.sum()
            self._sums[2, index] += values.square().sum()

    @torch.no_grad()
    def finalize(self) -> dict[str, dict[str, float]]:
        """All-reduce the sums across ranks and set the mean and std of every branch.

        Returns:
            Branch -> ``dict(mean=..., std=...)``.

        Raises:
            ValueError: No pixel was seen (empty validation set), or a statistic is not finite / the std is 0.
        """
        sums = self._sums.clone()
        all_reduce(sums, op='sum')
        count, total, total_of_squares = sums
        if (count == 0).any():
            raise ValueError(f'{type(self).__name__}: no validation map was seen; the statistics need at least '
                             'one sample (is the validation dataloader empty?).')
        mean = total / count
        std = (total_of_squares / count - mean.square()).clamp_min(0).sqrt()
        self.set_statistics(dict(zip(self.branch_names, mean.tolist())), dict(zip(self.branch_names, std.tolist())))
        return {name: dict(mean=float(self.mean(name)), std=float(self.std(name))) for name in self.branch_names}

    def set_statistics(self, mean: Mapping[str, float], std: Mapping[str, float]) -> None:
        """Set the statistics directly.

        Args:
            mean: Branch -> mean, every branch.
            std: Branch -> standard deviation (> 0), every branch.
        """
        name = type(self).__name__
        for label, statistic in (('mean', mean), ('std', std)):
            if set(statistic) != set(self.branch_names):
                raise ValueError(f'{name}: the {label} needs exactly the branches {list(self.branch_names)}, got '
                                 f'{sorted(statistic)}.')
        for branch in self.branch_names:
            if not (math.isfinite(mean[branch]) and math.isfinite(std[branch]) and std[branch] > 0):
                raise ValueError(f'{name}: branch {branch!r} needs a finite mean and a positive std, got mean '
                                 f'{mean[branch]} and std {std[branch]}.')
        for branch in self.branch_names:
            self.mean(branch).fill_(float(mean[branch]))
            self.std(branch).fill_(float(std[branch]))
        self.fitted.fill_(True)

    def combine(self, maps: list[Tensor]) -> Tensor:
        """Return ``sum_m (A_m - mean_m) / std_m``, in the maps' dtype."""
        standardised = [(branch_map - self.mean(name).to(branch_map.dtype)) / self.std(name).to(branch_map.dtype)
                        for name, branch_map in zip(self.branch_names, maps)]
        return torch.stack(standardised).sum(dim=0)


@AGGREGATORS.register_module()
class Sum(BranchMapAggregator):
    """Plain sum of the branch maps, without normalisation (paper Tab. 7, 'sum')."""

    def combine(self, maps: list[Tensor]) -> Tensor:
        """Return ``sum_m A_m``."""
        return torch.stack(maps).sum(dim=0)


@AGGREGATORS.register_module()
class Product(BranchMapAggregator):
    """Pixel-wise product of the branch maps (CFM's aggregation, paper Tab. 7, 'product')."""

    def combine(self, maps: list[Tensor]) -> Tensor:
        """Return ``prod_m A_m``."""
        return torch.stack(maps).prod(dim=0)
