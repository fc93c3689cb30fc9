"""Frozen teacher built from any timm CNN, returning the feature levels of the requested strides, shallow to deep.

The teacher of Reverse Distillation (RD) and Crossmodal Reverse Distillation (CRD) is an ImageNet
WideResNet-50-2 (``wide_resnet50_2.tv_in1k``, torchvision's weights) whose layer1..layer3 outputs (strides 4, 8,
16) are distilled. Any timm model with ``forward_intermediates`` (ResNet family, EfficientNet/-Lite, MobileNetV3,
RegNet, ConvNeXt, ...) works: levels are chosen by stride from timm's ``feature_info`` and the stages after the
deepest one are pruned, not computed. What the students need is the encoder's ``spec``
(:class:`~mmad.models.encoders.TeacherSpec`).

Example:
    >>> import torch
    >>> from mmad.registry import MODELS
    >>> teacher = MODELS.build(dict(type='TimmEncoder', model_name='resnet18'))
    >>> [f.shape[1] for f in teacher(torch.rand(1, 3, 64, 64))], teacher.spec.strides
    ([64, 128, 256], (4, 8, 16))
"""
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import timm
import torch
from mmengine.model import BaseModule
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor, nn

from mmad.registry import MODELS, WEIGHT_CONVERTERS

from .teacher_spec import DEFAULT_STUDENT_BLOCKS, TeacherSpec
from .weight_sources import check_sha256, file_sha256, pretrained_weights_file, resolve_checkpoint

RESNET_BLOCK_TYPES = {BasicBlock: 'basic', Bottleneck: 'bottleneck'}


