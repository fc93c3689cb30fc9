"""Data preprocessor for multimodal anomaly detection: ``inputs = {modality: images}`` -> normalised batches."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmad.registry import MODELS

IMAGENET_RGB_0_255 = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
IMAGENET_0_1 = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
CHANNEL_MAPS = ('repeat', 'identity', 'first3', 'mean')
"""Named channel maps to the teacher's 3 input channels (an explicit (3, C) matrix is the fifth kind)."""
TEACHER_CHANNELS = 3


def _check_channel_map(name: str, channel_map: str | Sequence[Sequence[float]] | None,
                       channels: int | None) -> tuple[str | None, Tensor | None, int | None]:
    """Validate a modality's ``channels`` and ``channel_map``; return (named map, matrix, channels)."""
    where = f'ADDataPreprocessor: modality {name!r}'
    if channels is not None and (not isinstance(channels, int) or channels < 1):
        raise ValueError(f'{where}: channels must be a positive int, got {channels!r}.')
    if channel_map is None:
        if channels not in (None, 1, TEACHER_CHANNELS):
            raise ValueError(f'{where}: {channels} channels need a channel_map to the teacher\'s 3 channels: one of '
                             f'{list(CHANNEL_MAPS)} or a fixed (3, {channels}) matrix.')
        return None, None, channels
    if isinstance(channel_map, str):
        if channel_map not in CHANNEL_MAPS:
            raise ValueError(f'{where}: channel_map must be one of {list(CHANNEL_MAPS)} or a (3, C) matrix, got '
                             f'{channel_map!r}.')
        required = dict(repeat=1, identity=TEACHER_CHANNELS).get(channel_map)
        if required is not None and channels not in (None, required):
            raise ValueError(f'{where}: channel_map={channel_map!r} takes {required} channel(s), but '
                             f'channels={channels}.')
        if channel_map == 'first3' and channels is not None and channels < TEACHER_CHANNELS:
            raise ValueError(f"{where}: channel_map='first3' takes 3 channels or more, but channels={channels}.")
        return channel_map, None, channels if channels is not None else required
    matrix = torch.as_tensor(channel_map, dtype=torch.float32)
    if matrix.dim() != 2 or matrix.shape[0] != TEACHER_CHANNELS or not torch.isfinite(matrix).all():
        raise ValueError(f'{where}: a channel_map matrix must be finite with 3 rows (one per teacher channel) and one '
                         f'column per input channel, got shape {tuple(matrix.shape)}.')
    if channels is not None and matrix.shape[1] != channels:
        raise ValueError(f'{where}: the channel_map matrix has {matrix.shape[1]} columns but channels={channels}.')
    return None, matrix, matrix.shape[1]


