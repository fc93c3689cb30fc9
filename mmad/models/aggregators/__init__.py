"""Score aggregators (``mmad.registry.AGGREGATORS``): branch anomaly maps -> one fused map."""
from .branch_map_aggregators import BranchMapAggregator, NormalizedSum, Product, Sum

__all__ = ['BranchMapAggregator', 'NormalizedSum', 'Product', 'Sum']
