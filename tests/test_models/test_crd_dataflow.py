"""CRD's data flow by value: which tensors meet in every map, loss term and fusion.

A small deterministic model (resnet18 teacher with random weights, fixed seed, 32x32 inputs, eval mode, distinct
fusion logits per level) is run through the public API (``CRD.raw_branch_maps``, ``CRD.loss``, ``branch_<m>``) and
compared with an independent re-computation (``crd_oracles``: the branch re-wired from its parts, the loss and the
map written out with ``torch.nn.functional``), for 2 and 3 modalities.

Mutations these tests were checked to catch (each applied to the source, the tests run, the source restored):

- ``CRD.raw_branch_maps`` building the map from ``decoder_feats`` instead of ``output_feats`` (the amplifier dropped
  from every anomaly map): ``test_raw_map_is_the_output_distance_to_the_own_teacher``.
- ``loss_filter`` compared with the assists' teacher features (each assist's own, or the first assist's) instead of
  the branch's own: ``test_each_loss_term_pairs_the_intended_features``.
- Own and assist features swapped on the way into a branch (``CRD._run_branch``): ``test_raw_map_is_the_output_
  distance_to_the_own_teacher``, ``test_each_loss_term_pairs_the_intended_features``,
  ``test_without_amplifier_the_output_is_the_decoder``.
- Own and BP features swapped in the OCBE input, or the IBP applied to the own features instead of the assist's
  (``CRDBranch.forward``): ``test_branch_outputs_equal_the_rewired_parts`` and the two tests above.
- The output of a level fused with another level's weights: ``test_fusion_uses_the_weights_of_its_level_and_feeds_
  the_next_stage``, ``test_branch_outputs_equal_the_rewired_parts``, ``test_stop_gradients_change_no_value``.
- The next decoder stage fed with the decoder feature instead of the fused one: the same three tests.
- With the amplifier off, an output other than the decoder's: ``test_without_amplifier_the_output_is_the_decoder``.

The stop-gradient mutations (a detach dropped) are caught in ``test_crd_gradients.py``.
"""
import pytest
import torch
from crd_oracles import SIZE, build_small_crd, distance_map, make_inputs, rd_loss, reference_branch, teacher_feats

MODALITY_SETS = [('rgb', 'depth'), ('rgb', 'depth', 'normals')]
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope='module', params=MODALITY_SETS, ids=['2-modalities', '3-modalities'])
def run(request):
    """The model, its inputs, the teacher features (one forward per modality) and the re-wired branch outputs."""
    model = build_small_crd(request.param)
    inputs = make_inputs(model.modalities)
    teacher = teacher_feats(model, inputs)
    with torch.no_grad():
        expected = {name: reference_branch(getattr(model, f'branch_{name}'), teacher[name],
                                           {assist: teacher[assist] for assist in model.assists_of(name)})
                    for name in model.branch_names}
    return model, inputs, teacher, expected


def assert_feats_close(got, expected):
    assert len(got) == len(expected)
    for level, (g, e) in enumerate(zip(got, expected)):
        torch.testing.assert_close(g, e, **TOLERANCE, msg=lambda text, level=level: f'level {level}: {text}')


def test_branch_outputs_equal_the_rewired_parts(run):
    model, inputs, teacher, expected = run
    for name in model.branch_names:
        assists = model.assists_of(name)
        with torch.no_grad():
            got = getattr(model, f'branch_{name}')(teacher[name], {assist: teacher[assist] for assist in assists})
        assert list(got['filter_feats']) == list(assists) and list(got['amplifier_feats']) == list(assists)
        for key in ('decoder_feats', 'output_feats'):
            assert_feats_close(got[key], expected[name][key])
        for key in ('filter_feats', 'amplifier_feats'):
            for assist in assists:
                assert_feats_close(got[key][assist], expected[name][key][assist])


def test_raw_map_is_the_output_distance_to_the_own_teacher(run):
    model, inputs, teacher, expected = run
    raw = model.raw_branch_maps(inputs)
    assert list(raw) == list(model.branch_names)
    for name in model.branch_names:
        own_map = distance_map(expected[name]['output_feats'], teacher[name], (SIZE, SIZE))
        torch.testing.assert_close(raw[name], own_map, **TOLERANCE)
        # The oracle discriminates: the decoder's map and a map against an assist's teacher differ clearly.
        decoder_map = distance_map(expected[name]['decoder_feats'], teacher[name], (SIZE, SIZE))
        assert (raw[name] - decoder_map).abs().max() > 1e-2
        for assist in model.assists_of(name):
            assist_map = distance_map(expected[name]['output_feats'], teacher[assist], (SIZE, SIZE))
            assert (raw[name] - assist_map).abs().max() > 1e-2


