"""Data preprocessors: collated multimodal batches -> normalised model inputs."""
from .ad_data_preprocessor import ADDataPreprocessor

__all__ = ['ADDataPreprocessor']
