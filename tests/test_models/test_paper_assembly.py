"""The paper's model as the config file assembles it: parameter counts of the real ``CRD``, not of loose parts.

Built from ``configs/crd/crd_mvtec3d_bagel.py`` on the meta device (no memory, no weights: the teacher's ImageNet
weights are switched off), inspected through the public API only (``model.branch_<m>``, ``parameters()``), so a
wiring change in ``CRD`` (an assist counted twice, a part missing, the wrong OCBE width) changes these numbers.
Counts of the authors' code: crd_method_notes.md ("Parameter count of one WRN50 student"). Checked: ``CRD`` building
its fuser with one input too many fails all three tests here while test_parameter_counts.py stays green.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmad.registry import MODELS

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'crd' / 'crd_mvtec3d_bagel.py'
BRANCH_PARAMETERS = 193_356_806
PART_PARAMETERS = dict(ocbe=90_738_688, bp=59_794_944, ibp=17_905_664, decoder=24_917_504, fuser=6)


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope='module')
def paper_model():
    cfg = Config.fromfile(CONFIG)
    teacher = cfg.model.teacher
    if 'pretrained' in teacher:
        teacher.pretrained = False
    teacher.pop('checkpoint', None)
    with DefaultScope.overwrite_default_scope('mmad'), torch.device('meta'):
        return MODELS.build(cfg.model)


def test_each_branch_has_the_papers_parameter_count(paper_model):
    assert paper_model.branch_names == ('rgb', 'depth')
    for name in paper_model.branch_names:
        branch = getattr(paper_model, f'branch_{name}')
        assert trainable(branch) == BRANCH_PARAMETERS, name
        assert {part: trainable(module) for part, module in branch.named_children()} == PART_PARAMETERS, name


def test_the_model_trains_two_branches_and_no_teacher(paper_model):
    assert trainable(paper_model.teacher) == 0
    assert trainable(paper_model) == 2 * BRANCH_PARAMETERS == 386_713_612
    branch_ids = [{id(p) for p in getattr(paper_model, f'branch_{name}').parameters()}
                  for name in paper_model.branch_names]
    assert not branch_ids[0] & branch_ids[1]


def test_paper_shapes_at_256(paper_model):
    inputs = {name: torch.empty(2, 3, 256, 256, device='meta') for name in paper_model.modalities}
    teacher_feats = paper_model.extract_teacher_feats(inputs)
    expected = [(2, 256, 64, 64), (2, 512, 32, 32), (2, 1024, 16, 16)]
    with torch.no_grad():
        outputs = paper_model.branch_rgb(teacher_feats['rgb'], {'depth': teacher_feats['depth']})
    for key in ('decoder_feats', 'output_feats'):
        assert [tuple(f.shape) for f in outputs[key]] == expected
    assert [tuple(f.shape) for f in outputs['filter_feats']['depth']] == expected
    assert [tuple(f.shape) for f in outputs['amplifier_feats']['depth']] == expected
