"""Export a fitted CRD detector to ONNX: the whole inference graph, one named input per modality.

The exported graph takes each modality as the test pipeline gives it (``PackADInputs``: float, before the data
preprocessor, e.g. rgb in 0-255 with 3 channels, depth in [0, 1] with 1 channel) and runs, in order: the data
preprocessor's normalisation (a 1-channel modality is repeated to 3 channels), the frozen teacher, every student
branch (crossmodal filter, OCBE, decoder, amplifier, fuser), the per-branch cosine-distance maps, their Gaussian
smoothing, the aggregator with its stored validation statistics, and the image score (maximum of the fused map).
The batch dimension is dynamic; the image size is fixed at export.

Outputs, in order: ``anomaly_map`` (B, H, W), ``pred_score`` (B,), then ``map_<branch>`` (B, H, W) for every
branch (smoothed, before fusion). The model's metadata (``metadata_props``) holds the decision threshold
(``decision_threshold``, empty when none was fitted), the modalities, the branches, the input channels and the size.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmad.models.detectors.anomaly_maps import cosine_distance_map, gaussian_smooth
from mmad.utils.fileio import write_bytes

#: Above this many bytes of weights the ONNX file keeps them as external data (protobuf's limit is 2 GB).
EXTERNAL_DATA_THRESHOLD = 1 << 30


class ExportError(RuntimeError):
    """A model that cannot be exported as it is (e.g. its aggregator is not fitted)."""


class CRDInferenceGraph(nn.Module):
    """A CRD detector as a module of positional per-modality tensors -> fused map, score and branch maps.

    Args:
        model: A built CRD detector whose aggregator is fitted (eval mode is set here).
        input_channels: Modality -> channel count of its input (1 or 3); modalities not named have 3.

    Raises:
        ExportError: The aggregator needs fitting and holds no statistics, or a channel count is not 1 or 3.
    """

    def __init__(self, model: nn.Module, input_channels: Mapping[str, int] | None = None) -> None:
        super().__init__()
        aggregator = model.aggregator
        if not aggregator.is_fitted:
            raise ExportError(
                f'export_onnx: the aggregator {type(aggregator).__name__} holds no validation statistics '
                f'(aggregator.fitted is False); expected a checkpoint written after ValidationStatisticsHook fitted '
                f'them (or fit them with model.aggregator.reset/update/finalize).')
        unknown = sorted(set(input_channels or {}) - set(model.modalities))
        if unknown:
            raise ExportError(f'export_onnx: input channels given for {unknown}, which are not modalities of the '
                              f'model {list(model.modalities)}.')
        self.input_channels = {name: int((input_channels or {}).get(name, 3)) for name in model.modalities}
        bad = {name: channels for name, channels in self.input_channels.items() if channels not in (1, 3)}
        if bad:
            raise ExportError(f'export_onnx: input channels must be 1 or 3, got {bad}.')
        self.model = model
        self.eval()

    @property
    def modalities(self) -> tuple[str, ...]:
        """Input names, in the order of the positional inputs."""
        return tuple(self.model.modalities)

    @property
    def output_names(self) -> list[str]:
        """``anomaly_map``, ``pred_score``, then ``map_<branch>`` per branch."""
        return ['anomaly_map', 'pred_score'] + [f'map_{name}' for name in self.model.branch_names]

    def forward(self, *images: Tensor) -> tuple[Tensor, ...]:
        """Score a batch.

        Args:
            images: One tensor (B, C_m, H, W) per modality, in the order of :attr:`modalities`, as
                ``PackADInputs`` gives it (before normalisation).

        Returns:
            ``anomaly_map`` (B, H, W), ``pred_score`` (B,) and one smoothed map (B, H, W) per branch.
        """
        model = self.model
        preprocessor = model.data_preprocessor
        inputs = {}
        for name, image in zip(self.modalities, images):
            image = image.float()
            if self.input_channels[name] == 1:
                image = image.expand(-1, 3, -1, -1)
            inputs[name] = (image - getattr(preprocessor, f'{name}_mean')) / getattr(preprocessor, f'{name}_std')
        teacher_feats = self._teacher_feats(inputs)
        branch_maps = []
        for name in model.branch_names:
            raw = cosine_distance_map(model._run_branch(name, teacher_feats)['output_feats'], teacher_feats[name],
                                      size=tuple(inputs[name].shape[-2:]))
            branch_maps.append(gaussian_smooth(raw, model.gaussian_sigma))
        fused = model.aggregator.combine(branch_maps)
        return (fused, fused.flatten(1).amax(dim=1), *branch_maps)


    def _teacher_feats(self, inputs: dict[str, Tensor]) -> dict[str, list[Tensor]]:
        """The teacher features of every modality from one batched forward (the inputs share one shape).

        ``CRD.extract_teacher_feats`` compares shapes in Python, which a symbolic batch size cannot do; here the
        shapes agree by construction (one size, 3 channels after the normalisation).

        Args:
            inputs: Modality -> normalised images (B, 3, H, W).

        Returns:
            Modality -> features, level l of shape (B, C_l, H_l, W_l).
        """
        levels = [feat.unflatten(0, (len(inputs), -1)) for feat in self.model.teacher(torch.cat(list(inputs.values())))]
        return {name: [level[index] for level in levels] for index, name in enumerate(inputs)}


def export_metadata(graph: CRDInferenceGraph, image_size: tuple[int, int], threshold: float | None,
                    extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (every value a string; JSON for lists).

    Args:
        graph: The exported graph.
        image_size: Input (H, W).
        threshold: The decision threshold, or None when none was fitted (stored as an empty string).
        extra: More entries (e.g. the checkpoint's path).

    Returns:
        Key -> value.
    """
    metadata = dict(
        decision_threshold='' if threshold is None else repr(float(threshold)),
        modalities=json.dumps(list(graph.modalities)),
        branch_names=json.dumps(list(graph.model.branch_names)),
        input_channels=json.dumps(graph.input_channels),
        image_size=json.dumps(list(image_size)),
        outputs=json.dumps(graph.output_names))
    metadata.update(extra or {})
    return metadata


