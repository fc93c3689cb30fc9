"""Optimiser wrapper for mixed-precision training on the device the parameters live on, CPU included."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmad.registry import OPTIM_WRAPPERS

DTYPES = dict(float16=torch.float16, bfloat16=torch.bfloat16)


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Run the forward of ``optim_context`` under ``torch.autocast`` on the parameters' device.

    mmengine's ``AmpOptimWrapper`` refuses to be built without an accelerator; this one also trains on CPU, which
    ``tools/train.py --amp`` selects everywhere:

    - CPU: bfloat16 autocast, no loss scaling (bfloat16 has float32's exponent range, so gradients do not
      underflow); ``dtype='float16'`` is refused.
    - CUDA (and other accelerators): float16 autocast with a dynamic ``torch.amp.GradScaler`` by default, as
      mmengine's wrapper; ``dtype='bfloat16'`` runs without a scaler.

    Parameters, gradients and optimiser state stay float32; only the autocast-eligible operations of the forward
    (convolutions, matrix products) run in the low precision.

    Args:
        dtype: ``'bfloat16'`` or ``'float16'``; None picks bfloat16 on CPU and float16 elsewhere.
        loss_scale: Initial scale of the GradScaler (float16 only): ``'dynamic'`` or a float, or a dict of
            ``GradScaler`` arguments.
        **kwargs: Arguments of ``OptimWrapper`` (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: str | None = None, loss_scale: str | float | dict = 'dynamic', **kwargs) -> None:
        super().__init__(**kwargs)
        params = [param for group in self.optimizer.param_groups for param in group['params']]
        self.device_type = params[0].device.type if params else 'cpu'
        if dtype is None:
            dtype = 'bfloat16' if self.device_type == 'cpu' else 'float16'
        if dtype not in DTYPES:
            raise ValueError(f'AutocastOptimWrapper: dtype must be one of {list(DTYPES)} or None, got {dtype!r}.')
        if self.device_type == 'cpu' and dtype != 'bfloat16':
            raise ValueError(f"AutocastOptimWrapper: CPU autocast trains in bfloat16 (no loss scaling), got "
                             f"dtype={dtype!r}; set optim_wrapper.dtype='bfloat16' or None.")
        self.cast_dtype = DTYPES[dtype]
        self.loss_scaler = self._build_loss_scaler(loss_scale) if self.cast_dtype == torch.float16 else None

    def _build_loss_scaler(self, loss_scale: str | float | dict) -> torch.amp.GradScaler:
        if loss_scale == 'dynamic':
            return torch.amp.GradScaler(self.device_type)
        if isinstance(loss_scale, (int, float)):
            return torch.amp.GradScaler(self.device_type, init_scale=float(loss_scale), growth_interval=2**31 - 1)
        if isinstance(loss_scale, dict):
            return torch.amp.GradScaler(self.device_type, **loss_scale)
        raise TypeError(f"AutocastOptimWrapper: loss_scale must be 'dynamic', a float or a dict, got {loss_scale!r}.")

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss``, scaled first when a GradScaler is used.

        Args:
            loss: The scalar loss.
            **kwargs: Arguments of ``Tensor.backward``.
        """
        if self.loss_scaler is None:
            super().backward(loss, **kwargs)
            return
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        """Update the parameters (through the GradScaler when one is used, unscaling before gradient clipping).

        Args:
            **kwargs: Arguments of ``Optimizer.step``.
        """
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()

    def state_dict(self) -> dict:
        """The optimiser's state dict, with the GradScaler's under ``loss_scaler`` when one is used."""
        state_dict = super().state_dict()
        if self.loss_scaler is not None:
            state_dict['loss_scaler'] = self.loss_scaler.state_dict()
        return state_dict

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the optimiser's state and, when both sides have one, the GradScaler's.

        Args:
            state_dict: From :meth:`state_dict` (or from a plain ``OptimWrapper``/``AmpOptimWrapper``).
        """
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """The parent's context (gradient accumulation) under ``torch.autocast`` of the parameters' device.

        Args:
            model: The model (or branch) being trained.
        """
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.cast_dtype):
            yield
