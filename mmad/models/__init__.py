"""Model parts of mmad; importing this registers every part in ``mmad.registry.MODELS``."""
from . import aggregators, bottlenecks, data_preprocessors, decoders, detectors, encoders, fusers, losses  # noqa: F401
