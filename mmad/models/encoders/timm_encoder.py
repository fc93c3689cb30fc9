"""Frozen ResNet-family teacher built with timm, returning multi-scale features shallow to deep.

The teacher of Reverse Distillation (RD) and Crossmodal Reverse Distillation (CRD) is an ImageNet
WideResNet-50-2 (``wide_resnet50_2.tv_in1k``, torchvision's weights) whose layer1..layer3 outputs are
distilled. The encoder reports everything the student needs to mirror it: channels, strides, block type,
blocks per stage and the bottleneck width factor.

Example:
    >>> import torch
    >>> from mmad.registry import MODELS
    >>> teacher = MODELS.build(dict(type='TimmEncoder', model_name='resnet18'))
    >>> [f.shape[1] for f in teacher(torch.rand(1, 3, 64, 64))]
    [64, 128, 256]
"""
import pickle
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from mmengine.model import BaseModule
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn

from mmad.registry import MODELS

SUPPORTED_ARCHITECTURES = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'wide_resnet50_2',
                           'wide_resnet101_2')
BLOCK_TYPES = {BasicBlock: 'basic', Bottleneck: 'bottleneck'}
# Residual stages are timm feature indices 1..4 (0 is the stem); the student needs the stage after the last one.
FIRST_STAGE, LAST_STAGE = 1, 4