@MODELS.register_module()
class ADDataPreprocessor(BaseDataPreprocessor):
    """Stack, map to the teacher's 3 channels, normalise each modality with its own mean/std, move to the device.

    ``data['inputs']`` is ``{modality: list[Tensor[C, H, W]]}`` (from ``pseudo_collate``) or
    ``{modality: Tensor[B, C, H, W]}``; the result's ``inputs`` is ``{modality: Tensor[B, 3, H, W]}`` float32.

    Each modality's C channels are mapped to the teacher's 3 input channels by a FIXED, non-learned map, then
    normalised per channel with ``(x - mean) / std``. A learned layer in front of the frozen teacher would move
    the distillation target and let the student collapse, so none is offered. The maps (``channel_map``):

    - not set: 1 channel is repeated (depth, height, a grey or infrared image), 3 channels are kept (rgb,
      normals, an xyz image); any other count is an error naming the modality;
    - ``'repeat'``: 1 channel -> the same value in all 3;
    - ``'identity'``: 3 channels as they are;
    - ``'first3'``: the first 3 of C >= 3 channels (e.g. RGB of an RGBA or multispectral image);
    - ``'mean'``: the mean of the C channels, repeated;
    - a (3, C) matrix ``M``: ``out[k] = sum_c M[k][c] * in[c]`` (an explicit fixed projection).

    ``channels`` declares the channel count of a modality: a batch with another count is an error naming it
    (without it, any count the map accepts passes). ``data_samples`` pass through (moved to the device).

    Args:
        modalities: Modality -> ``dict(mean=[...], std=[...], channels=C, channel_map=...)``; mean and std hold 3
            values (after the map) or 1 applied to every channel; ``channels`` and ``channel_map`` are optional.
            Defaults: rgb in 0-255 with ImageNet statistics, depth in [0, 1] with ImageNet statistics.
        non_blocking: Whether the copy to the device is non-blocking.

    Example:
        >>> data_preprocessor = dict(type='ADDataPreprocessor', modalities=dict(
        ...     rgb=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
        ...     ir=dict(mean=[0.5], std=[0.25], channels=1),
        ...     multispectral=dict(mean=[0.5], std=[0.25], channels=5, channel_map='mean')))
    """

    def __init__(self,
                 modalities: Mapping[str, Mapping] | None = None,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if modalities is None:
            modalities = dict(rgb=IMAGENET_RGB_0_255, depth=IMAGENET_0_1)
        if not modalities:
            raise ValueError('ADDataPreprocessor needs at least one modality with its mean and std.')
        self.modalities = tuple(modalities)
        self.channel_maps: dict[str, str | None] = {}
        self.channels: dict[str, int | None] = {}
        for name, settings in modalities.items():
            unknown = sorted(set(settings) - {'mean', 'std', 'channels', 'channel_map'})
            if unknown:
                raise ValueError(f'ADDataPreprocessor: modality {name!r} has unknown settings {unknown}; expected '
                                 'mean, std, channels, channel_map.')
            mean, std = ([float(value) for value in settings[key]] for key in ('mean', 'std'))
            if len(mean) not in (1, 3) or len(std) not in (1, 3):
                raise ValueError(f'ADDataPreprocessor: mean and std of modality {name!r} need 1 or 3 values (of the '
                                 f'3 channels after the channel map), got {len(mean)} and {len(std)}.')
            if min(std) <= 0:
                raise ValueError(f'ADDataPreprocessor: std of modality {name!r} must be positive, got {std}.')
            named, matrix, channels = _check_channel_map(name, settings.get('channel_map'), settings.get('channels'))
            self.channel_maps[name], self.channels[name] = named, channels
            self.register_buffer(f'{name}_mean', torch.tensor(mean).view(-1, 1, 1), persistent=False)
            self.register_buffer(f'{name}_std', torch.tensor(std).view(-1, 1, 1), persistent=False)
            self.register_buffer(f'{name}_channel_matrix', matrix, persistent=False)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess a collated batch.

        Args:
            data: ``dict(inputs={modality: list[Tensor[C, H, W]] | Tensor[B, C, H, W]}, data_samples=...)``.
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
        normalised = {name: self._normalise(name, self._to_teacher_channels(name, self._stack(name, images)))
                      for name, images in inputs.items()}
        return dict(inputs=normalised, data_samples=data.get('data_samples'))

    def _stack(self, name: str, images: Sequence[Tensor] | Tensor) -> Tensor:
        """Stack a list of (C, H, W) images into a float (B, C, H, W) batch."""
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

    def _to_teacher_channels(self, name: str, batch: Tensor) -> Tensor:
        """Map a (B, C, H, W) batch to (B, 3, H, W) with the modality's fixed channel map."""
        channels, declared = batch.shape[1], self.channels[name]
        setting = f'data_preprocessor.modalities[{name!r}]'
        if declared is not None and channels != declared:
            raise ValueError(f'ADDataPreprocessor: modality {name!r} has {channels} channels but {setting} declares '
                             f'channels={declared}.')
        matrix, named = getattr(self, f'{name}_channel_matrix'), self.channel_maps[name]
        if matrix is not None:
            return torch.einsum('kc,bchw->bkhw', matrix, batch)
        if named == 'mean':
            return batch.mean(dim=1, keepdim=True).expand(-1, TEACHER_CHANNELS, -1, -1)
        if named == 'first3' and channels >= TEACHER_CHANNELS:
            return batch[:, :TEACHER_CHANNELS]
        if channels == 1 and named in (None, 'repeat'):
            return batch.expand(-1, TEACHER_CHANNELS, -1, -1)
        if channels == TEACHER_CHANNELS and named in (None, 'identity'):
            return batch
        expected = {None: '1 (repeated) or 3 (kept)', 'repeat': '1', 'identity': '3', 'first3': '3 or more'}[named]
        raise ValueError(f'ADDataPreprocessor: modality {name!r} has {channels} channels; {setting} maps '
                         f'{expected} to the teacher\'s 3 channels. Set channels={channels} and a channel_map '
                         f"('first3', 'mean' or a fixed (3, {channels}) matrix) there.")

    def _normalise(self, name: str, batch: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel of a (B, 3, H, W) batch."""
        return (batch - getattr(self, f'{name}_mean')) / getattr(self, f'{name}_std')
