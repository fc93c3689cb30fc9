"""``--compile`` of tools/train.py and tools/test.py: the model's parts are compiled, a model without them refused."""
import logging
from types import SimpleNamespace

import pytest
from torch import nn

from mmad.utils.tool_args import compile_runner_model


class PartsModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.compiled = 0

    def compile_parts(self) -> None:
        self.compiled += 1


def test_compile_runner_model_compiles_the_parts_once_and_logs(caplog):
    model = PartsModel()
    runner = SimpleNamespace(model=model, logger=logging.getLogger('compile_test'))
    with caplog.at_level(logging.INFO, logger='compile_test'):
        compile_runner_model(runner, 'train.py', 'iterations')
    assert model.compiled == 1
    assert 'compiled with torch.compile; the first iterations are slow' in caplog.text


def test_compile_runner_model_refuses_a_model_without_parts():
    runner = SimpleNamespace(model=nn.Linear(2, 2), logger=logging.getLogger('compile_test'))
    with pytest.raises(SystemExit, match=r'^test.py: error: --compile needs a model with compile_parts\(\) '
                                         r'\(e.g. CRD\), got Linear.$'):
        compile_runner_model(runner, 'test.py', 'batches')
