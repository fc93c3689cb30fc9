"""Score aggregators: per-branch anomaly maps -> one fused anomaly map (paper Tab. 7).

Aggregators are plain callables registered in ``mmad.registry.AGGREGATORS`` (not ``nn.Module``): they hold no
parameters. The validation statistics they may need live in the detector's buffers and are passed at call time.

Example:
    >>> from mmad.registry import AGGREGATORS
    >>> aggregator = AGGREGATORS.build(dict(type='NormalizedSum'))
    >>> fused = aggregator(dict(rgb=rgb_map, depth=depth_map), mean=dict(rgb=0.3, depth=0.5),
    ...                    std=dict(rgb=0.1, depth=0.2))
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mmad.registry import AGGREGATORS


class BranchMapAggregator:
    """Base class: checks the branch maps and combines them with :meth:`combine`.

    Subclasses set ``requires_statistics`` when they need the validation mean and standard deviation of each branch.
    """

    requires_statistics: bool = False

    def __call__(self,
                 branch_maps: Mapping[str, Tensor],
                 mean: Mapping[str, float | Tensor] | None = None,
                 std: Mapping[str, float | Tensor] | None = None) -> Tensor:
        """Fuse the branch maps.

        Args:
            branch_maps: Modality -> anomaly map, every map of the same shape, e.g. (B, H, W).
            mean: Modality -> global mean of that branch's validation maps (only read when
                ``requires_statistics``).
            std: Modality -> global standard deviation of that branch's validation maps.

        Returns:
            The fused map, same shape as each branch map.
        """
        if not branch_maps:
            raise ValueError(f'{type(self).__name__} needs at least one branch map, got none.')
        shapes = {name: tuple(branch_map.shape) for name, branch_map in branch_maps.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f'{type(self).__name__} needs branch maps of one shape, got {shapes}.')
        if self.requires_statistics:
            self._check_statistics(branch_maps, mean, std)
        return self.combine(branch_maps, mean, std)

    def combine(self,
                branch_maps: Mapping[str, Tensor],
                mean: Mapping[str, float | Tensor] | None,
                std: Mapping[str, float | Tensor] | None) -> Tensor:
        """Combine checked maps of one shape; see :meth:`__call__` for the arguments."""
        raise NotImplementedError

    def _check_statistics(self,
                          branch_maps: Mapping[str, Tensor],
                          mean: Mapping[str, float | Tensor] | None,
                          std: Mapping[str, float | Tensor] | None) -> None:
        name = type(self).__name__
        if mean is None or std is None:
            raise ValueError(
                f'{name} needs the validation mean and std of every branch map, but none were given. Compute them '
                'with ValidationStatisticsHook or set them with CRD.set_validation_statistics(mean, std).')
        for label, statistic in (('mean', mean), ('std', std)):
            missing = sorted(set(branch_maps) - set(statistic))
            if missing:
                raise ValueError(f'{name}: no validation {label} for branch(es) {missing}.')


@AGGREGATORS.register_module()
class NormalizedSum(BranchMapAggregator):
    """Sum of standardised maps, ``A = sum_m (A_m - mu_m) / sigma_m`` (the paper's choice).

    ``mu_m`` and ``sigma_m`` are one global mean and standard deviation per branch over every pixel of every raw
    validation map.
    """

    requires_statistics = True

    def combine(self,
                branch_maps: Mapping[str, Tensor],
                mean: Mapping[str, float | Tensor] | None,
                std: Mapping[str, float | Tensor] | None) -> Tensor:
        """Return ``sum_m (A_m - mean[m]) / std[m]``."""
        standardised = [(branch_map - _as_scalar(mean[name], branch_map)) / _as_scalar(std[name], branch_map)
                        for name, branch_map in branch_maps.items()]
        return torch.stack(standardised).sum(dim=0)


@AGGREGATORS.register_module()
class Sum(BranchMapAggregator):
    """Plain sum of the branch maps, without normalisation (paper Tab. 7, 'sum')."""

    def combine(self,
                branch_maps: Mapping[str, Tensor],
                mean: Mapping[str, float | Tensor] | None,
                std: Mapping[str, float | Tensor] | None) -> Tensor:
        """Return ``sum_m A_m``."""
        return torch.stack(list(branch_maps.values())).sum(dim=0)


@AGGREGATORS.register_module()
class Product(BranchMapAggregator):
    """Pixel-wise product of the branch maps (CFM's aggregation, paper Tab. 7, 'product')."""

    def combine(self,
                branch_maps: Mapping[str, Tensor],
                mean: Mapping[str, float | Tensor] | None,
                std: Mapping[str, float | Tensor] | None) -> Tensor:
        """Return ``prod_m A_m``."""
        return torch.stack(list(branch_maps.values())).prod(dim=0)


def _as_scalar(value: float | Tensor, like: Tensor) -> Tensor:
    """A Python number or 0-dim tensor as a 0-dim tensor of ``like``'s dtype and device."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)
