import hashlib
import socket
import time
import urllib.request

import huggingface_hub
import huggingface_hub.constants
import pytest
import timm
import torch
import torchvision
from mmengine.model import BaseModule
from safetensors.torch import save_file

from mmad.models.encoders import TeacherSpec, TimmEncoder, weight_sources
from mmad.registry import MODELS


@pytest.fixture(scope='module')
def resnet18_encoder():
    return TimmEncoder('resnet18')


def assert_weights_equal(encoder, state_dict):
    encoder_state = encoder.model.model.state_dict()
    assert encoder_state.keys() <= state_dict.keys()
    for key, value in encoder_state.items():
        assert torch.equal(value, state_dict[key]), key


def test_resnet18_spec_and_feature_shapes(resnet18_encoder):
    assert resnet18_encoder.spec == TeacherSpec(out_channels=(64, 128, 256), strides=(4, 8, 16), block_type='basic',
                                                decoder_blocks=(2, 2, 2), ocbe_blocks=2, width_factor=1.0)
    assert resnet18_encoder.identity == dict(model_name='resnet18', weights_sha256=None)
    feats = resnet18_encoder(torch.rand(2, 3, 64, 48))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 16, 12), (2, 128, 8, 6), (2, 256, 4, 3)]


def test_wide_resnet50_spec_without_weights():
    with torch.device('meta'):
        encoder = MODELS.build(dict(type='TimmEncoder', model_name='wide_resnet50_2.tv_in1k'))
    assert encoder.spec == TeacherSpec(out_channels=(256, 512, 1024), strides=(4, 8, 16), block_type='bottleneck',
                                       decoder_blocks=(3, 4, 6), ocbe_blocks=3, width_factor=2.0)
    feats = encoder(torch.empty(1, 3, 256, 256, device='meta'))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 64, 64), (1, 512, 32, 32), (1, 1024, 16, 16)]


def test_other_strides_of_resnets():
    with torch.device('meta'):
        resnet50 = TimmEncoder('resnet50', strides=(8, 16))
        resnet34 = TimmEncoder('resnet34', strides=(4, ))
        resnet18 = TimmEncoder('resnet18', strides=(4, 8, 16, 32))
    assert resnet50.spec == TeacherSpec((512, 1024), (8, 16), 'bottleneck', decoder_blocks=(4, 6), ocbe_blocks=3)
    assert (resnet34.spec.decoder_blocks, resnet34.spec.ocbe_blocks) == ((3, ), 4)
    # No stage after layer4: the OCBE gets the default 2 blocks.
    assert resnet18.spec == TeacherSpec((64, 128, 256, 512), (4, 8, 16, 32), 'basic', (2, 2, 2, 2), ocbe_blocks=2)


@pytest.mark.parametrize('model_name, out_channels', [
    ('tf_efficientnet_lite0', (24, 40, 112)),
    ('mobilenetv3_small_050', (8, 16, 24)),
    ('convnext_atto', (40, 80, 160)),  # feature levels at strides 4..32: other indices, same strides
    ('regnetx_002', (24, 56, 152)),
    ('resnext50_32x4d', (256, 512, 1024)),
])
def test_levels_chosen_by_stride_for_any_cnn(model_name, out_channels):
    with torch.device('meta'):
        encoder = TimmEncoder(model_name)
        feats = encoder(torch.empty(2, 3, 64, 64, device='meta'))
    assert encoder.spec.out_channels == out_channels
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // s, 64 // s) for c, s in zip(out_channels, (4, 8, 16))]
    if model_name != 'resnext50_32x4d':
        assert encoder.spec == TeacherSpec.default_student(out_channels, (4, 8, 16))


@pytest.mark.parametrize('model_name, deeper_modules', [
    ('resnet18', ('layer4', 'fc')),
    ('tf_efficientnet_lite0', ('blocks.5', 'blocks.6', 'conv_head', 'classifier')),
    ('convnext_atto', ('stages.3', 'head')),
])
def test_deeper_stages_are_not_built(model_name, deeper_modules):
    with torch.device('meta'):
        encoder = TimmEncoder(model_name)
    keys = encoder.model.model.state_dict()
    assert keys and not [key for key in keys if key.startswith(deeper_modules)]


def test_rejects_strides_the_network_lacks():
    with pytest.raises(ValueError, match=r"'convnext_atto': strides \(2, 4, 8\) ask for levels the network does not "
                                         r'have \(2,\); its feature levels have strides \(4, 8, 16, 32\)'):
        TimmEncoder('convnext_atto', strides=(2, 4, 8))
    with pytest.raises(ValueError, match=r'each stride must be twice the previous one, got \(4, 16\)'):
        TimmEncoder('resnet18', strides=(4, 16))


