"""``ADDataSample``: the ground truth and the prediction of one anomaly-detection sample.

Example:
    >>> import torch
    >>> sample = ADDataSample(metainfo=dict(category='bagel', defect_type='crack'))
    >>> sample.set_gt_label(1).set_gt_mask(torch.zeros(4, 4, dtype=torch.bool))
    >>> sample.is_anomalous
    True
"""
from collections.abc import Callable, Mapping

import numpy as np
import torch
from mmengine.structures import BaseDataElement

TensorLike = torch.Tensor | np.ndarray | int | float | bool


def _as_tensor(value: TensorLike, dtype: torch.dtype) -> torch.Tensor:
    """Convert a number, array or tensor to a tensor of ``dtype`` on its current device."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    return torch.as_tensor(value).to(dtype)


def _as_scalar(value: TensorLike, dtype: torch.dtype, name: str) -> torch.Tensor:
    """Convert a one-element value to a 0-dim tensor of ``dtype``."""
    tensor = _as_tensor(value, dtype)
    if tensor.numel() != 1:
        raise ValueError(f'{name} must hold exactly one value, got shape {tuple(tensor.shape)}')
    return tensor.reshape(())


def _as_map(value: TensorLike, dtype: torch.dtype, name: str) -> torch.Tensor:
    """Convert an (H, W) array or tensor to a 2-dim tensor of ``dtype``."""
    tensor = _as_tensor(value, dtype)
    if tensor.ndim != 2:
        raise ValueError(f'{name} must be a 2-dim (H, W) map, got shape {tuple(tensor.shape)}')
    return tensor


class ADDataSample(BaseDataElement):
    """Data sample of multimodal anomaly detection.

    Meta information (set by ``PackADInputs``): ``category``, ``defect_type``, ``sample_name``,
    ``img_path`` (the rgb file), ``ori_shape`` (H0, W0), ``img_shape`` (S, S), ``sample_idx`` and every
    ``*_path`` of the data info and the loaded modalities (``gt_path``, ``rgb_path``, ``xyz_path``, ...).

    Data fields, each written through its setter, which converts and checks the value:

    - ``gt_label``: long tensor of shape (), 0 = good, 1 = anomalous.
    - ``gt_mask``: bool tensor (H, W), True on anomalous pixels.
    - ``pred_score``: float tensor of shape (), the image anomaly score.
    - ``anomaly_map``: float tensor (H, W), the fused anomaly map.
    - ``branch_scores``: dict modality -> float tensor of shape (), the score of each branch.
    - ``branch_maps``: dict modality -> float tensor (H, W), the smoothed, unnormalised map of each branch.

    ``to``, ``cpu``, ``cuda``, ``detach`` and ``numpy`` also convert the tensors held in the dict fields.
    """

    def set_gt_label(self, value: TensorLike) -> 'ADDataSample':
        """Set ``gt_label``.

        Args:
            value: 0 (good) or 1 (anomalous), as a number, a one-element array or a tensor.

        Returns:
            This sample, so that setters can be chained.
        """
        label = _as_scalar(value, torch.long, 'gt_label')
        if int(label) not in (0, 1):
            raise ValueError(f'gt_label must be 0 (good) or 1 (anomalous), got {int(label)}')
        self.set_field(label, 'gt_label', dtype=torch.Tensor)
        return self

    def set_gt_mask(self, value: TensorLike) -> 'ADDataSample':
        """Set ``gt_mask``.

        Args:
            value: (H, W) mask; non-zero values are anomalous pixels.

        Returns:
            This sample.
        """
        self.set_field(_as_map(value, torch.bool, 'gt_mask'), 'gt_mask', dtype=torch.Tensor)
        return self

    def set_pred_score(self, value: TensorLike) -> 'ADDataSample':
        """Set ``pred_score``.

        Args:
            value: The image anomaly score, one value.

        Returns:
            This sample.
        """
        self.set_field(_as_scalar(value, torch.float32, 'pred_score'), 'pred_score', dtype=torch.Tensor)
        return self

    def set_anomaly_map(self, value: TensorLike) -> 'ADDataSample':
        """Set ``anomaly_map``.

        Args:
            value: The fused (H, W) anomaly map.

        Returns:
            This sample.
        """
        self.set_field(_as_map(value, torch.float32, 'anomaly_map'), 'anomaly_map', dtype=torch.Tensor)
        return self

    def set_branch_scores(self, scores: Mapping[str, TensorLike]) -> 'ADDataSample':
        """Set ``branch_scores``.

        Args:
            scores: Modality name -> the score of that branch (one value each).

        Returns:
            This sample.
        """
        converted = {name: _as_scalar(score, torch.float32, f'branch_scores[{name!r}]')
                     for name, score in scores.items()}
        self.set_field(converted, 'branch_scores', dtype=dict)
        return self

    def set_branch_maps(self, maps: Mapping[str, TensorLike]) -> 'ADDataSample':
        """Set ``branch_maps``.

        Args:
            maps: Modality name -> the (H, W) anomaly map of that branch.

        Returns:
            This sample.
        """
        converted = {name: _as_map(branch_map, torch.float32, f'branch_maps[{name!r}]')
                     for name, branch_map in maps.items()}
        self.set_field(converted, 'branch_maps', dtype=dict)
        return self

    @property
    def is_anomalous(self) -> bool:
        """Whether the ground truth says the sample is anomalous (requires ``gt_label``)."""
        return bool(self.gt_label)

    @property
    def has_prediction(self) -> bool:
        """Whether the sample carries a prediction (``pred_score``)."""
        return 'pred_score' in self

    @property
    def branch_names(self) -> tuple[str, ...]:
        """The modalities that have a branch map or a branch score, sorted."""
        names = set(self.get('branch_maps', {})) | set(self.get('branch_scores', {}))
        return tuple(sorted(names))

    def _map_tensors(self, function: Callable[[torch.Tensor], object]) -> 'ADDataSample':
        """Return a new sample whose tensors, including those inside dict fields, went through ``function``."""
        new_sample = self.new()
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                new_sample.set_field(function(value), key)
            elif isinstance(value, dict):
                new_sample.set_field({name: function(item) if isinstance(item, torch.Tensor) else item
                                      for name, item in value.items()}, key)
        return new_sample

    def to(self, *args, **kwargs) -> 'ADDataSample':
        """Apply ``Tensor.to`` to every tensor of the data fields."""
        return self._map_tensors(lambda tensor: tensor.to(*args, **kwargs))

    def cpu(self) -> 'ADDataSample':
        """Move every tensor of the data fields to the CPU."""
        return self._map_tensors(lambda tensor: tensor.cpu())

    def cuda(self) -> 'ADDataSample':
        """Move every tensor of the data fields to the current CUDA device."""
        return self._map_tensors(lambda tensor: tensor.cuda())

    def detach(self) -> 'ADDataSample':
        """Detach every tensor of the data fields from the autograd graph."""
        return self._map_tensors(lambda tensor: tensor.detach())

    def numpy(self) -> 'ADDataSample':
        """Convert every tensor of the data fields to a numpy array."""
        return self._map_tensors(lambda tensor: tensor.detach().cpu().numpy())
