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
    with pytest.raises(ValueError, match=r"modality 'rgb' has 2 channels; .* maps 1 \(repeated\) or 3 \(kept\)"):
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


def test_fixed_channel_maps_to_the_teachers_three_channels():
    """Any channel count with a fixed, non-learned map: repeat, identity, first3, mean or an explicit matrix."""
    unit = dict(mean=[0.0], std=[1.0])
    preprocessor = ADDataPreprocessor(modalities=dict(
        ir=dict(unit, channels=1), xyz=dict(unit, channel_map='identity'), rgba=dict(unit, channel_map='first3'),
        bands=dict(unit, channels=5, channel_map='mean'), pair=dict(unit, channel_map=[[1, 0], [0, 1], [0.5, 0.5]])))
    images = dict(ir=torch.full((2, 1, 2, 2), 0.3), xyz=torch.arange(3.0).view(1, 3, 1, 1).expand(2, 3, 2, 2),
                  rgba=torch.arange(4.0).view(1, 4, 1, 1).expand(2, 4, 2, 2),
                  bands=torch.arange(5.0).view(1, 5, 1, 1).expand(2, 5, 2, 2),
                  pair=torch.tensor([2.0, 4.0]).view(1, 2, 1, 1).expand(2, 2, 2, 2))
    out = preprocessor(dict(inputs=images))['inputs']
    assert all(batch.shape == (2, 3, 2, 2) for batch in out.values())
    channel_values = {name: out[name][0, :, 0, 0].tolist() for name in out}
    assert channel_values == dict(ir=pytest.approx([0.3] * 3), xyz=[0.0, 1.0, 2.0], rgba=[0.0, 1.0, 2.0],
                                  bands=[2.0, 2.0, 2.0], pair=[2.0, 4.0, 3.0])
    assert not list(preprocessor.parameters()), 'the channel maps must not be learned'


def test_channel_counts_the_preprocessor_was_not_told_are_one_line_errors():
    unit = dict(mean=[0.0], std=[1.0])
    preprocessor = ADDataPreprocessor(modalities=dict(ir=dict(unit, channels=1), ms=dict(unit)))
    with pytest.raises(ValueError, match=r"modality 'ir' has 3 channels but data_preprocessor.modalities\['ir'\] "
                                         r'declares channels=1\.'):
        preprocessor(dict(inputs=dict(ir=torch.zeros(1, 3, 2, 2))))
    with pytest.raises(ValueError, match=r"modality 'ms' has 4 channels; .* Set channels=4 and a channel_map"):
        preprocessor(dict(inputs=dict(ms=torch.zeros(1, 4, 2, 2))))
    with pytest.raises(ValueError, match=r"modality 'ms': 4 channels need a channel_map"):
        ADDataPreprocessor(modalities=dict(ms=dict(unit, channels=4)))
    with pytest.raises(ValueError, match=r"channel_map='repeat' takes 1 channel\(s\), but channels=3"):
        ADDataPreprocessor(modalities=dict(ms=dict(unit, channels=3, channel_map='repeat')))
    with pytest.raises(ValueError, match=r'matrix must be finite with 3 rows .* got shape \(2, 2\)'):
        ADDataPreprocessor(modalities=dict(ms=dict(unit, channel_map=[[1, 0], [0, 1]])))
    with pytest.raises(ValueError, match=r"channel_map must be one of .* got 'learned'"):
        ADDataPreprocessor(modalities=dict(ms=dict(unit, channel_map='learned')))
    with pytest.raises(ValueError, match=r"unknown settings \['chanels'\]"):
        ADDataPreprocessor(modalities=dict(ms=dict(unit, chanels=4)))
