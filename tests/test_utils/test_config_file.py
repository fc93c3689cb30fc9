"""mmad.utils.read_config: configs loaded as by Config.fromfile, their text laid out once per content."""
import copy
from pathlib import Path

import mmengine.config.config as mmengine_config
import pytest
from mmengine.config import Config

from mmad.utils import read_config

REPO = Path(__file__).resolve().parents[2]
BAGEL = REPO / 'configs' / 'crd' / 'crd_mvtec3d_bagel.py'


@pytest.fixture
def yapf_calls(monkeypatch):
    calls = []
    format_code = mmengine_config.FormatCode

    def counted(*args, **kwargs):
        calls.append(args[0])
        return format_code(*args, **kwargs)
    monkeypatch.setattr(mmengine_config, 'FormatCode', counted)
    return calls


def test_values_and_text_are_those_of_config_fromfile():
    cfg, reference = read_config(BAGEL), Config.fromfile(BAGEL)
    assert cfg.filename == str(BAGEL) and cfg.text == reference.text
    assert cfg.to_dict() == reference.to_dict()
    assert cfg.pretty_text == reference.pretty_text


def test_the_layout_runs_once_for_any_number_of_uses_and_copies(yapf_calls, tmp_path):
    cfg = read_config(REPO / 'configs' / 'crd' / 'crd_demo_synthetic.py')
    cfg.work_dir = str(tmp_path)  # a value no earlier test laid out
    texts = [cfg.pretty_text, copy.deepcopy(cfg).pretty_text, cfg.copy().pretty_text]
    cfg.dump(tmp_path / 'dumped.py')
    assert len(yapf_calls) == 1 and len(set(texts)) == 1
    assert type(copy.deepcopy(cfg)) is type(cfg)
    assert Config.fromfile(tmp_path / 'dumped.py').to_dict() == cfg.to_dict()


def test_a_changed_value_is_laid_out_again(yapf_calls, tmp_path):
    cfg = read_config(BAGEL)
    cfg.work_dir = str(tmp_path / 'a')
    before = cfg.pretty_text
    cfg.train_cfg.max_epochs = 3
    after = cfg.pretty_text
    assert len(yapf_calls) == 2
    assert 'max_epochs=200' in before and 'max_epochs=3' in after
    assert after == Config(cfg.to_dict()).pretty_text
