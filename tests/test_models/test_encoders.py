import huggingface_hub.constants
import pytest
import timm
import torch
import torchvision
from mmengine.model import BaseModule
from safetensors.torch import save_file

from mmad.models.encoders import TimmEncoder
from mmad.registry import MODELS


@pytest.fixture(scope='module')
def resnet18_encoder():
    return TimmEncoder('resnet18')


def assert_weights_equal(encoder, state_dict):
    encoder_state = encoder.model.state_dict()
    assert encoder_state.keys() <= state_dict.keys()
    for key, value in encoder_state.items():
        assert torch.equal(value, state_dict[key]), key


def test_resnet18_attributes_and_feature_shapes(resnet18_encoder):
    assert resnet18_encoder.out_channels == (64, 128, 256)
    assert resnet18_encoder.strides == (4, 8, 16)
    assert resnet18_encoder.block_type == 'basic'
    assert resnet18_encoder.stage_blocks == (2, 2, 2)
    assert resnet18_encoder.next_stage_blocks == 2
    assert resnet18_encoder.width_factor == 1.0
    feats = resnet18_encoder(torch.rand(2, 3, 64, 48))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 16, 12), (2, 128, 8, 6), (2, 256, 4, 3)]


def test_wide_resnet50_attributes_without_weights():
    with torch.device('meta'):
        encoder = MODELS.build(dict(type='TimmEncoder', model_name='wide_resnet50_2.tv_in1k'))
    assert encoder.out_channels == (256, 512, 1024)
    assert encoder.strides == (4, 8, 16)
    assert encoder.block_type == 'bottleneck'
    assert encoder.stage_blocks == (3, 4, 6)
    assert encoder.next_stage_blocks == 3
    assert encoder.width_factor == 2.0
    feats = encoder(torch.empty(1, 3, 256, 256, device='meta'))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 64, 64), (1, 512, 32, 32), (1, 1024, 16, 16)]


def test_other_out_indices_and_architectures():
    with torch.device('meta'):
        encoder = TimmEncoder('resnet50', out_indices=(2, 3))
        resnet34 = TimmEncoder('resnet34', out_indices=(1,))
    assert encoder.out_channels == (512, 1024)
    assert encoder.strides == (8, 16)
    assert encoder.stage_blocks == (4, 6)
    assert encoder.width_factor == 1.0
    assert resnet34.stage_blocks == (3,)
    assert resnet34.next_stage_blocks == 4


def test_frozen_and_always_eval(resnet18_encoder):
    assert not any(p.requires_grad for p in resnet18_encoder.parameters())
    resnet18_encoder.train()
    assert not any(m.training for m in resnet18_encoder.modules())
    parent = torch.nn.Sequential(resnet18_encoder)
    parent.train(True)
    assert not any(m.training for m in resnet18_encoder.modules())
    running_mean = resnet18_encoder.model.bn1.running_mean.clone()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    feats = resnet18_encoder(x)
    assert not any(f.requires_grad for f in feats)
    assert torch.equal(resnet18_encoder.model.bn1.running_mean, running_mean)


def test_rejects_bad_inputs(resnet18_encoder):
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\), got \(2, 1, 32, 32\)'):
        resnet18_encoder(torch.rand(2, 1, 32, 32))


@pytest.mark.parametrize('name', ['vit_base_patch16_224', 'resnext50_32x4d', 'resnet50d'])
def test_unsupported_family_lists_supported(name):
    with pytest.raises(ValueError, match='ResNet family only: resnet18, .*wide_resnet50_2') as info:
        TimmEncoder(name)
    assert name in str(info.value)


@pytest.mark.parametrize('out_indices', [(0, 1, 2), (1, 3), (2, 3, 4), ()])
def test_rejects_out_indices(out_indices):
    with pytest.raises(ValueError, match='out_indices must be consecutive residual stages'):
        TimmEncoder('resnet18', out_indices=out_indices)


def test_missing_checkpoint_file(tmp_path):
    path = tmp_path / 'missing.pth'
    with pytest.raises(FileNotFoundError, match=f'{path} does not exist.*resnet18'):
        TimmEncoder('resnet18', checkpoint=str(path))


