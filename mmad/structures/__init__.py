"""Data structures shared by datasets, models and metrics."""
from .ad_data_sample import ADDataSample
from .mask import binarise_mask

__all__ = ['ADDataSample', 'binarise_mask']
