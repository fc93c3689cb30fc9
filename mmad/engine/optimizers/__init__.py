"""Optimiser-wrapper constructors."""
from .branch_optim_wrapper_constructor import BranchOptimWrapperConstructor

__all__ = ['BranchOptimWrapperConstructor']
