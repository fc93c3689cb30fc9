"""Key converters: a state dict in another library's naming -> the naming of the timm model.

A converter is a callable ``(state_dict) -> state_dict`` registered in ``WEIGHT_CONVERTERS``; a teacher names it
with ``weight_converter='<name>'`` (the config-level form of OpenMMLab's ``tools/model_converters``). It only
renames: the encoder then checks that every converted tensor is a weight of the full timm model, of the same
shape, and that the teacher gets all of its weights from the file.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from mmad.registry import WEIGHT_CONVERTERS

BLOCK_KEY = re.compile(r'_blocks\.(\d+)\.(\w+)\.(.+)')


@WEIGHT_CONVERTERS.register_module()
class EfficientNetPytorchToTimm:
    """``efficientnet_pytorch`` (lukemelas) EfficientNet / EfficientNet-Lite keys -> timm's EfficientNet keys.

    efficientnet_pytorch keeps the blocks flat (``_blocks.N``); timm groups them by stage (``blocks.S.I``). A stage
    starts where the output channels change (every stage of EfficientNet widens or narrows), read from the
    ``_project_conv`` weights. Within a block:

    * without expansion (depthwise-separable, first stage): ``_depthwise_conv, _bn1, _project_conv, _bn2`` ->
      ``conv_dw, bn1, conv_pw, bn2``;
    * with expansion (inverted residual): ``_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2`` ->
      ``conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3``;
    * squeeze-excitation (not in the Lite models): ``_se_reduce, _se_expand`` -> ``se.conv_reduce, se.conv_expand``.

    At the top level ``_conv_stem, _bn0`` -> ``conv_stem, bn1`` and ``_conv_head, _bn1, _fc`` -> ``conv_head, bn2,
    classifier``. The weights were trained with TensorFlow's "same" padding: load them into timm's ``tf_`` variant
    (``tf_efficientnet_lite0``) and feed it images scaled to [-1, 1].
    """

    TOP_LEVEL = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2',
                 '_fc': 'classifier'}
    SEPARABLE_BLOCK = {'_depthwise_conv': 'conv_dw', '_bn1': 'bn1', '_project_conv': 'conv_pw', '_bn2': 'bn2',
                       '_se_reduce': 'se.conv_reduce', '_se_expand': 'se.conv_expand'}
    INVERTED_RESIDUAL_BLOCK = {'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv': 'conv_dw', '_bn1': 'bn2',
                               '_project_conv': 'conv_pwl', '_bn2': 'bn3', '_se_reduce': 'se.conv_reduce',
                               '_se_expand': 'se.conv_expand'}

    def __call__(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Rename every key.

        Args:
            state_dict: efficientnet_pytorch state dict (``_conv_stem.weight``, ``_blocks.0._bn1.weight``, ...).

        Returns:
            The same tensors under timm's keys (``conv_stem.weight``, ``blocks.0.0.bn1.weight``, ...).

        Raises:
            KeyError: A key that is not of an efficientnet_pytorch EfficientNet.
        """
        positions = self._block_positions(state_dict)
        converted = {}
        for key, value in state_dict.items():
            converted[self._convert_key(key, state_dict, positions)] = value
        return converted

    @staticmethod
    def _block_positions(state_dict: Mapping[str, Tensor]) -> dict[int, tuple[int, int]]:
        """Flat block index -> (stage, index in stage); a stage starts where the output channels change."""
        out_channels = {}
        for key, value in state_dict.items():
            match = BLOCK_KEY.fullmatch(key)
            if match and match.group(2) == '_project_conv' and match.group(3) == 'weight':
                out_channels[int(match.group(1))] = value.shape[0]
        positions, stage, index, previous = {}, -1, 0, None
        for block in sorted(out_channels):
            if out_channels[block] != previous:
                stage, index, previous = stage + 1, 0, out_channels[block]
            positions[block] = (stage, index)
            index += 1
        return positions

    def _convert_key(self, key: str, state_dict: Mapping[str, Tensor], positions: dict[int, tuple[int, int]]) -> str:
        match = BLOCK_KEY.fullmatch(key)
        if match is None:
            module, _, tensor = key.partition('.')
            if module not in self.TOP_LEVEL:
                raise KeyError(f'EfficientNetPytorchToTimm: {key!r} is not a key of an efficientnet_pytorch model.')
            return f'{self.TOP_LEVEL[module]}.{tensor}'
        block, module, tensor = int(match.group(1)), match.group(2), match.group(3)
        expands = f'_blocks.{block}._expand_conv.weight' in state_dict
        names = self.INVERTED_RESIDUAL_BLOCK if expands else self.SEPARABLE_BLOCK
        if block not in positions or module not in names:
            raise KeyError(f'EfficientNetPytorchToTimm: {key!r} is not a key of an efficientnet_pytorch model.')
        stage, index = positions[block]
        return f'blocks.{stage}.{index}.{names[module]}.{tensor}'