def test_frozen_and_always_eval(resnet18_encoder):
    assert not any(p.requires_grad for p in resnet18_encoder.parameters())
    resnet18_encoder.train()
    assert not any(m.training for m in resnet18_encoder.modules())
    parent = torch.nn.Sequential(resnet18_encoder)
    parent.train(True)
    assert not any(m.training for m in resnet18_encoder.modules())
    running_mean = resnet18_encoder.model.model.bn1.running_mean.clone()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    feats = resnet18_encoder(x)
    assert not any(f.requires_grad for f in feats)
    assert torch.equal(resnet18_encoder.model.model.bn1.running_mean, running_mean)


def test_rejects_bad_inputs(resnet18_encoder):
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\), got \(2, 1, 32, 32\)'):
        resnet18_encoder(torch.rand(2, 1, 32, 32))


def test_missing_checkpoint_file(tmp_path):
    path = tmp_path / 'missing.pth'
    with pytest.raises(FileNotFoundError, match=f'Teacher checkpoint {path} does not exist: expected a .pth'):
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
    with pytest.raises(RuntimeError, match=r'reshaped.pth does not fit timm .resnet18.: 1 weights of another shape '
                                           r'\(layer2.0.conv1.weight \(128, 64, 5, 5\) vs \(128, 64, 3, 3\)'):
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
    state_dict = timm.create_model('resnet18', features_only=True, out_indices=(1, 2, 3)).state_dict()
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


def test_identity_is_the_sha256_of_the_loaded_file(tmp_path):
    path = tmp_path / 'resnet18.pth'
    torch.save(timm.create_model('resnet18').state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    encoder = TimmEncoder('resnet18', checkpoint=str(path), checkpoint_sha256=digest.upper())
    assert encoder.identity == dict(model_name='resnet18', weights_sha256=digest)


def test_sha256_mismatch_refused_before_reading(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('not a checkpoint')  # unreadable: the hash is checked first
    found = hashlib.sha256(b'not a checkpoint').hexdigest()
    with pytest.raises(ValueError, match=f'notes.pth .*has SHA-256 {found}, expected {"0" * 64}: another or a '
                                         'corrupted file; refusing to load it'):
        TimmEncoder('resnet18', checkpoint=str(path), checkpoint_sha256='0' * 64)


def test_weight_options_need_a_weights_file():
    with pytest.raises(ValueError, match='checkpoint_sha256 and weight_converter apply to a weights file'):
        TimmEncoder('resnet18', checkpoint_sha256='0' * 64)


@pytest.fixture
def silent_server():
    """A local TCP port that accepts connections and never answers: a hub that hangs."""
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(8)
        yield f'http://127.0.0.1:{server.getsockname()[1]}'


def test_unreachable_hub_fails_at_once_and_once(tmp_path, monkeypatch, silent_server):
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, 'ENDPOINT', silent_server)
    monkeypatch.setattr(weight_sources, 'HUB_PROBE_TIMEOUT_S', 0.5)
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', lambda *args, **kwargs: pytest.fail('tried to download'))
    probes = []
    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, 'urlopen',
                        lambda *args, **kwargs: probes.append(args) or real_urlopen(*args, **kwargs))
    weight_sources.unreachable_reason.cache_clear()
    for _ in range(2):
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"'resnet18.tv_in1k' \({silent_server} unreachable \(probe of 0.5 s: "
                                               r'.*model.teacher.checkpoint=PATH'):
            TimmEncoder('resnet18.tv_in1k', pretrained=True)
        assert time.monotonic() - start < 5
    assert len(probes) == 1
    weight_sources.unreachable_reason.cache_clear()


def test_pretrained_weights_from_the_hub_cache_offline(tmp_path, monkeypatch):
    """A cached hub file loads without any network access, strictly, and is the teacher's identity."""
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path))
    monkeypatch.setattr(weight_sources, 'unreachable_reason', lambda *args: pytest.fail('probed the hub'))
    repo = tmp_path / 'models--timm--resnet18.a1_in1k'
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text('0123abcd')
    snapshot = repo / 'snapshots' / '0123abcd'
    snapshot.mkdir(parents=True)
    state_dict = {k: v.contiguous() for k, v in timm.create_model('resnet18').state_dict().items()}
    save_file(state_dict, str(snapshot / 'model.safetensors'))
    encoder = TimmEncoder('resnet18', pretrained=True)
    assert_weights_equal(encoder, state_dict)
    digest = hashlib.sha256((snapshot / 'model.safetensors').read_bytes()).hexdigest()
    assert encoder.identity == dict(model_name='resnet18', weights_sha256=digest)
