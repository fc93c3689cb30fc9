"""Optimiser wrappers and optimiser-wrapper constructors."""
from .autocast_optim_wrapper import AutocastOptimWrapper
from .branch_optim_wrapper_constructor import BranchOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'BranchOptimWrapperConstructor']