@MODELS.register_module()
class TimmEncoder(BaseModule):
    """Frozen timm ResNet returning the outputs of consecutive residual stages.

    Every parameter is frozen, the module stays in eval mode (BatchNorm running statistics) whatever
    ``train(mode)`` asks, and ``forward`` runs without autograd.

    Args:
        model_name: timm model name of the ResNet family, optionally with a pretrained tag
            (``'wide_resnet50_2.tv_in1k'`` are the paper's torchvision weights).
        pretrained: Load timm's ImageNet weights (downloaded or from the local cache). A failed download raises
            a RuntimeError explaining how to pass a local file; random weights are never used silently.
        checkpoint: Local ``.pth`` / ``.safetensors`` state dict of the timm or torchvision model of the same
            architecture (a full model's, or a ``features_only`` one's); every weight must be in it. Loading it
            makes ``pretrained`` irrelevant.
        out_indices: timm feature indices of the returned residual stages, consecutive, within 1..3
            (``(1, 2, 3)`` = layer1..layer3). The stage after the last one must exist (it shapes RD's OCBE).
        init_cfg: mmengine initialisation config; loaded weights are never re-initialised.

    Attributes:
        out_channels: Channels of each returned feature, shallow to deep, e.g. ``(256, 512, 1024)``.
        strides: Downsampling factor of each returned feature, e.g. ``(4, 8, 16)``.
        block_type: ``'basic'`` or ``'bottleneck'``, the residual block of the network.
        stage_blocks: Residual blocks in each returned stage, e.g. ``(3, 4, 6)`` for WRN50.
        next_stage_blocks: Residual blocks of the stage after the last returned one (layer4: 3 for WRN50).
        width_factor: Inner width of a bottleneck relative to a plain ResNet (2.0 for wide nets, else 1.0).
    """

    def __init__(self,
                 model_name: str = 'wide_resnet50_2.tv_in1k',
                 pretrained: bool = False,
                 checkpoint: str | None = None,
                 out_indices: Sequence[int] = (1, 2, 3),
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg)
        architecture = model_name.split('.')[0]
        if architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f'TimmEncoder supports the ResNet family only: {", ".join(SUPPORTED_ARCHITECTURES)} '
                             f"(optionally tagged, e.g. 'wide_resnet50_2.tv_in1k'); got model_name={model_name!r}.")
        out_indices = tuple(out_indices)
        self._check_out_indices(out_indices)
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f'Teacher checkpoint {checkpoint} does not exist: expected a .pth or '
                                    f'.safetensors state dict of the timm or torchvision {architecture}.')
        self.model_name = model_name
        self.out_indices = out_indices
        self.model = self._create_features_model(model_name, pretrained, checkpoint, out_indices)
        self.out_channels: tuple[int, ...] = tuple(self.model.feature_info.channels())
        self.strides: tuple[int, ...] = tuple(self.model.feature_info.reduction())
        self._read_architecture(architecture, out_indices)
        self.requires_grad_(False)
        self.train(False)
        if pretrained or checkpoint is not None:
            self._is_init = True

    @staticmethod
    def _check_out_indices(out_indices: tuple[int, ...]) -> None:
        """Raise a ValueError unless ``out_indices`` are consecutive residual stages followed by another stage."""
        valid_range = range(FIRST_STAGE, LAST_STAGE)
        consecutive = all(b == a + 1 for a, b in zip(out_indices, out_indices[1:]))
        if not out_indices or not consecutive or any(i not in valid_range for i in out_indices):
            raise ValueError(f'out_indices must be consecutive residual stages within {FIRST_STAGE}..'
                             f'{LAST_STAGE - 1} (e.g. (1, 2, 3) = layer1..layer3), got {out_indices}.')

    @classmethod
    def _create_features_model(cls, model_name: str, pretrained: bool, checkpoint: str | None,
                               out_indices: tuple[int, ...]) -> nn.Module:
        """Build the timm ``features_only`` model, loading ImageNet or local weights."""
        if checkpoint is not None:
            model = timm.create_model(model_name, pretrained=False, features_only=True, out_indices=out_indices)
            cls._load_checkpoint(model, model_name, checkpoint)
            return model
        try:
            return timm.create_model(model_name, pretrained=pretrained, features_only=True, out_indices=out_indices)
        except OSError as err:
            raise RuntimeError(
                f'Cannot fetch the ImageNet weights of timm model {model_name!r} ({type(err).__name__}: {err}). '
                'Offline? On a machine with internet save them with '
                f"torch.save(timm.create_model({model_name!r}, pretrained=True).state_dict(), 'teacher.pth'), "
                'then pass the file with --cfg-options model.teacher.checkpoint=PATH (.pth or .safetensors).'
            ) from err

    @staticmethod
    def _load_checkpoint(model: nn.Module, model_name: str, checkpoint: str) -> None:
        """Load every weight of ``model`` from a local state dict, strictly.

        timm's own ``pretrained_cfg_overlay=dict(file=...)`` loads ``features_only`` models non-strictly, so a
        file of another network would leave random weights unnoticed; this reads the file with timm's reader
        (``.pth`` / ``.safetensors``, ``state_dict`` / ``model`` wrappers), requires every weight and rejects
        weights of blocks the network does not have; the later stages and the classifier are ignored.
        """
        expected = f'expected the state dict of the timm or torchvision {model_name.split(".")[0]}'
        try:
            state_dict = timm.models.load_state_dict(checkpoint)
        except (RuntimeError, pickle.UnpicklingError) as err:
            raise RuntimeError(f'Cannot read teacher checkpoint {checkpoint}: {expected}. {err}') from err
        model_state = model.state_dict()
        missing = [key for key in model_state if key not in state_dict]
        # Weights under a module the features model keeps (layer1..3, stem) that it lacks: another network.
        kept_modules = {key.split('.')[0] for key in model_state}
        foreign = [key for key in state_dict if key.split('.')[0] in kept_modules and key not in model_state]
        if missing or foreign:
            problems = [f'{len(keys)} weights {what} ({", ".join(keys[:3])}, ...)'
                        for keys, what in ((missing, 'missing'), (foreign, 'of another network')) if keys]
            raise RuntimeError(f'Teacher checkpoint {checkpoint} does not fit timm {model_name!r}: '
                               f'{"; ".join(problems)}; {expected}.')
        try:
            model.load_state_dict({key: state_dict[key] for key in model_state})
        except RuntimeError as err:
            raise RuntimeError(
                f'Teacher checkpoint {checkpoint} does not fit timm {model_name!r}: {expected}. {err}') from err

    def _read_architecture(self, architecture: str, out_indices: tuple[int, ...]) -> None:
        """Read block type, blocks per stage and width factor from a weightless copy of the full network."""
        with torch.device('meta'):
            network = timm.create_model(architecture, pretrained=False)
        stages = [getattr(network, f'layer{index}') for index in range(FIRST_STAGE, LAST_STAGE + 1)]
        first_block = stages[0][0]
        self.block_type: str = BLOCK_TYPES[type(first_block)]
        self.stage_blocks: tuple[int, ...] = tuple(len(stages[i - FIRST_STAGE]) for i in out_indices)
        self.next_stage_blocks: int = len(stages[out_indices[-1] + 1 - FIRST_STAGE])
        if self.block_type == 'bottleneck':
            planes = first_block.conv3.out_channels // Bottleneck.expansion
            self.width_factor: float = first_block.conv1.out_channels / planes
        else:
            self.width_factor = 1.0

    @property
    def identity(self) -> dict:
        """What a checkpoint records of the teacher: ``dict(model_name=str, weights_sha256=str | None)``."""
        return dict(model_name=self.model_name, weights_sha256=None)

    def train(self, mode: bool = True) -> 'TimmEncoder':
        """Keep the teacher in eval mode (BatchNorm running statistics) whatever ``mode`` is."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> list[Tensor]:
        """Extract the features of the returned stages.

        Args:
            x: Normalised images, shape (B, 3, H, W).

        Returns:
            One tensor per returned stage, shallow to deep, shape (B, out_channels[i], H / strides[i],
            W / strides[i]); for WRN50 at 256x256: 256@64x64, 512@32x32, 1024@16x16.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'TimmEncoder expects images of shape (B, 3, H, W), got {tuple(x.shape)}.')
        return self.model(x)
