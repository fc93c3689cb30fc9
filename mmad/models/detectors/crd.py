"""Crossmodal Reverse Distillation (CRD) for N modalities: one frozen teacher, one student branch per modality."""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from mmad.registry import AGGREGATORS, MODELS
from mmad.structures import ADDataSample

from ..encoders import TeacherSpec
from .anomaly_maps import cosine_distance_map, gaussian_smooth
from .crd_branch import CRDBranch
from .decision_threshold import DecisionThreshold

FeatureLists = dict[str, list[Tensor]]
MEMORY_FORMATS = dict(channels_last=torch.channels_last, contiguous_format=torch.contiguous_format)
DEFAULT_MEMORY_FORMAT = 'contiguous_format'


@MODELS.register_module()
class CRD(BaseModel):
    """Crossmodal Reverse Distillation (Liu et al., 2024), generalised to N modalities.

    Layout: the child ``teacher`` (a frozen encoder shared by every modality, always in eval mode) and one direct
    child ``branch_<modality>`` (:class:`CRDBranch`) per branch holding that branch's whole student, so that
    ``MMSeparateDistributedDataParallel`` wraps the branches one by one. The assists of a branch are all the other
    modalities. Every channel count and stride of the parts, and by default their block type and block counts, are
    filled in from the built teacher's ``spec`` (:class:`~mmad.models.encoders.TeacherSpec`, the teacher contract):
    any encoder exposing ``spec`` and returning one feature list per image is a teacher.

    For two modalities this is exactly CRD. Size with a WideResNet-50-2 teacher: one branch with one assist has
    193,356,806 trainable parameters (386,713,612 for RGB + depth); with three modalities each branch has two BPs,
    two IBPs and a wider OCBE: 887,493,147 trainable parameters (~0.9B; 654,391,323 with ``share_projections``).

    Training: the teacher encodes all modalities once (one batched forward when their shapes agree), then each
    branch m is trained against its own teacher features ``T_m`` with ``loss_decoder = L(F_D, T_m)``,
    ``loss_filter = sum_a L(BP_a(T_a), T_m)``, ``loss_amplifier = sum_a L(IBP_a(T_a), T_m)`` and
    ``loss_output = L(F_CA, T_m)``; switched-off parts give no term. Branches are stepped one after the other with
    their own optimisers and share no gradient.

    Scoring: per branch the raw map is the sum over levels of the upsampled ``1 - cos(F_CA, T_m)``; it is smoothed
    with a Gaussian (``gaussian_sigma``), the child ``aggregator`` fuses the smoothed maps and the image score is the
    maximum of the fused map. The aggregator owns its state, keyed by branch name (``NormalizedSum``: the buffers
    ``aggregator.mean_<branch>``, ``aggregator.std_<branch>``, ``aggregator.fitted``), and is fitted on the raw
    validation maps by ``ValidationStatisticsHook``. The child ``threshold`` (:class:`DecisionThreshold`, buffers
    ``threshold.value`` etc.) holds the decision threshold on the image score, fitted by the same hook after the
    aggregator; when it is set, ``predict`` adds the decision ``pred_label``.

    Args:
        modalities: Names of the input modalities, e.g. ``('rgb', 'depth')``.
        teacher: Config or module of the frozen encoder.
        branches: Modalities that get a student branch (any subset, default all).
        crossmodal_filter: Whether the branches use the crossmodal filter (BP of the assists into the OCBE).
        crossmodal_amplifier: Whether the branches use the crossmodal amplifier (IBP of the assists fused into the
            decoder).
        bottleneck: Config of the bottleneck projection without shapes (default
            ``dict(type='BottleneckProjection', bottleneck_stride=32)``).
        amplifier: Config of the inverted bottleneck projection without shapes (default
            ``dict(type='InvertedBottleneckProjection', expansion=2)``).
        ocbe: Config of the OCBE without shapes (default ``dict(type='MultiInputOCBE')``); ``block_type``,
            ``out_blocks`` and ``width_factor`` default to the teacher spec's ``block_type``, ``ocbe_blocks`` and
            ``width_factor``.
        decoder: Config of the reverse decoder without shapes (default ``dict(type='ReverseDecoder')``);
            ``block_type``, ``stage_blocks`` and ``width_factor`` default to the spec's ``block_type``,
            ``decoder_blocks`` and ``width_factor``.
        fuser: Config of the fuser without shapes (default ``dict(type='SoftmaxFuser', mode='softmax')``).
        loss: Config or module of the distillation loss (default ``dict(type='ReverseDistillationLoss')``).
        aggregator: Config of the score aggregator in ``AGGREGATORS`` without ``branch_names`` (default
            ``dict(type='NormalizedSum')``).
        gaussian_sigma: Standard deviation of the Gaussian smoothing of each branch map, in pixels.
        stop_gradients: Whether the branches use the paper-era code's stop-gradients (see :class:`CRDBranch`).
        share_projections: Whether each branch keeps one BP and one IBP for all its assists (see :class:`CRDBranch`).
        memory_format: Memory layout of the model's 4D weights and of the images entering the teacher:
            ``'channels_last'`` or ``'contiguous_format'`` (NCHW). Results agree to float tolerance (only the
            order of summations changes). The default is NCHW because it was the faster one on the development
            CPU (2-core AMD EPYC with AVX-512): the paper config's training step (2 images at 128x128, one thread)
            took 1.9x as long in channels_last (median of 6 alternating runs; the backward convolutions dominate).
        data_preprocessor: Config or module of the data preprocessor (default ``dict(type='ADDataPreprocessor')``).
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 modalities: Sequence[str],
                 teacher: dict | nn.Module,
                 branches: Sequence[str] | None = None,
                 crossmodal_filter: bool = True,
                 crossmodal_amplifier: bool = True,
                 bottleneck: dict | None = None,
                 amplifier: dict | None = None,
                 ocbe: dict | None = None,
                 decoder: dict | None = None,
                 fuser: dict | None = None,
                 loss: dict | nn.Module | None = None,
                 aggregator: dict | None = None,
                 gaussian_sigma: float = 4.0,
                 stop_gradients: bool = True,
                 share_projections: bool = False,
                 memory_format: str = DEFAULT_MEMORY_FORMAT,
                 data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ADDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.modalities = self._check_modalities(modalities)
        self._branch_names = self._check_branches(branches, self.modalities)
        if (crossmodal_filter or crossmodal_amplifier) and len(self.modalities) < 2:
            raise ValueError('CRD: the crossmodal filter and amplifier need at least two modalities; switch them off '
                             f'for a single modality {self.modalities}.')
        self._check_preprocessor_modalities()
        self.crossmodal_filter = crossmodal_filter
        self.crossmodal_amplifier = crossmodal_amplifier
        self.gaussian_sigma = gaussian_sigma

        self.teacher = MODELS.build(teacher) if isinstance(teacher, dict) else teacher
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        part_cfgs = dict(
            bottleneck=bottleneck or dict(type='BottleneckProjection', bottleneck_stride=32),
            amplifier=amplifier or dict(type='InvertedBottleneckProjection', expansion=2),
            ocbe=ocbe or dict(type='MultiInputOCBE'),
            decoder=decoder or dict(type='ReverseDecoder'),
            fuser=fuser or dict(type='SoftmaxFuser', mode='softmax'))
        for name in self._branch_names:
            self.add_module(f'branch_{name}', self._build_branch(name, part_cfgs, stop_gradients, share_projections))
        loss = loss or dict(type='ReverseDistillationLoss')
        self.distillation_loss = MODELS.build(loss) if isinstance(loss, dict) else loss
        aggregator = dict(aggregator or dict(type='NormalizedSum'))
        if 'branch_names' in aggregator:
            raise ValueError(f"CRD: aggregator.branch_names is the model's branches {self._branch_names}; remove it "
                             f"from the aggregator config (got {aggregator['branch_names']!r}).")
        self.aggregator = AGGREGATORS.build(dict(aggregator, branch_names=self._branch_names))
        self.threshold = DecisionThreshold()
        self.memory_format = self._check_memory_format(memory_format)
        self.to(memory_format=self.memory_format)

    @property
    def branch_names(self) -> tuple[str, ...]:
        """Modalities that have a student branch, in order."""
        return self._branch_names

    @property
    def decision_threshold(self) -> float | None:
        """The image-score threshold of the decision (anomalous when the score is above it); None when not set."""
        return self.threshold.threshold

    @property
    def threshold_rule(self) -> str | None:
        """How the threshold was set: ``'quantile'``, ``'f1'`` or ``'manual'``; None when not set."""
        return self.threshold.rule_name

    def assists_of(self, name: str) -> tuple[str, ...]:
        """The modalities assisting branch ``name``: all the other modalities, in order."""
        return tuple(modality for modality in self.modalities if modality != name)

    def train(self, mode: bool = True) -> CRD:
        """Set the train/eval mode of the branches; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, inputs: Mapping[str, Tensor], data_samples: list[BaseDataElement] | None = None,
                mode: str = 'tensor') -> dict | list:
        """Dispatch on ``mode``.

        Args:
            inputs: Modality -> preprocessed images (B, 3, H, W).
            data_samples: Samples of the batch (needed for nothing but filled in by ``'predict'``).
            mode: ``'loss'`` -> dict of losses; ``'predict'`` -> data samples with predictions; ``'tensor'`` -> the
                raw branch maps ``{branch: Tensor[B, H, W]}``.

        Returns:
            See ``mode``.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.raw_branch_maps(inputs)
        raise ValueError(f"CRD: mode must be 'loss', 'predict' or 'tensor', got {mode!r}.")

    @torch.no_grad()
    def extract_teacher_feats(self, inputs: Mapping[str, Tensor]) -> FeatureLists:
        """Encode every modality with the frozen teacher, in one batched forward when their shapes agree.

        Args:
            inputs: Modality -> images (B, 3, H, W).

        Returns:
            Modality -> teacher features, shallow -> deep, level l of shape (B, C_l, H_l, W_l).
        """
        missing = [name for name in self.modalities if name not in inputs]
        if missing:
            raise KeyError(f'CRD needs inputs for modalities {list(self.modalities)}; missing {missing} (got '
                           f'{sorted(inputs)}).')
        images = [inputs[name].contiguous(memory_format=self.memory_format) for name in self.modalities]
        if len({tuple(image.shape) for image in images}) > 1:
            return {name: list(self.teacher(image)) for name, image in zip(self.modalities, images)}
        level_chunks = [feat.chunk(len(images)) for feat in self.teacher(torch.cat(images))]
        return {name: [chunks[index] for chunks in level_chunks] for index, name in enumerate(self.modalities)}

    def loss(self, inputs: Mapping[str, Tensor], data_samples: list[BaseDataElement] | None = None
             ) -> dict[str, Tensor]:
        """Losses of every branch, keys prefixed by the branch, e.g. ``'rgb.loss_decoder'``.

        Args:
            inputs: Modality -> preprocessed images (B, 3, H, W).
            data_samples: Unused.

        Returns:
            Branch-prefixed losses (scalars).
        """
        teacher_feats = self.extract_teacher_feats(inputs)
        losses = {}
        for name in self._branch_names:
            losses.update(self.branch_losses(name, teacher_feats))
        return losses

    def branch_losses(self, name: str, teacher_feats: FeatureLists) -> dict[str, Tensor]:
        """Losses of branch ``name`` against its own teacher features.

        Args:
            name: The branch.
            teacher_feats: Modality -> teacher features (from :meth:`extract_teacher_feats`).

        Returns:
            ``{name}.loss_decoder`` and, when switched on, ``{name}.loss_filter``, ``{name}.loss_amplifier`` and
            ``{name}.loss_output``.
        """
        own = teacher_feats[name]
        outputs = self._run_branch(name, teacher_feats)
        criterion = self.distillation_loss
        losses = {f'{name}.loss_decoder': criterion(outputs['decoder_feats'], own)}
        if self.crossmodal_filter:
            losses[f'{name}.loss_filter'] = sum(criterion(feats, own) for feats in outputs['filter_feats'].values())
        if self.crossmodal_amplifier:
            losses[f'{name}.loss_amplifier'] = sum(
                criterion(feats, own) for feats in outputs['amplifier_feats'].values())
            losses[f'{name}.loss_output'] = criterion(outputs['output_feats'], own)
        return losses

    def train_step(self, data: dict | tuple | list, optim_wrapper: OptimWrapperDict) -> dict[str, Tensor]:
        """Preprocess, encode once with the teacher, then update each branch with its own optimiser.

        Args:
            data: A batch from the dataloader.
            optim_wrapper: One optimiser wrapper per branch, keyed by branch name
                (from ``BranchOptimWrapperConstructor``).

        Returns:
            Log variables: ``loss`` (sum of the branches), ``{branch}.loss`` and every ``{branch}.loss_*``.
        """
        missing = [name for name in self._branch_names if name not in getattr(optim_wrapper, 'optim_wrappers', {})]
        if not isinstance(optim_wrapper, OptimWrapperDict) or missing:
            raise TypeError('CRD.train_step needs an OptimWrapperDict with one entry per branch '
                            f'{list(self._branch_names)} (optim_wrapper.constructor=\'BranchOptimWrapperConstructor\')'
                            f', got {type(optim_wrapper).__name__} missing {missing}.')
        data = self.data_preprocessor(data, True)
        teacher_feats = self.extract_teacher_feats(data['inputs'])
        log_vars: OrderedDict[str, Tensor] = OrderedDict()
        total = 0
        for name in self._branch_names:
            branch_optim_wrapper = optim_wrapper[name]
            with branch_optim_wrapper.optim_context(self._modules[f'branch_{name}']):
                losses = self.branch_losses(name, teacher_feats)
            branch_loss, branch_log_vars = self.parse_losses(losses)
            branch_optim_wrapper.update_params(branch_loss)
            total = total + branch_loss.detach()
            log_vars[f'{name}.loss'] = branch_log_vars.pop('loss').detach()
            log_vars.update((key, value.detach()) for key, value in branch_log_vars.items())
        log_vars['loss'] = total
        log_vars.move_to_end('loss', last=False)
        return log_vars

    def compile_parts(self, **compile_kwargs) -> None:
        """Compile the teacher and every student branch in place with ``torch.compile``.

        ``nn.Module.compile`` keeps the modules, their parameter names and the state dict as they are; the
        orchestration (preprocessing, losses, optimiser steps) stays eager.

        Args:
            **compile_kwargs: Arguments of ``torch.compile`` (``mode``, ``dynamic``, ``backend``...).
        """
        self.teacher.compile(**compile_kwargs)
        for name in self._branch_names:
            branch = self._modules[f'branch_{name}']
            (branch.module if is_model_wrapper(branch) else branch).compile(**compile_kwargs)

    def val_step(self, data: dict | tuple | list) -> list[BaseDataElement]:
        """Preprocess and predict under ``torch.inference_mode`` (no autograd bookkeeping at all).

        Args:
            data: A batch from the dataloader.

        Returns:
            The data samples filled by :meth:`predict`.
        """
        with torch.inference_mode():
            return super().val_step(data)

    def test_step(self, data: dict | tuple | list) -> list[BaseDataElement]:
        """Preprocess and predict under ``torch.inference_mode``, like :meth:`val_step`."""
        with torch.inference_mode():
            return super().test_step(data)

    @torch.no_grad()
    def raw_branch_maps(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Unsmoothed anomaly map of every branch: sum over levels of the upsampled ``1 - cos(F_CA, T_m)``.

        Args:
            inputs: Modality -> preprocessed images (B, 3, H, W).

        Returns:
            Branch -> map of shape (B, H, W) at the size of the branch's input.
        """
        teacher_feats = self.extract_teacher_feats(inputs)
        maps = {}
        for name in self._branch_names:
            output_feats = self._run_branch(name, teacher_feats)['output_feats']
            with _float32_region(inputs[name]):
                maps[name] = cosine_distance_map([feat.float() for feat in output_feats],
                                                 [feat.float() for feat in teacher_feats[name]],
                                                 size=tuple(inputs[name].shape[-2:]))
        return maps

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor],
                data_samples: list[BaseDataElement] | None = None) -> list[BaseDataElement]:
        """Score a batch.

        Args:
            inputs: Modality -> preprocessed images (B, 3, H, W).
            data_samples: One sample per image, filled in place; new ``ADDataSample`` objects when None.

        Returns:
            The samples with ``anomaly_map`` (H, W), ``pred_score`` (), ``branch_maps`` {branch: (H, W) smoothed}
            and ``branch_scores`` {branch: ()}; with a threshold set also ``pred_label`` (() long, 1 anomalous).
        """
        raw_maps = self.raw_branch_maps(inputs)
        with _float32_region(next(iter(raw_maps.values()))):
            branch_maps = {name: gaussian_smooth(raw_map, self.gaussian_sigma) for name, raw_map in raw_maps.items()}
            fused = self.aggregator(branch_maps)
        scores = fused.flatten(1).amax(dim=1)
        branch_scores = {name: branch_map.flatten(1).amax(dim=1) for name, branch_map in branch_maps.items()}
        labels = self.threshold(scores) if self.threshold.is_fitted else None
        if data_samples is None:
            data_samples = [ADDataSample() for _ in range(fused.shape[0])]
        for index, sample in enumerate(data_samples):
            sample.set_field(fused[index], 'anomaly_map')
            sample.set_field(scores[index], 'pred_score')
            sample.set_field({name: branch_map[index] for name, branch_map in branch_maps.items()}, 'branch_maps')
            sample.set_field({name: score[index] for name, score in branch_scores.items()}, 'branch_scores')
            if labels is not None:
                sample.set_field(labels[index], 'pred_label')
        return data_samples

    def _run_branch(self, name: str, teacher_feats: FeatureLists) -> dict:
        """Call branch ``name`` through its (possibly DDP-wrapped) module's ``__call__``.

        Without autograd (scoring, statistics) a DDP wrapper is bypassed: there is no gradient to synchronise, and
        its buffer broadcast, a collective, would stall ranks that score different numbers of batches.
        """
        branch = self._modules[f'branch_{name}']
        if not torch.is_grad_enabled() and is_model_wrapper(branch):
            branch = branch.module
        return branch(teacher_feats[name], {assist: teacher_feats[assist] for assist in self.assists_of(name)})

    def _build_branch(self, name: str, part_cfgs: dict[str, dict], stop_gradients: bool,
                      share_projections: bool) -> CRDBranch:
        """Fill the part configs in from the teacher's :class:`~mmad.models.encoders.TeacherSpec`.

        The shapes (channels, strides, number of inputs) are the teacher's and may not be changed in the config; the
        student layout (block type, blocks per stage, width factor) is the spec's default unless the config sets it.
        """
        spec = getattr(self.teacher, 'spec', None)
        if not isinstance(spec, TeacherSpec):
            raise TypeError(f'CRD: the teacher {type(self.teacher).__name__} must expose `spec`, a TeacherSpec '
                            f'(mmad.models.encoders), got {type(spec).__name__}.')
        num_assists = len(self.assists_of(name))
        ocbe = _with_shapes(part_cfgs['ocbe'], 'ocbe', in_channels=spec.out_channels,
                            num_inputs=1 + (num_assists if self.crossmodal_filter else 0), strides=spec.strides)
        _with_layout(ocbe, block_type=spec.block_type, out_blocks=spec.ocbe_blocks, width_factor=spec.width_factor)
        decoder = _with_shapes(part_cfgs['decoder'], 'decoder', in_channels=spec.ocbe_channels,
                               out_channels=spec.out_channels)
        _with_layout(decoder, block_type=spec.block_type, stage_blocks=spec.decoder_blocks,
                     width_factor=spec.width_factor)
        bottleneck = amplifier = fuser = None
        if self.crossmodal_filter:
            bottleneck = _with_shapes(part_cfgs['bottleneck'], 'bottleneck', in_channels=spec.out_channels,
                                      strides=spec.strides)
        if self.crossmodal_amplifier:
            amplifier = _with_shapes(part_cfgs['amplifier'], 'amplifier', in_channels=spec.out_channels)
            fuser = _with_shapes(part_cfgs['fuser'], 'fuser', num_inputs=1 + num_assists, num_levels=spec.num_levels)
        return CRDBranch(name, self.assists_of(name), ocbe=ocbe, decoder=decoder, bottleneck=bottleneck,
                         amplifier=amplifier, fuser=fuser, stop_gradients=stop_gradients,
                         share_projections=share_projections)

    def _check_preprocessor_modalities(self) -> None:
        configured = getattr(self.data_preprocessor, 'modalities', None)
        if configured is None:
            return
        missing = [name for name in self.modalities if name not in configured]
        if missing:
            raise ValueError(f'CRD: the data preprocessor has no mean/std for modalities {missing}; configured: '
                             f'{list(configured)}.')

    @staticmethod
    def _check_memory_format(memory_format: str) -> torch.memory_format:
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f'CRD: memory_format must be one of {list(MEMORY_FORMATS)}, got {memory_format!r}.')
        return MEMORY_FORMATS[memory_format]

    @staticmethod
    def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
        if isinstance(modalities, str) or not modalities:
            raise ValueError(f'CRD: modalities must be a non-empty sequence of names, got {modalities!r}.')
        names = tuple(modalities)
        if len(set(names)) != len(names):
            raise ValueError(f'CRD: modalities must be unique, got {names}.')
        return names

    @staticmethod
    def _check_branches(branches: Sequence[str] | None, modalities: tuple[str, ...]) -> tuple[str, ...]:
        if branches is None:
            return modalities
        if isinstance(branches, str) or not branches:
            raise ValueError(f'CRD: branches must be a non-empty sequence of modalities, got {branches!r}.')
        unknown = [name for name in branches if name not in modalities]
        if unknown or len(set(branches)) != len(branches):
            raise ValueError(f'CRD: branches must be distinct modalities of {modalities}, got {tuple(branches)}.')
        return tuple(branches)


def _float32_region(like: Tensor) -> torch.autocast:
    """A region without autocast on ``like``'s device: maps, smoothing and fusion stay float32 under ``--amp``."""
    return torch.autocast(like.device.type, enabled=False)


def _with_shapes(cfg: dict, part: str, **shapes) -> dict:
    """A copy of ``cfg`` with the teacher-derived shape arguments; a conflicting user value is an error."""
    cfg = copy.deepcopy(dict(cfg))
    for key, value in shapes.items():
        if key in cfg and _normalised(cfg[key]) != _normalised(value):
            raise ValueError(f'CRD: {part}.{key} is derived from the teacher ({value!r}); the config sets '
                             f'{cfg[key]!r}. Remove it from the {part} config.')
        cfg[key] = value
    return cfg


def _with_layout(cfg: dict, **layout) -> None:
    """Set the student layout arguments the config leaves unset (in place); the config's own values win."""
    for key, value in layout.items():
        cfg.setdefault(key, value)


def _normalised(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value
