"""Data structures shared by datasets, models and metrics."""
from .ad_data_sample import ADDataSample

__all__ = ['ADDataSample']