def test_each_loss_term_pairs_the_intended_features(run):
    model, inputs, teacher, expected = run
    with torch.no_grad():
        losses = model.loss(inputs)
    assert sorted(losses) == sorted(f'{name}.{term}' for name in model.branch_names
                                    for term in ('loss_decoder', 'loss_filter', 'loss_amplifier', 'loss_output'))
    for name in model.branch_names:
        own, out, assists = teacher[name], expected[name], model.assists_of(name)
        intended = {
            'loss_decoder': rd_loss(out['decoder_feats'], own),
            'loss_filter': sum(rd_loss(out['filter_feats'][assist], own) for assist in assists),
            'loss_amplifier': sum(rd_loss(out['amplifier_feats'][assist], own) for assist in assists),
            'loss_output': rd_loss(out['output_feats'], own),
        }
        # The wrong pairs the test must tell apart: the assists' teacher features, the decoder for the output.
        wrong = {
            'loss_decoder': [rd_loss(out['decoder_feats'], teacher[a]) for a in assists],
            'loss_filter': [sum(rd_loss(out['filter_feats'][a], teacher[a]) for a in assists)]
            + [sum(rd_loss(out['filter_feats'][a], teacher[other]) for a in assists) for other in assists],
            'loss_amplifier': [sum(rd_loss(out['amplifier_feats'][a], teacher[a]) for a in assists)]
            + [sum(rd_loss(out['amplifier_feats'][a], teacher[other]) for a in assists) for other in assists],
            'loss_output': [rd_loss(out['output_feats'], teacher[a]) for a in assists] + [intended['loss_decoder']],
        }
        for term, value in intended.items():
            torch.testing.assert_close(losses[f'{name}.{term}'], value, **TOLERANCE)
            assert all(abs(float(value) - float(other)) > 2e-3 for other in wrong[term]), (name, term)


def test_fusion_uses_the_weights_of_its_level_and_feeds_the_next_stage(run):
    model, inputs, teacher, expected = run
    name = model.branch_names[0]
    branch = getattr(model, f'branch_{name}')
    assists = model.assists_of(name)
    with torch.no_grad():
        got = branch(teacher[name], {assist: teacher[assist] for assist in assists})
        num_levels = len(teacher[name])
        for level in range(num_levels):
            feats = [got['decoder_feats'][level], *(got['amplifier_feats'][a][level] for a in assists)]
            weights = branch.fuser.level_weights[level].softmax(dim=0)
            fused = sum(w * f for w, f in zip(weights, feats))
            torch.testing.assert_close(got['output_feats'][level], fused, **TOLERANCE)
            for other in set(range(num_levels)) - {level}:  # another level's weights give another feature
                other_weights = branch.fuser.level_weights[other].softmax(dim=0)
                assert (sum(w * f for w, f in zip(other_weights, feats)) - fused).abs().max() > 1e-3
            if level > 0:  # the fused feature of a level is the input of the next (shallower) stage
                stage = branch.decoder.stages[num_levels - level]
                torch.testing.assert_close(got['decoder_feats'][level - 1], stage(fused), **TOLERANCE)
                assert (stage(got['decoder_feats'][level]) - got['decoder_feats'][level - 1]).abs().max() > 1e-3


@pytest.mark.parametrize('stop_gradients', [True, False])
def test_without_amplifier_the_output_is_the_decoder(stop_gradients):
    model = build_small_crd(('rgb', 'depth'), crossmodal_amplifier=False, stop_gradients=stop_gradients)
    inputs = make_inputs(model.modalities, seed=1)
    teacher = teacher_feats(model, inputs)
    raw = model.raw_branch_maps(inputs)
    with torch.no_grad():
        losses = model.loss(inputs)
    for name in model.branch_names:
        assist = model.assists_of(name)[0]
        with torch.no_grad():
            got = getattr(model, f'branch_{name}')(teacher[name], {assist: teacher[assist]})
            expected = reference_branch(getattr(model, f'branch_{name}'), teacher[name], {assist: teacher[assist]})
        assert got['amplifier_feats'] == {}
        assert all(o is d for o, d in zip(got['output_feats'], got['decoder_feats']))
        assert_feats_close(got['decoder_feats'], expected['decoder_feats'])
        torch.testing.assert_close(raw[name], distance_map(expected['decoder_feats'], teacher[name], (SIZE, SIZE)),
                                   **TOLERANCE)
        assert sorted(key for key in losses if key.startswith(f'{name}.')) == [
            f'{name}.loss_decoder', f'{name}.loss_filter']
        torch.testing.assert_close(losses[f'{name}.loss_decoder'], rd_loss(expected['decoder_feats'], teacher[name]),
                                   **TOLERANCE)


def test_stop_gradients_change_no_value():
    inputs = make_inputs(('rgb', 'depth'), seed=2)
    with_stop = build_small_crd(('rgb', 'depth'), stop_gradients=True)
    without_stop = build_small_crd(('rgb', 'depth'), stop_gradients=False)
    for name, got in with_stop.raw_branch_maps(inputs).items():
        torch.testing.assert_close(got, without_stop.raw_branch_maps(inputs)[name])
