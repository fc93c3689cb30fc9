"""High-level APIs: score new samples with a trained model."""
from .inference import (
    InferenceInputError,
    InferencePipeline,
    InferenceResult,
    inference_model,
    init_model,
    predict_prepared,
)

__all__ = ['InferenceInputError', 'InferencePipeline', 'InferenceResult', 'inference_model', 'init_model',
           'predict_prepared']
