import pytest
import torch
from mmengine.structures import BaseDataElement

from mmad.models.data_preprocessors import ADDataPreprocessor
from mmad.registry import MODELS

RGB = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
DEPTH = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def test_lists_are_stacked_expanded_and_normalised():
    preprocessor = MODELS.build(dict(type='ADDataPreprocessor', modalities=dict(rgb=RGB, depth=DEPTH)))
    rgb = [torch.full((3, 4, 5), 200.0), torch.zeros(3, 4, 5)]
    depth = [torch.full((1, 4, 5), 0.5), torch.linspace(0, 1, 20).view(1, 4, 5)]
    samples = [BaseDataElement(metainfo=dict(sample_idx=i)) for i in range(2)]
    out = preprocessor(dict(inputs=dict(rgb=rgb, depth=depth), data_samples=samples))
    assert set(out['inputs']) == {'rgb', 'depth'}
    assert out['inputs']['rgb'].shape == (2, 3, 4, 5) and out['inputs']['depth'].shape == (2, 3, 4, 5)
    assert out['inputs']['rgb'].dtype == torch.float32
    for channel in range(3):
        torch.testing.assert_close(out['inputs']['rgb'][0, channel],
                                   torch.full((4, 5), (200.0 - RGB['mean'][channel]) / RGB['std'][channel]))
        expected_depth = (torch.linspace(0, 1, 20).view(4, 5) - DEPTH['mean'][channel]) / DEPTH['std'][channel]
        torch.testing.assert_close(out['inputs']['depth'][1, channel], expected_depth)
    assert out['data_samples'] is not None and out['data_samples'][1].sample_idx == 1


def test_stacked_uint8_input_and_default_modalities():
    preprocessor = ADDataPreprocessor()
    assert preprocessor.modalities == ('rgb', 'depth')
    rgb = torch.full((2, 3, 2, 2), 255, dtype=torch.uint8)
    out = preprocessor(dict(inputs=dict(rgb=rgb)))
    torch.testing.assert_close(out['inputs']['rgb'][:, 2], torch.full((2, 2, 2), (255 - 103.53) / 57.375))
    assert out['data_samples'] is None


def test_one_value_statistics_apply_to_every_channel():
    preprocessor = ADDataPreprocessor(modalities=dict(normals=dict(mean=[0.5], std=[0.25])))
    out = preprocessor(dict(inputs=dict(normals=[torch.ones(3, 2, 2)])))
    torch.testing.assert_close(out['inputs']['normals'], torch.full((1, 3, 2, 2), 2.0))


def test_errors_are_clear():
    preprocessor = ADDataPreprocessor(modalities=dict(rgb=RGB))
    with pytest.raises(KeyError, match=r"\['depth'\] in the batch are not configured"):
        preprocessor(dict(inputs=dict(rgb=[torch.zeros(3, 2, 2)], depth=[torch.zeros(1, 2, 2)])))
    with pytest.raises(ValueError, match='different shapes'):
        preprocessor(dict(inputs=dict(rgb=[torch.zeros(3, 2, 2), torch.zeros(3, 4, 4)])))
    with pytest.raises(ValueError, match='1 or 3 channels, got 2'):
        preprocessor(dict(inputs=dict(rgb=[torch.zeros(2, 2, 2)])))
    with pytest.raises(TypeError, match='dict modality -> images'):
        preprocessor(dict(inputs=torch.zeros(1, 3, 2, 2)))
    with pytest.raises(ValueError, match='positive'):
        ADDataPreprocessor(modalities=dict(rgb=dict(mean=[0, 0, 0], std=[1, 0, 1])))
    with pytest.raises(ValueError, match='1 or 3 values'):
        ADDataPreprocessor(modalities=dict(rgb=dict(mean=[0, 0], std=[1, 1])))


def test_statistics_and_batches_follow_the_device_and_stay_out_of_the_state_dict():
    preprocessor = ADDataPreprocessor()
    assert preprocessor.state_dict() == {}
    assert preprocessor.device == torch.device('cpu')
    preprocessor.to('meta')  # a device other than the one the batch comes from
    assert preprocessor.device == torch.device('meta')
    assert preprocessor.rgb_mean.device == preprocessor.depth_std.device == torch.device('meta')
    out = preprocessor(dict(inputs=dict(rgb=[torch.zeros(3, 4, 5)], depth=[torch.zeros(1, 4, 5)])))
    for name in ('rgb', 'depth'):
        assert out['inputs'][name].device == torch.device('meta')
        assert out['inputs'][name].shape == (1, 3, 4, 5) and out['inputs'][name].dtype == torch.float32
    assert preprocessor.state_dict() == {}
