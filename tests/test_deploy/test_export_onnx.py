"""ONNX export of a three-modality CRD: onnxruntime equals PyTorch, metadata, external data, refusals."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from mmad.deploy import CRDInferenceGraph, ExportError, export_onnx, save_onnx_model
from mmad.registry import MODELS
from mmad.utils import register_all_modules

onnx = pytest.importorskip('onnx', reason='the deploy extra (onnx, onnxscript, onnxruntime) is not installed')
ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

MODALITIES = ('rgb', 'depth', 'normals')
CHANNELS = dict(rgb=3, depth=1, normals=3)
SIZE = 32
THRESHOLD = 1.25
NORMALISATION = dict(rgb=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
                     depth=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
                     normals=dict(mean=[0.5], std=[0.25]))


def make_images(batch: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scale = dict(rgb=255.0, depth=1.0, normals=1.0)
    return {name: torch.rand(batch, CHANNELS[name], SIZE, SIZE, generator=generator) * scale[name]
            for name in MODALITIES}


def build_model():
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(dict(type='CRD', modalities=MODALITIES,
                             teacher=dict(type='TimmEncoder', model_name='resnet18', strides=(4, 8)),
                             data_preprocessor=dict(type='ADDataPreprocessor', modalities=NORMALISATION))).eval()


def fit_statistics(model) -> None:
    """Fit the aggregator on raw maps of a few random 'validation' batches, through its public API."""
    model.aggregator.reset()
    for seed in (1, 2):
        data = model.data_preprocessor(dict(inputs=make_images(2, seed)))
        model.aggregator.update(model.raw_branch_maps(data['inputs']))
    model.aggregator.finalize()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    model = build_model()
    fit_statistics(model)
    out_file = str(tmp_path_factory.mktemp('onnx') / 'crd3.onnx')
    export_onnx(model, out_file, (SIZE, SIZE), dict(depth=1), threshold=THRESHOLD, metadata=dict(note='test'))
    return model, out_file


def torch_outputs(model, images):
    """Fused map, score and branch maps of ``model.predict`` on the preprocessed images (the reference path)."""
    data = model.data_preprocessor(dict(inputs=images))
    samples = model.predict(data['inputs'])
    outputs = [torch.stack([s.anomaly_map for s in samples]), torch.stack([s.pred_score for s in samples])]
    outputs += [torch.stack([s.branch_maps[name] for s in samples]) for name in model.branch_names]
    return [output.numpy() for output in outputs]


def run_onnx(path, images):
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session, session.run(None, {name: image.numpy() for name, image in images.items()})


@pytest.mark.slow
@pytest.mark.parametrize('batch', [1, 3])
def test_onnxruntime_equals_pytorch_predict(exported, batch):
    model, path = exported
    images = make_images(batch, seed=10 + batch)
    session, outputs = run_onnx(path, images)
    assert [i.name for i in session.get_inputs()] == list(MODALITIES)
    assert [i.shape[1:] for i in session.get_inputs()] == [[3, SIZE, SIZE], [1, SIZE, SIZE], [3, SIZE, SIZE]]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # dynamic batch
    assert [o.name for o in session.get_outputs()] == ['anomaly_map', 'pred_score', 'map_rgb', 'map_depth',
                                                       'map_normals']
    expected = torch_outputs(model, images)
    assert [o.shape for o in outputs] == [(batch, SIZE, SIZE), (batch,)] + [(batch, SIZE, SIZE)] * 3
    for name, got, want in zip(['anomaly_map', 'pred_score', 'rgb', 'depth', 'normals'], outputs, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    # the fused map is the normalised sum of the exported branch maps, with the fitted statistics
    fused = sum((branch - model.aggregator.mean(name).item()) / model.aggregator.std(name).item()
                for name, branch in zip(MODALITIES, outputs[2:]))
    np.testing.assert_allclose(outputs[0], fused, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs[1], outputs[0].reshape(batch, -1).max(axis=1), rtol=0, atol=0)


@pytest.mark.slow
def test_metadata_holds_threshold_and_inputs(exported):
    _, path = exported
    metadata = {prop.key: prop.value for prop in onnx.load(path).metadata_props}
    assert float(metadata['decision_threshold']) == THRESHOLD
    assert json.loads(metadata['modalities']) == list(MODALITIES)
    assert json.loads(metadata['input_channels']) == CHANNELS
    assert json.loads(metadata['image_size']) == [SIZE, SIZE]
    assert metadata['note'] == 'test'
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    assert session.get_modelmeta().custom_metadata_map['decision_threshold'] == metadata['decision_threshold']


@pytest.mark.slow
def test_external_data_gives_the_same_outputs(exported, tmp_path):
    _, path = exported
    external = str(tmp_path / 'external.onnx')
    save_onnx_model(onnx.load(path), external, external_data=True)
    assert osp.getsize(external + '.data') > 0.9 * osp.getsize(path)
    assert osp.getsize(external) < 0.1 * osp.getsize(path)
    images = make_images(2, seed=5)
    for got, want in zip(run_onnx(external, images)[1], run_onnx(path, images)[1]):
        np.testing.assert_array_equal(got, want)


def test_refuses_a_model_without_statistics(tmp_path):
    model = build_model()
    with pytest.raises(ExportError, match=r'NormalizedSum holds no validation statistics .*ValidationStatisticsHook'):
        export_onnx(model, str(tmp_path / 'x.onnx'), (SIZE, SIZE))
    assert not (tmp_path / 'x.onnx').exists()


def test_refuses_bad_input_channels():
    model = build_model()
    model.aggregator.set_statistics({name: 0.0 for name in MODALITIES}, {name: 1.0 for name in MODALITIES})
    with pytest.raises(ExportError, match=r"input channels must be 1 or 3, got \{'depth': 2\}"):
        CRDInferenceGraph(model, dict(depth=2))
    with pytest.raises(ExportError, match=r"\['xyz'\], which are not modalities"):
        CRDInferenceGraph(model, dict(xyz=1))
