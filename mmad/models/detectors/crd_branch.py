"""One branch of Crossmodal Reverse Distillation: the whole student of one modality."""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from mmengine.model import BaseModule, ModuleDict
from torch import Tensor

from mmad.registry import MODELS

SHARED_PROJECTION_KEY = 'shared'


@MODELS.register_module()
class CRDBranch(BaseModule):
    """The student of one modality (m): crossmodal filter, multi-input OCBE, reverse decoder, crossmodal amplifier.

    With teacher features ``T_m`` (own) and ``T_a`` (one list per assist modality a), all lists shallow -> deep with
    level l of shape (B, C_l, H_l, W_l):

    1. Crossmodal filter: ``F_BP,a = BP_a(T_a)``, same shapes as ``T_a``.
    2. OCBE: per level, the own features and every ``F_BP,a`` concatenated on channels -> one bottleneck feature.
    3. Decoder stages, deep -> shallow; after each stage ``F_D,l`` is fused with the amplified assist features
       ``F_IBP,a,l = IBP_a(T_a)_l``: ``F_CA,l = w_0 F_D,l + sum_a w_a F_IBP,a,l`` with the fuser's weights for level
       l (softmax: 1 / (1 + number of assists) each at init). The fused feature is the input of the next stage.

    Stop-gradients (``stop_gradients=True``, the paper-era code): the next-stage input uses detached fusion weights
    (gradient reaches ``F_D`` and ``F_IBP``), and the output ``F_CA`` uses detached ``F_D`` and ``F_IBP``, so a loss
    on ``F_CA`` trains only the fusion logits. With ``stop_gradients=False`` one fused tensor serves both.

    Switches: ``bottleneck=None`` turns the crossmodal filter off (no ``bp``; the OCBE sees only the own features);
    ``amplifier=None`` turns the amplifier off (no ``ibp`` and no ``fuser``; the output is ``F_D``).

    ``share_projections=True`` keeps one BP and one IBP for all assists (``bp['shared']``, ``ibp['shared']``), so
    their parameters grow with the number of modalities N instead of N^2. Shared are the convolution weights and the
    BatchNorm layers; the assists go through them as one batch, so BatchNorm's batch and running statistics mix the
    assist modalities. The OCBE still takes one input per assist (its first convolutions grow with N) and the fuser
    still has one weight per assist. For N = 2 there is one assist and sharing changes nothing.

    Args:
        modality: The branch's own modality.
        assists: The other modalities feeding this branch, in a fixed order.
        ocbe: Config of the multi-input OCBE with every shape argument set (``num_inputs`` included).
        decoder: Config of the reverse decoder with every shape argument set; it exposes ``stages`` deep -> shallow.
        bottleneck: Config of one bottleneck projection (shapes set), or None to switch the filter off.
        amplifier: Config of one inverted bottleneck projection (shapes set), or None to switch the amplifier off.
        fuser: Config of the fuser with ``num_inputs = 1 + len(assists)``; required iff ``amplifier`` is given.
        stop_gradients: Whether to apply the stop-gradients described above.
        share_projections: Whether one BP and one IBP serve every assist.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 modality: str,
                 assists: Sequence[str],
                 ocbe: dict,
                 decoder: dict,
                 bottleneck: dict | None = None,
                 amplifier: dict | None = None,
                 fuser: dict | None = None,
                 stop_gradients: bool = True,
                 share_projections: bool = False,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.modality = modality
        self.assists = tuple(assists)
        if modality in self.assists:
            raise ValueError(f'CRDBranch {modality!r}: its own modality cannot also be an assist {self.assists}.')
        if (bottleneck is not None or amplifier is not None) and not self.assists:
            raise ValueError(f'CRDBranch {modality!r}: the crossmodal filter and amplifier need at least one assist '
                             'modality.')
        if (amplifier is None) != (fuser is None):
            raise ValueError(f'CRDBranch {modality!r}: `amplifier` and `fuser` go together (both set or both None).')
        self.stop_gradients = stop_gradients
        self.share_projections = share_projections
        if bottleneck is not None:
            self.bp = self._build_projections(bottleneck)
        self.ocbe = MODELS.build(ocbe)
        self.decoder = MODELS.build(decoder)
        if amplifier is not None:
            self.ibp = self._build_projections(amplifier)
            self.fuser = MODELS.build(fuser)

    @property
    def with_filter(self) -> bool:
        """Whether the crossmodal filter (BP) is on."""
        return hasattr(self, 'bp')

    @property
    def with_amplifier(self) -> bool:
        """Whether the crossmodal amplifier (IBP + fusion) is on."""
        return hasattr(self, 'ibp')

    def forward(self, own: Sequence[Tensor], assists: Mapping[str, Sequence[Tensor]]) -> dict:
        """Run the student.

        Args:
            own: Teacher features of the own modality, shallow -> deep, level l of shape (B, C_l, H_l, W_l).
            assists: Assist modality -> its teacher features, same shapes as ``own``.

        Returns:
            dict with, all feature lists shallow -> deep and shaped like ``own``:

            - ``decoder_feats``: ``F_D``.
            - ``filter_feats``: assist -> ``BP_a(T_a)`` (empty when the filter is off).
            - ``amplifier_feats``: assist -> ``IBP_a(T_a)`` (empty when the amplifier is off).
            - ``output_feats``: ``F_CA`` (``F_D`` when the amplifier is off).
        """
        missing = [name for name in self.assists if name not in assists]
        if missing:
            raise KeyError(f'CRDBranch {self.modality!r} needs teacher features of its assists {missing}.')
        num_levels = len(own)
        filter_feats = self._project(self.bp, assists) if self.with_filter else {}
        ocbe_inputs = [[own[level]] + [feats[level] for feats in filter_feats.values()] for level in range(num_levels)]
        stage_input = self.ocbe(ocbe_inputs)
        amplifier_feats = self._project(self.ibp, assists) if self.with_amplifier else {}
        decoder_feats: list[Tensor] = [None] * num_levels
        output_feats: list[Tensor] = [None] * num_levels
        for index, stage in enumerate(self.decoder.stages):
            level = num_levels - 1 - index
            decoded = stage(stage_input)
            decoder_feats[level] = decoded
            if not self.with_amplifier:
                stage_input = output_feats[level] = decoded
                continue
            fusion_inputs = [decoded] + [amplifier_feats[name][level] for name in self.assists]
            stage_input = self.fuser(level, fusion_inputs, detach_weights=self.stop_gradients)
            output_feats[level] = (self.fuser(level, fusion_inputs, detach_inputs=True)
                                   if self.stop_gradients else stage_input)
        return dict(decoder_feats=decoder_feats, filter_feats=filter_feats, amplifier_feats=amplifier_feats,
                    output_feats=output_feats)

    def _build_projections(self, cfg: dict) -> ModuleDict:
        keys = (SHARED_PROJECTION_KEY, ) if self.share_projections else self.assists
        return ModuleDict({key: MODELS.build(copy.deepcopy(cfg)) for key in keys})

    def _project(self, projections: ModuleDict,
                 assists: Mapping[str, Sequence[Tensor]]) -> dict[str, list[Tensor]]:
        """Apply each assist's projection (or the shared one, to all assists batched) -> assist -> feature list."""
        if not self.share_projections:
            return {name: list(projections[name](list(assists[name]))) for name in self.assists}
        num_levels = len(assists[self.assists[0]])
        batched = [torch.cat([assists[name][level] for name in self.assists]) for level in range(num_levels)]
        projected = [feat.chunk(len(self.assists)) for feat in projections[SHARED_PROJECTION_KEY](batched)]
        return {name: [chunks[index] for chunks in projected] for index, name in enumerate(self.assists)}
