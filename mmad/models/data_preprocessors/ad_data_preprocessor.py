"""Data preprocessor for multimodal anomaly detection: ``inputs = {modality: images}`` -> normalised batches."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmad.registry import MODELS

IMAGENET_RGB_0_255 = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
IMAGENET_0_1 = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


@MODELS.register_module()
class ADDataPreprocessor(BaseDataPreprocessor):
    """Stack, expand to 3 channels, normalise each modality with its own mean/std, move to the model's device.

    ``data['inputs']`` is ``{modality: list[Tensor[C, H, W]]}`` (from ``pseudo_collate``) or
    ``{modality: Tensor[B, C, H, W]}``; the result's ``inputs`` is ``{modality: Tensor[B, 3, H, W]}`` float32 with
    ``(x - mean) / std`` per channel. One-channel modalities (depth) are repeated to 3 channels first, as the
    teacher expects RGB-shaped input. ``data_samples`` pass through (moved to the device).

    Args:
        modalities: Modality -> ``dict(mean=[...], std=[...])`` with 3 values each (or 1, applied to every
            channel). Defaults: rgb in 0-255 with ImageNet statistics, depth in [0, 1] with ImageNet statistics.
        non_blocking: Whether the copy to the device is non-blocking.
    """

    def __init__(self,
                 modalities: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if modalities is None:
            modalities = dict(rgb=IMAGENET_RGB_0_255, depth=IMAGENET_0_1)
        if not modalities:
            raise ValueError('ADDataPreprocessor needs at least one modality with its mean and std.')
        self.modalities = tuple(modalities)
        for name, settings in modalities.items():
            mean, std = ([float(value) for value in settings[key]] for key in ('mean', 'std'))
            if len(mean) not in (1, 3) or len(std) not in (1, 3):
                raise ValueError(f'ADDataPreprocessor: mean and std of modality {name!r} need 1 or 3 values, got '
                                 f'{len(mean)} and {len(std)}.')
            if min(std) <= 0:
                raise ValueError(f'ADDataPreprocessor: std of modality {name!r} must be positive, got {std}.')
            mean, std = torch.tensor(mean), torch.tensor(std)
            self.register_buffer(f'{name}_mean', mean.view(-1, 1, 1), persistent=False)
            self.register_buffer(f'{name}_std', std.view(-1, 1, 1), persistent=False)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess a collated batch.

        Args:
            data: ``dict(inputs={modality: list[Tensor[C, H, W]] | Tensor[B, C, H, W]}, data_samples=...)``,
                C being 1 or 3.
            training: Unused (no training-time augmentation).

        Returns:
            ``dict(inputs={modality: Tensor[B, 3, H, W]}, data_samples=...)`` on the model's device.
        """
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, Mapping):
            raise TypeError(f"ADDataPreprocessor expects data['inputs'] to be a dict modality -> images, got "
                            f'{type(inputs).__name__}.')
        unknown = sorted(set(inputs) - set(self.modalities))
        if unknown:
            raise KeyError(f'ADDataPreprocessor: modality(ies) {unknown} in the batch are not configured; configured: '
                           f'{list(self.modalities)}. Add their mean/std to data_preprocessor.modalities.')
        normalised = {name: self._normalise(name, self._stack(name, images)) for name, images in inputs.items()}
        return dict(inputs=normalised, data_samples=data.get('data_samples'))

    def _stack(self, name: str, images: Sequence[Tensor] | Tensor) -> Tensor:
        if isinstance(images, Tensor):
            batch = images
        else:
            shapes = {tuple(image.shape) for image in images}
            if len(shapes) > 1:
                raise ValueError(f'ADDataPreprocessor: images of modality {name!r} have different shapes {shapes}; '
                                 'resize them to one size in the pipeline.')
            batch = torch.stack(list(images))
        if batch.dim() != 4:
            raise ValueError(f'ADDataPreprocessor: modality {name!r} needs images of shape (C, H, W) or a batch '
                             f'(B, C, H, W), got a batch of shape {tuple(batch.shape)}.')
        return batch.float()

    def _normalise(self, name: str, batch: Tensor) -> Tensor:
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        if batch.shape[1] != 3:
            raise ValueError(f'ADDataPreprocessor: modality {name!r} needs 1 or 3 channels, got {batch.shape[1]}.')
        return (batch - getattr(self, f'{name}_mean')) / getattr(self, f'{name}_std')
