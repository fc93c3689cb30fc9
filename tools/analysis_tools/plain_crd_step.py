"""One CRD training step written plainly in PyTorch: the reference that measures the framework's overhead.

The same computation as ``CRD.train_step`` with no framework around it: the raw batch is normalised inline, the
frozen teacher encodes all modalities in one batched forward under ``torch.no_grad``, then each branch runs its
student (crossmodal filter -> OCBE -> decoder stages fused with the crossmodal amplifier, the paper-era
stop-gradients), sums its cosine distillation losses (written here with ``torch.nn.functional``), calls
``loss.backward()`` and steps its own ``torch.optim.Adam`` (default settings besides lr and betas), then zeroes the
gradients. fp32, default NCHW memory format.

The modules are plain ``nn.Module`` objects; :meth:`PlainCRDStep.from_crd` takes deep copies of a built mmad CRD
model's teacher and branches, so both start from identical weights.

Example:
    >>> step = PlainCRDStep.from_crd(model, lr=0.005, betas=(0.5, 0.999))
    >>> losses = step(dict(rgb=rgb_0_255, depth=depth_0_1))   # {'rgb': {'loss_decoder': ...}, 'depth': {...}}
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cosine_distillation_loss(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """``sum_l mean_b (1 - cos(S_l[b].flatten(), T_l[b].flatten()))``: Reverse Distillation's loss.

    Args:
        student: One tensor per level, shape (B, C_l, H_l, W_l).
        teacher: One tensor per level, same shapes.

    Returns:
        Scalar loss.
    """
    return sum((1 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1)).mean() for s, t in zip(student, teacher))


class PlainCRDStep:
    """One CRD training step over plain modules, with one ``torch.optim.Adam`` per student.

    Args:
        teacher: Frozen encoder; ``teacher(images)`` returns one feature per level, shallow -> deep.
        students: Branch modality -> its student with the children ``ocbe``, ``decoder`` (``stages`` deep ->
            shallow) and, when switched on, ``bp`` / ``ibp`` (one projection per assist modality) and ``fuser``.
        modalities: All input modalities, in the teacher's batch order.
        mean_std: Modality -> (mean, std), each a tensor of shape (3, 1, 1) applied after a 1-channel image is
            repeated to 3 channels.
        lr: Adam learning rate.
        betas: Adam betas.
        loss_weight: Factor of every distillation loss.
        optimizers: Branch -> an existing ``torch.optim.Adam`` over that student's parameters, to use instead of
            new ones (the benchmark's shared-weights mode, which holds one copy of a large model in memory).
    """

    def __init__(self, teacher: nn.Module, students: Mapping[str, nn.Module], modalities: Sequence[str],
                 mean_std: Mapping[str, tuple[Tensor, Tensor]], lr: float, betas: tuple[float, float],
                 loss_weight: float = 1.0, optimizers: Mapping[str, torch.optim.Optimizer] | None = None) -> None:
        self.teacher = teacher.eval()
        self.students = dict(students)
        self.modalities = tuple(modalities)
        self.mean_std = dict(mean_std)
        self.loss_weight = loss_weight
        self.optimizers = dict(optimizers) if optimizers is not None else {
            name: torch.optim.Adam(student.parameters(), lr=lr, betas=betas) for name, student in self.students.items()}
        for student in self.students.values():
            student.train()
            if getattr(student, 'share_projections', False):
                raise ValueError('PlainCRDStep: students with share_projections=True are not covered by the plain '
                                 'reference; use one projection per assist (the paper setting).')

    @classmethod
    def from_crd(cls, model: nn.Module, lr: float, betas: tuple[float, float]) -> PlainCRDStep:
        """Deep copies of a CRD model's teacher and branches, in default NCHW memory format, and its normalisation.

        Args:
            model: A built ``mmad.models.CRD``.
            lr: Adam learning rate (the config's ``optim_wrapper.optimizer.lr``).
            betas: Adam betas.

        Returns:
            The reference step, sharing no tensor with ``model``.
        """
        preprocessor = model.data_preprocessor
        mean_std = {name: (getattr(preprocessor, f'{name}_mean').clone(), getattr(preprocessor, f'{name}_std').clone())
                    for name in model.modalities}
        teacher = copy.deepcopy(model.teacher).to(memory_format=torch.contiguous_format)
        students = {name: copy.deepcopy(getattr(model, f'branch_{name}')).to(memory_format=torch.contiguous_format)
                    for name in model.branch_names}
        return cls(teacher, students, model.modalities, mean_std, lr=lr, betas=betas,
                   loss_weight=model.distillation_loss.loss_weight)

    def __call__(self, images: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        """Run one step: teacher forward, then per student forward, loss, backward, Adam step, zero_grad.

        Args:
            images: Modality -> raw images (B, C, H, W), C 1 or 3, as a dataloader batch holds them (rgb 0-255,
                depth in [0, 1]).

        Returns:
            Branch -> its detached losses ``loss_decoder`` and, when switched on, ``loss_filter``,
            ``loss_amplifier`` and ``loss_output``.
        """
        normalised = []
        for name in self.modalities:
            batch = images[name].float()
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            mean, std = self.mean_std[name]
            normalised.append((batch - mean) / std)
        with torch.no_grad():
            levels = self.teacher(torch.cat(normalised))
        feats = {name: [level.chunk(len(self.modalities))[index] for level in levels]
                 for index, name in enumerate(self.modalities)}
        losses = {}
        for name, student in self.students.items():
            outputs = self._student_forward(student, feats[name],
                                            {assist: feats[assist] for assist in self.modalities if assist != name})
            branch_losses = {key: self.loss_weight * value for key, value in self._losses(outputs, feats[name]).items()}
            sum(branch_losses.values()).backward()
            self.optimizers[name].step()
            self.optimizers[name].zero_grad()
            losses[name] = {key: value.detach() for key, value in branch_losses.items()}
        return losses

    @staticmethod
    def _student_forward(student: nn.Module, own: list[Tensor], assists: dict[str, list[Tensor]]) -> dict:
        """Filter -> OCBE -> decoder stages fused with the amplified assists (paper-era stop-gradients)."""
        num_levels = len(own)
        filtered = {name: student.bp[name](feats) for name, feats in assists.items()} if hasattr(student, 'bp') else {}
        stage_input = student.ocbe([[own[level]] + [feats[level] for feats in filtered.values()]
                                    for level in range(num_levels)])
        amplified = {name: student.ibp[name](feats) for name, feats in assists.items()} if hasattr(student, 'ibp') \
            else {}
        decoded_feats, output_feats = [None] * num_levels, [None] * num_levels
        for index, stage in enumerate(student.decoder.stages):
            level = num_levels - 1 - index
            decoded = stage(stage_input)
            decoded_feats[level] = decoded
            if not amplified:
                stage_input = output_feats[level] = decoded
                continue
            inputs = [decoded] + [feats[level] for feats in amplified.values()]
            weights = student.fuser.weights(level)
            if student.stop_gradients:
                stage_input = sum(weight.detach() * feat for weight, feat in zip(weights, inputs))
                output_feats[level] = sum(weight * feat.detach() for weight, feat in zip(weights, inputs))
            else:
                stage_input = output_feats[level] = sum(weight * feat for weight, feat in zip(weights, inputs))
        return dict(decoded=decoded_feats, filtered=filtered, amplified=amplified, output=output_feats)

    @staticmethod
    def _losses(outputs: dict, own: list[Tensor]) -> dict[str, Tensor]:
        losses = dict(loss_decoder=cosine_distillation_loss(outputs['decoded'], own))
        if outputs['filtered']:
            losses['loss_filter'] = sum(cosine_distillation_loss(feats, own) for feats in outputs['filtered'].values())
        if outputs['amplified']:
            losses['loss_amplifier'] = sum(cosine_distillation_loss(feats, own)
                                           for feats in outputs['amplified'].values())
            losses['loss_output'] = cosine_distillation_loss(outputs['output'], own)
        return losses