def export_onnx(model: nn.Module, out_file: str, image_size: Sequence[int],
                input_channels: Mapping[str, int] | None = None, threshold: float | None = None,
                metadata: Mapping[str, str] | None = None, external_data: bool | None = None,
                opset_version: int = 18) -> str:
    """Export a fitted CRD detector to ``out_file`` (dynamic batch) and store its metadata.

    Args:
        model: The CRD detector (its aggregator fitted).
        out_file: The ``.onnx`` file.
        image_size: Input (H, W).
        input_channels: Modality -> channel count (1 or 3, default 3).
        threshold: The decision threshold stored in the metadata (None: empty).
        metadata: More metadata entries.
        external_data: Whether the weights go to ``<out_file>.data`` beside it; None: when they exceed
            :data:`EXTERNAL_DATA_THRESHOLD` bytes (protobuf cannot hold more than 2 GB).
        opset_version: ONNX opset.

    Returns:
        ``out_file``.

    Raises:
        ExportError: The model cannot be exported (see :class:`CRDInferenceGraph`).
        OSError: The file cannot be written (named in the message).
    """
    graph = CRDInferenceGraph(model, input_channels)
    height, width = (int(value) for value in image_size)
    dummy = tuple(torch.rand(2, graph.input_channels[name], height, width) for name in graph.modalities)
    batch = torch.export.Dim('batch', min=1)
    dynamic_shapes = tuple({0: batch} for _ in graph.modalities)
    with torch.no_grad():
        program = torch.onnx.export(graph, dummy, input_names=list(graph.modalities),
                                    output_names=graph.output_names, dynamic_shapes=(dynamic_shapes,),
                                    opset_version=opset_version, dynamo=True, external_data=False, optimize=True,
                                    verbose=False)
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in export_metadata(graph, (height, width), threshold, metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if external_data is None:
        weight_bytes = sum(value.numel() * value.element_size() for value in graph.state_dict().values())
        external_data = weight_bytes > EXTERNAL_DATA_THRESHOLD
    save_onnx_model(proto, out_file, external_data)
    return out_file


def save_onnx_model(proto, out_file: str, external_data: bool) -> None:
    """Write an ONNX ``ModelProto``; with ``external_data`` its weights go to ``<out_file>.data`` beside it.

    Raises:
        OSError: A file cannot be written (named in the message).
    """
    import onnx

    if not external_data:
        write_bytes(out_file, proto.SerializeToString())
        return
    try:
        os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
        onnx.save_model(proto, out_file, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=osp.basename(out_file) + '.data', size_threshold=1024)
    except OSError as error:
        raise OSError(f'export_onnx: cannot write {out_file}: {error.strerror or error}') from error
