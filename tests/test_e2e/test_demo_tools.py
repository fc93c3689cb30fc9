"""The demo's helpers: the claims of tools/misc/calibrate_demo.py and the overview picture of tools/run_demo.py."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]


def load_tool(path):
    spec = importlib.util.spec_from_file_location(Path(path).stem, REPO / path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def metrics_of(auroc):
    """metrics.json layout from output -> defect -> I-AUROC."""
    return {output: {defect: {'I-AUROC': value, 'I-AP': 0.5} for defect, value in per_defect.items()}
            for output, per_defect in auroc.items()}


GOOD_RUN = dict(fused=dict(all=0.97, color=1.0, dent=0.92, crack=0.99),
                rgb=dict(all=0.80, color=1.0, dent=0.40, crack=0.99),
                depth=dict(all=0.85, color=0.55, dent=0.95, crack=0.97))


def test_demo_claims():
    tool = load_tool('tools/misc/calibrate_demo.py')
    assert tool.GEOMETRY_ONLY == ['dent'] and tool.COLOUR_ONLY == ['color']
    claims = tool.demo_claims(metrics_of(GOOD_RUN))
    assert claims == {'depth dent >= 0.80': True, 'depth dent > rgb dent': True, 'rgb color >= 0.95': True,
                      'rgb color > depth color': True, 'fused all >= best branch all - 0.01': True}
    weak = {**GOOD_RUN, 'fused': dict(GOOD_RUN['fused'], all=0.83), 'depth': dict(GOOD_RUN['depth'], dent=0.79)}
    failed = {claim for claim, holds in tool.demo_claims(metrics_of(weak)).items() if not holds}
    assert failed == {'depth dent >= 0.80', 'fused all >= best branch all - 0.01'}
    console = Console(record=True, width=100)
    tool.print_runs([dict(seed=3, metrics=metrics_of(weak), cpu_s=12.0, wall_s=30.0)], console)
    text = console.export_text()
    assert '│          3 │ depth  │ 85.0 │  55.0 │ 79.0 │  97.0 │' in text
    assert 'model seed 3: claims FAILED: depth dent >= 0.80; fused all >= best branch all - 0.01; 12 CPU s' in text


def test_config_without_demo_data_is_refused(tmp_path):
    tool = load_tool('tools/misc/calibrate_demo.py')
    config = tmp_path / 'plain.py'
    config.write_text('train_cfg = dict(max_epochs=1)\n')
    with pytest.raises(KeyError, match=r'plain\.py: no demo_data dict'):
        tool.load_config(str(config), {})
    assert tool.load_config(str(REPO / 'configs/crd/crd_demo_synthetic.py'),
                            {'demo_data.num_train': 7}).demo_data.num_train == 7


def test_overview_stacks_one_panel_per_defect_type_good_first(tmp_path):
    tool = load_tool('tools/run_demo.py')
    for index, folder in enumerate(('dent', 'good', 'color')):
        (tmp_path / 'heatmaps' / folder).mkdir(parents=True)
        for name in ('001', '000'):
            value = 50 * index + (0 if name == '000' else 7)
            cv2.imwrite(str(tmp_path / 'heatmaps' / folder / f'{name}.png'), np.full((20, 40 + index, 3), value,
                                                                                     np.uint8))
    out = tool.write_overview(str(tmp_path / 'heatmaps'), str(tmp_path / 'overview.png'), 'CRD demo, teacher x')
    picture = cv2.imread(out)
    assert picture.shape == (30 + 3 * 20, 42, 3)
    assert (picture[:30] < 255).any()  # the title
    rows = [picture[30 + 20 * row:50 + 20 * row, :40, 0] for row in range(3)]
    assert [int(np.median(row)) for row in rows] == [50, 100, 0]  # good, color, dent; sample 000 of each
    assert (picture[30:50, 41] == 255).all()  # a narrower panel is padded white
    assert tool.teacher_label(dict(model_name='resnet18', pretrained=False)) == 'resnet18, random init'
    assert tool.teacher_label(dict(model_name='m', checkpoint='package://p/models/w.pth')) == 'm, weights w.pth'