def test_timm_checkpoint_survives_init_weights(tmp_path):
    network = timm.create_model('resnet18').eval()
    state_dict = network.state_dict()
    path = tmp_path / 'resnet18.pth'
    torch.save(state_dict, path)
    encoder = TimmEncoder('resnet18', checkpoint=str(path))
    assert_weights_equal(encoder, state_dict)
    encoder.init_weights()
    assert_weights_equal(encoder, state_dict)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        layer1 = network.layer1(network.maxpool(network.act1(network.bn1(network.conv1(x)))))
        expected = [layer1, network.layer2(layer1), network.layer3(network.layer2(layer1))]
    for feature, reference in zip(encoder(x), expected):
        torch.testing.assert_close(feature, reference)

    class Student(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=dict(type='Constant', layer='Conv2d', val=3.0))
            self.conv = torch.nn.Conv2d(1, 1, 1)

    class Detector(BaseModule):
        def __init__(self):
            super().__init__()
            self.teacher = TimmEncoder('resnet18', checkpoint=str(path))
            self.student = Student()

    detector = Detector()
    detector.init_weights()
    assert torch.all(detector.student.conv.weight == 3.0)
    assert_weights_equal(detector.teacher, state_dict)


def test_safetensors_and_torchvision_checkpoints(tmp_path):
    timm_state = {k: v.contiguous() for k, v in timm.create_model('resnet18').state_dict().items()}
    safetensors_path = tmp_path / 'resnet18.safetensors'
    save_file(timm_state, str(safetensors_path))
    assert_weights_equal(TimmEncoder('resnet18.a1_in1k', checkpoint=str(safetensors_path)), timm_state)

    torchvision_state = torchvision.models.resnet18(weights=None).state_dict()
    torchvision_path = tmp_path / 'torchvision_resnet18.pth'
    torch.save(torchvision_state, torchvision_path)
    assert_weights_equal(TimmEncoder('resnet18', checkpoint=str(torchvision_path)), torchvision_state)


def test_checkpoint_of_another_architecture(tmp_path):
    deeper = tmp_path / 'resnet34.pth'
    torch.save(timm.create_model('resnet34').state_dict(), deeper)
    with pytest.raises(RuntimeError, match=r'resnet34.pth does not fit timm .resnet18.: \d+ weights of another '
                                           r'network \(layer1.2.conv1.weight'):
        TimmEncoder('resnet18', checkpoint=str(deeper))
    reshaped = timm.create_model('resnet18').state_dict()
    reshaped['layer2.0.conv1.weight'] = torch.zeros(128, 64, 5, 5)
    path = tmp_path / 'reshaped.pth'
    torch.save(reshaped, path)
    with pytest.raises(RuntimeError, match=r'(?s)reshaped.pth does not fit timm .resnet18.: expected .*'
                                           r'size mismatch for layer2.0.conv1'):
        TimmEncoder('resnet18', checkpoint=str(path))


def test_checkpoint_missing_weights(tmp_path):
    state_dict = timm.create_model('resnet18').state_dict()
    del state_dict['layer3.1.conv2.weight']
    path = tmp_path / 'partial.pth'
    torch.save(dict(state_dict=state_dict), path)
    with pytest.raises(RuntimeError, match=r'partial.pth does not fit .* 1 weights missing \(layer3.1.conv2.weight'):
        TimmEncoder('resnet18', checkpoint=str(path))


def test_unreadable_checkpoint(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('not a checkpoint')
    with pytest.raises(RuntimeError, match='Cannot read teacher checkpoint .*notes.pth'):
        TimmEncoder('resnet18', checkpoint=str(path))


def test_features_only_state_dict_wrapped_in_dict(tmp_path):
    source = TimmEncoder('resnet18')
    state_dict = source.model.state_dict()
    path = tmp_path / 'features.pth'
    torch.save(dict(state_dict=state_dict), path)
    assert_weights_equal(TimmEncoder('resnet18', checkpoint=str(path)), state_dict)


def test_offline_pretrained_explains_local_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path))
    with pytest.raises(RuntimeError, match='model.teacher.checkpoint=PATH') as info:
        TimmEncoder('resnet18.tv_in1k', pretrained=True)
    assert "'resnet18.tv_in1k'" in str(info.value)
