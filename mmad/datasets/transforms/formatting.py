"""The last transform of a pipeline: pack the modalities into tensors and the labels into an ``ADDataSample``."""
from collections.abc import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS
from mmad.structures import ADDataSample


@TRANSFORMS.register_module()
class PackADInputs(BaseTransform):
    """Pack the modalities of a sample into ``inputs``, its ground truth and meta information into an ``ADDataSample``.

    (H, W) modalities (depth) become Tensor[1, H, W], (H, W, C) modalities (rgb, normals) Tensor[C, H, W],
    all float32 with their values unchanged (rgb stays 0-255; the data preprocessor normalises).

    Required Keys:
        - every key of ``modalities``
        - label (optional): 0 good / 1 anomalous -> ``gt_label``
        - gt_mask (optional): (H, W) in {0, 1} -> ``gt_mask`` (bool)
        - the ``meta_keys`` present in the results
        - every ``*_path`` key present (``rgb_path``, ``xyz_path``, ``gt_path``, ``ir_path``, ...)

    Added Keys:
        - inputs: dict modality -> Tensor[C, H, W] float32, finite.
        - data_samples: ``ADDataSample``; its meta information holds the ``meta_keys`` present and every
          ``*_path`` of the results (the files of the data info and of the packed modalities, whatever their
          names); when ``img_path`` is absent it is the rgb file, or else the file of the first packed modality
          that has one (the image the visualisation shows).

    Args:
        modalities: Result keys to pack, in order.
        meta_keys: Result keys other than the ``*_path`` ones copied into the meta information when present.
    """

    DEFAULT_META_KEYS = ('category', 'defect_type', 'sample_name', 'img_path', 'ori_shape', 'img_shape', 'sample_idx',
                         'mask_missing')

    def __init__(self, modalities: Sequence[str] = ('rgb', 'depth'), meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        if isinstance(modalities, str) or not modalities:
            raise ValueError(f'modalities must be a non-empty sequence of result keys, got {modalities!r}')
        self.modalities = tuple(modalities)
        self.meta_keys = tuple(meta_keys)

    def _pack_modality(self, results: dict, modality: str) -> torch.Tensor:
        """Convert ``results[modality]`` to a finite float32 Tensor[C, H, W]."""
        sample = results.get('sample_name') or next(
            (value for key, value in results.items() if key.endswith('_path') and value), 'the sample')
        if modality not in results:
            raise KeyError(f"PackADInputs: modality '{modality}' is missing for {sample}; add the transform that "
                           f'produces it to the pipeline (available keys: {sorted(results)})')
        array = np.asarray(results[modality], dtype=np.float32)
        if array.ndim == 2:
            array = array[None]
        elif array.ndim == 3:
            array = array.transpose(2, 0, 1)
        else:
            raise ValueError(f"PackADInputs: modality '{modality}' of {sample} must be (H, W) or (H, W, C), "
                             f'got shape {array.shape}')
        if not np.isfinite(array).all():
            raise ValueError(f"PackADInputs: modality '{modality}' of {sample} holds NaN or inf values")
        return torch.from_numpy(np.ascontiguousarray(array))

    def transform(self, results: dict) -> dict:
        """Return ``dict(inputs=..., data_samples=...)``."""
        inputs = {modality: self._pack_modality(results, modality) for modality in self.modalities}
        data_sample = ADDataSample()
        if 'label' in results:
            data_sample.set_gt_label(results['label'])
        if 'gt_mask' in results:
            data_sample.set_gt_mask(np.ascontiguousarray(results['gt_mask']))
        metainfo = {key: results[key] for key in self.meta_keys if key in results}
        metainfo.update((key, value) for key, value in results.items() if key.endswith('_path'))
        image_paths = [results[f'{key}_path'] for key in ('rgb', *self.modalities) if results.get(f'{key}_path')]
        if 'img_path' not in metainfo and image_paths:
            metainfo['img_path'] = image_paths[0]
        data_sample.set_metainfo(metainfo)
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(modalities={self.modalities}, meta_keys={self.meta_keys})'