@MODELS.register_module()
class TimmEncoder(BaseModule):
    """Frozen timm CNN returning the features of the requested strides.

    Every parameter is frozen, the module stays in eval mode (BatchNorm running statistics) whatever
    ``train(mode)`` asks, and ``forward`` runs without autograd.

    Weights, strictly: a file's tensors (after ``weight_converter``) must all be weights of the full timm model, with
    the same shapes (the classifier may be among them), and the teacher must get every one of its own weights from
    the file; otherwise loading fails. Random weights are never used silently.

    Args:
        model_name: timm model name, optionally with a pretrained tag (``'wide_resnet50_2.tv_in1k'`` are the paper's
            torchvision weights).
        pretrained: Load timm's pretrained weights from the Hugging Face hub cache, downloading them if needed. When
            the hub cannot be reached a RuntimeError explains at once how to pass a local file.
        checkpoint: Weights file: a local ``.pth`` / ``.safetensors`` path or an installed package's resource
            ``'package://<import name>/<path>'`` (see :mod:`~mmad.models.encoders.weight_sources`), holding the
            state dict of the full model (or of its used part), keys named as in timm or as ``weight_converter``
            expects. It overrides ``pretrained``.
        checkpoint_sha256: Expected SHA-256 of the weights file, checked before the file is read.
        weight_converter: Name or config of a key converter in ``WEIGHT_CONVERTERS`` (e.g.
            ``'EfficientNetPytorchToTimm'``) applied to the file's state dict.
        strides: Strides of the returned feature levels, shallow to deep, each twice the previous one; each must be
            the reduction of a level of timm's ``feature_info`` (ConvNeXt: 4..32; most others: 2..32).
        init_cfg: mmengine initialisation config; loaded weights are never re-initialised.

    Attributes:
        spec: The :class:`TeacherSpec` of the students: channels and strides per level and the default student
            layout (a ResNet's mirror image for the ResNet family, :meth:`TeacherSpec.default_student` otherwise).
        identity: ``dict(model_name=..., weights_sha256=...)``, what a checkpoint records of its teacher.
    """

    def __init__(self,
                 model_name: str = 'wide_resnet50_2.tv_in1k',
                 pretrained: bool = False,
                 checkpoint: str | None = None,
                 checkpoint_sha256: str | None = None,
                 weight_converter: str | dict | None = None,
                 strides: Sequence[int] = (4, 8, 16),
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg)
        self.model_name = model_name
        with torch.device('meta'):
            network = timm.create_model(model_name, pretrained=False)
        out_indices = self._select_levels(network, model_name, tuple(strides))
        self.model = timm.create_model(model_name, pretrained=False, features_only=True, feature_cls='getter',
                                       out_indices=out_indices)
        out_channels = tuple(self.model.feature_info.channels())
        self.spec: TeacherSpec = self._student_spec(network, out_indices, out_channels, tuple(strides))
        weights_file, name = self._weights_file(model_name, pretrained, checkpoint)
        if weights_file is None:
            if checkpoint_sha256 is not None or weight_converter is not None:
                raise ValueError(f'TimmEncoder {model_name!r}: checkpoint_sha256 and weight_converter apply to a '
                                 'weights file; set checkpoint=... or pretrained=True.')
            self._weights_sha256 = None
        else:
            self._weights_sha256 = (check_sha256(weights_file, checkpoint_sha256, name) if checkpoint_sha256
                                    else file_sha256(weights_file))
            converter = self._build_converter(weight_converter)
            self._load_weights(network, weights_file, name, converter)
            self._is_init = True
        self.requires_grad_(False)
        self.train(False)

    @property
    def identity(self) -> dict[str, str | None]:
        """The teacher's name and the SHA-256 of the weights file it loaded (None for random weights)."""
        return dict(model_name=self.model_name, weights_sha256=self._weights_sha256)

    @staticmethod
    def _weights_file(model_name: str, pretrained: bool, checkpoint: str | None) -> tuple[Path | None, str]:
        """The weights file to load (None for random weights) and its name for messages."""
        if checkpoint is not None:
            return resolve_checkpoint(checkpoint), checkpoint
        if pretrained:
            return pretrained_weights_file(model_name), f"timm's pretrained weights of {model_name!r}"
        return None, ''

    @staticmethod
    def _select_levels(network: nn.Module, model_name: str, strides: tuple[int, ...]) -> tuple[int, ...]:
        """Indices of timm's ``feature_info`` whose reductions are ``strides`` (the deepest level of each stride)."""
        reductions = [info['reduction'] for info in network.feature_info]
        missing = [stride for stride in strides if stride not in reductions]
        if not strides or missing:
            raise ValueError(f'TimmEncoder {model_name!r}: strides {strides} ask for levels the network does not have '
                             f'{tuple(missing)}; its feature levels have strides {tuple(reductions)}.')
        return tuple(len(reductions) - 1 - reductions[::-1].index(stride) for stride in strides)

    @staticmethod
    def _student_spec(network: nn.Module, out_indices: tuple[int, ...], out_channels: tuple[int, ...],
                      strides: tuple[int, ...]) -> TeacherSpec:
        """RD's mirror student for a ResNet whose levels are residual stages, the default student otherwise."""
        modules = [network.feature_info[index]['module'] for index in out_indices]
        if not isinstance(network, ResNet) or not all(module.startswith('layer') for module in modules):
            return TeacherSpec.default_student(out_channels, strides)
        stages = [getattr(network, module) for module in modules]
        block = stages[0][0]
        if type(block) not in RESNET_BLOCK_TYPES:
            return TeacherSpec.default_student(out_channels, strides)
        next_stage = getattr(network, f'layer{int(modules[-1].removeprefix("layer")) + 1}', None)
        width_factor = 1.0
        if isinstance(block, Bottleneck):
            width_factor = block.conv1.out_channels / (block.conv3.out_channels // Bottleneck.expansion)
        return TeacherSpec(out_channels=out_channels, strides=strides, block_type=RESNET_BLOCK_TYPES[type(block)],
                           decoder_blocks=tuple(len(stage) for stage in stages),
                           ocbe_blocks=len(next_stage) if next_stage is not None else DEFAULT_STUDENT_BLOCKS,
                           width_factor=width_factor)

    @staticmethod
    def _build_converter(cfg: str | dict | None) -> Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None:
        if cfg is None:
            return None
        return WEIGHT_CONVERTERS.build(dict(type=cfg) if isinstance(cfg, str) else cfg)

    def _load_weights(self, network: nn.Module, path: Path, name: str,
                      converter: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None) -> None:
        """Load every weight of the teacher from ``path``, strictly (see the class docstring).

        ``network`` is the full model on the meta device: the reference for the file's keys and shapes.
        """
        expected = f'expected the state dict of timm {self.model_name!r}'
        if converter is not None:
            expected += f' in the naming {type(converter).__name__} converts'
        try:
            state_dict = timm.models.load_state_dict(str(path))
        except (RuntimeError, pickle.UnpicklingError) as err:
            raise RuntimeError(f'Cannot read teacher checkpoint {name}: {expected}. {err}') from err
        if converter is not None:
            try:
                state_dict = converter(state_dict)
            except KeyError as err:
                raise RuntimeError(f'Teacher checkpoint {name}: {err.args[0]} ({expected}).') from err
        full_state = network.state_dict()
        used_state = self.model.model.state_dict()
        foreign = [key for key in state_dict if key not in full_state]
        reshaped = [f'{key} {tuple(value.shape)} vs {tuple(full_state[key].shape)}' for key, value in state_dict.items()
                    if key in full_state and value.shape != full_state[key].shape]
        missing = [key for key in used_state if key not in state_dict]
        problems = [f'{len(keys)} weights {what} ({", ".join(keys[:3])}, ...)'
                    for keys, what in ((foreign, 'of another network'), (reshaped, 'of another shape'),
                                       (missing, 'missing')) if keys]
        if problems:
            raise RuntimeError(f'Teacher checkpoint {name} does not fit timm {self.model_name!r}: '
                               f'{"; ".join(problems)}; {expected}.')
        self.model.model.load_state_dict({key: state_dict[key] for key in used_state})

    def train(self, mode: bool = True) -> 'TimmEncoder':
        """Keep the teacher in eval mode (BatchNorm running statistics) whatever ``mode`` is."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> list[Tensor]:
        """Extract the features of the returned levels.

        Args:
            x: Normalised images, shape (B, 3, H, W).

        Returns:
            One tensor per level, shallow to deep, shape (B, spec.out_channels[i], H / spec.strides[i],
            W / spec.strides[i]); for WRN50 at 256x256: 256@64x64, 512@32x32, 1024@16x16.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'TimmEncoder expects images of shape (B, 3, H, W), got {tuple(x.shape)}.')
        return list(self.model(x))
