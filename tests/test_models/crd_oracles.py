"""Independent re-computations of CRD's wiring for the value tests (test_crd_dataflow.py, test_crd_gradients.py).

Nothing here calls ``CRDBranch.forward``, ``CRD.branch_losses``, ``CRD.raw_branch_maps``, the project's loss or
``cosine_distance_map``: the branch is re-wired from its parts (``bp``, ``ocbe``, ``decoder.stages``, ``ibp``) and the
fusion, the distillation loss and the anomaly map are written out with ``torch.nn.functional``.
"""
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from mmad.registry import MODELS

SIZE = 32  # resnet18 teacher: levels (64, 8, 8), (128, 4, 4), (256, 2, 2)
NORMALISATION = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
# Distinct fusion logits per level (rows) and input (columns: decoder, then the assists in order), so that a fusion
# with another level's weights, or with the inputs in another order, gives other values.
FUSION_LOGITS = ((0.9, -0.4, 0.2), (-0.6, 1.1, -0.1), (0.3, 0.5, -1.2))


def build_small_crd(modalities, seed=0, **kwargs):
    """A resnet18-teacher CRD with random weights (fixed seed), distinct fusion logits, in eval mode."""
    torch.manual_seed(seed)
    cfg = dict(type='CRD', modalities=tuple(modalities),
               teacher=dict(type='TimmEncoder', model_name='resnet18', pretrained=False),
               data_preprocessor=dict(type='ADDataPreprocessor',
                                      modalities={name: NORMALISATION for name in modalities}))
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmad'):
        model = MODELS.build(cfg)
    with torch.no_grad():
        for name in model.branch_names:
            branch = getattr(model, f'branch_{name}')
            if hasattr(branch, 'fuser'):
                logits = torch.tensor(FUSION_LOGITS)[:branch.fuser.num_levels, :branch.fuser.num_inputs]
                branch.fuser.level_weights.copy_(logits)
    return model.eval()


def make_inputs(modalities, batch=2, seed=0):
    """Random images (B, 3, SIZE, SIZE), each modality's noise confined to its own region (left, right, top half).

    Random images alike in everything but the draw give teacher features so alike that a loss against an assist's
    features differs from the loss against the own ones by ~1e-3 only; separate regions make the pairs tell apart.
    """
    generator = torch.Generator().manual_seed(seed)
    half = SIZE // 2
    regions = [(slice(None), slice(0, half)), (slice(None), slice(half, None)), (slice(0, half), slice(None))]
    inputs = {}
    for index, name in enumerate(modalities):
        mask = torch.zeros(SIZE, SIZE)
        mask[regions[index % len(regions)]] = 1
        inputs[name] = torch.randn(batch, 3, SIZE, SIZE, generator=generator) * mask
    return inputs


def teacher_feats(model, inputs):
    """Teacher features of each modality from its own forward (not the batched one of extract_teacher_feats)."""
    with torch.no_grad():
        return {name: [feat.clone() for feat in model.teacher(inputs[name])] for name in model.modalities}


def fuse(logits, feats):
    """``sum_j softmax(logits)_j * feats_j``."""
    weights = logits.softmax(dim=0)
    return sum(weight * feat for weight, feat in zip(weights, feats))


def reference_branch(branch, own, assists, stop_gradients=True):
    """CRD's student of one modality re-wired from its parts.

    Args:
        branch: A ``CRDBranch`` (its parts are used, not its forward).
        own: Teacher features of the branch's modality, shallow -> deep.
        assists: Assist -> teacher features, in the branch's assist order.
        stop_gradients: The paper-era code's detaches (see ``CRDBranch``).

    Returns:
        dict(decoder_feats, filter_feats, amplifier_feats, output_feats, stage_inputs), ``stage_inputs[i]`` being the
        input of decoder stage i (deep -> shallow).
    """
    num_levels = len(own)
    filter_feats = {name: list(branch.bp[name](feats)) for name, feats in assists.items()} if hasattr(
        branch, 'bp') else {}
    ocbe_inputs = [[own[level], *(feats[level] for feats in filter_feats.values())] for level in range(num_levels)]
    stage_input = branch.ocbe(ocbe_inputs)
    amplifier_feats = {name: list(branch.ibp[name](feats)) for name, feats in assists.items()} if hasattr(
        branch, 'ibp') else {}
    decoder_feats, output_feats, stage_inputs = [None] * num_levels, [None] * num_levels, []
    for index, stage in enumerate(branch.decoder.stages):
        level = num_levels - 1 - index
        stage_inputs.append(stage_input)
        decoded = stage(stage_input)
        decoder_feats[level] = decoded
        if not amplifier_feats:
            stage_input = output_feats[level] = decoded
            continue
        feats = [decoded, *(amplifier_feats[name][level] for name in assists)]
        logits = branch.fuser.level_weights[level]
        if stop_gradients:
            stage_input = fuse(logits.detach(), feats)
            output_feats[level] = fuse(logits, [feat.detach() for feat in feats])
        else:
            stage_input = output_feats[level] = fuse(logits, feats)
    return dict(decoder_feats=decoder_feats, filter_feats=filter_feats, amplifier_feats=amplifier_feats,
                output_feats=output_feats, stage_inputs=stage_inputs)


def rd_loss(student, teacher):
    """``sum_l mean_b (1 - cos(S_l[b].flatten(), T_l[b].flatten()))``, the cosine written out."""
    total = 0
    for s, t in zip(student, teacher, strict=True):
        s, t = s.flatten(1), t.flatten(1)
        cosine = (s * t).sum(dim=1) / (s.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-8)
        total = total + (1 - cosine).mean()
    return total


def distance_map(student, teacher, size):
    """Sum over levels of ``1 - cos`` over channels, each level upsampled bilinearly (align_corners=True): (B, H, W)."""
    total = 0
    for s, t in zip(student, teacher, strict=True):
        level_map = (1 - F.cosine_similarity(s, t, dim=1)).unsqueeze(1)
        total = total + F.interpolate(level_map, size=size, mode='bilinear', align_corners=True)[:, 0]
    return total
