"""The base of mmad's datasets: its pipeline is built with mmad's transform registry."""
from collections.abc import Callable, Sequence

from mmengine.dataset import BaseDataset

from mmad.registry import TRANSFORMS


def build_pipeline(pipeline: Sequence[dict | Callable]) -> list[Callable]:
    """Build the transform configs of a pipeline with mmad's ``TRANSFORMS``; callables pass as they are.

    mmad's registry finds its own transforms without a default scope (``locations`` imports them) and
    mmengine's through its parent, so a dataset built from Python without a Runner resolves
    ``dict(type='LoadRGBFromFile')``.

    Args:
        pipeline: Transform configs (dicts) or transforms (callables).

    Returns:
        The transforms, in order.
    """
    if isinstance(pipeline, (dict, str)) or not isinstance(pipeline, Sequence):
        raise TypeError(f'pipeline must be a list of transform configs or callables, got {type(pipeline).__name__}')
    transforms = []
    for transform in pipeline:
        if isinstance(transform, dict):
            transform = TRANSFORMS.build(transform)
        if not callable(transform):
            raise TypeError(f'pipeline entry {transform!r} is neither a transform config (dict) nor callable')
        transforms.append(transform)
    return transforms


class BaseADDataset(BaseDataset):
    """``mmengine.dataset.BaseDataset`` whose pipeline is built with mmad's ``TRANSFORMS`` (see :func:`build_pipeline`).

    A pipeline step with a ``check_outside(data_root)`` method (``CachedTransforms``) is handed the dataset's
    ``data_root`` when the dataset is built, so that a cache folder inside the dataset tree is refused at once.

    The data list is not serialised by default (mmengine's default is to): serialising packs the list into one
    buffer, so that data-loader workers do not copy the pages of many small Python objects, and then runs a full
    ``gc.collect()``, which takes about 0.2 s in a process that has imported torch and timm (measured on a 2-core
    CPU), at every dataset build (the pre-flight check and the runner build each dataset of a run). An anomaly
    detection data list holds a few paths and labels per sample, some hundreds to thousands of samples, so a worker
    copies little without it. ``serialize_data=True`` in a dataset config brings mmengine's behaviour back.

    Args:
        pipeline: Transform configs or callables, applied in order to each data info.
        serialize_data: Whether to serialise the data list (see above).
        **kwargs: Other ``BaseDataset`` arguments.
    """

    def __init__(self, pipeline: Sequence[dict | Callable] = (), serialize_data: bool = False, **kwargs):
        super().__init__(pipeline=build_pipeline(pipeline), serialize_data=serialize_data, **kwargs)
        for transform in self.pipeline.transforms:
            if hasattr(transform, 'check_outside'):
                transform.check_outside(self.data_root)
