"""Which parts of a CRD branch each loss term trains, with and without the paper-era stop-gradients, by value.

Semantics (``CRDBranch`` docstring, crd_method_notes.md "Stop-gradients"): with ``stop_gradients=True`` the next
decoder stage takes the fused feature with detached fusion weights (the gradient reaches ``F_D`` and ``F_IBP``) and
the output ``F_CA`` uses detached ``F_D`` and ``F_IBP`` (the output loss trains the fusion logits only); with
``stop_gradients=False`` one fused tensor serves both. ``EXPECTED`` spells this out per term and part; the gradients
themselves are compared with those of the re-wired oracle (``crd_oracles.reference_branch``).

Mutations these tests were checked to catch: the output fused without detaching ``F_D`` and ``F_IBP``
(``test_parts_trained_by_each_term[...stop1-loss_output]`` and the oracle test), the next stage fed with the decoder
feature instead of the fused one (both tests, ``loss_decoder`` and ``loss_output`` rows), ``loss_filter`` against an
assist's teacher features, own/assist or own/BP swaps (``test_gradients_equal_the_rewired_oracle``). Gradients
leaking into the other branch or the teacher fail ``test_parts_trained_by_each_term``.
"""
import pytest
import torch
from crd_oracles import build_small_crd, make_inputs, rd_loss, reference_branch, teacher_feats

PARTS = ('bp', 'ocbe', 'decoder', 'ibp', 'fuser')
DECODER_PATH = {'bp', 'ocbe', 'decoder'}  # what F_D depends on without the amplifier
# (crossmodal_filter, crossmodal_amplifier, stop_gradients) -> term -> parts receiving a nonzero gradient.
EXPECTED = {
    (True, True, True): {
        'loss_decoder': DECODER_PATH | {'ibp'},  # the fused next-stage input carries F_IBP's gradient, not the weights'
        'loss_filter': {'bp'},
        'loss_amplifier': {'ibp'},
        'loss_output': {'fuser'},  # F_CA uses detached F_D and F_IBP
    },
    (True, True, False): {
        'loss_decoder': DECODER_PATH | {'ibp', 'fuser'},
        'loss_filter': {'bp'},
        'loss_amplifier': {'ibp'},
        'loss_output': DECODER_PATH | {'ibp', 'fuser'},
    },
    (False, True, True): {
        'loss_decoder': {'ocbe', 'decoder', 'ibp'},
        'loss_amplifier': {'ibp'},
        'loss_output': {'fuser'},
    },
    (True, False, True): {
        'loss_decoder': DECODER_PATH,
        'loss_filter': {'bp'},
    },
}
CASES = [(switches, term, parts) for switches, terms in EXPECTED.items() for term, parts in terms.items()]


def case_id(case):
    (with_filter, with_amplifier, stop), term, _ = case
    return f'filter{int(with_filter)}-amplifier{int(with_amplifier)}-stop{int(stop)}-{term}'


@pytest.fixture(scope='module')
def runs():
    """Per switch setting: the train-mode model, its losses and the oracle's losses, each from one forward.

    The gradients of every term are taken from these graphs (``retain_graph``), so each setting runs forward once.
    """
    inputs = make_inputs(('rgb', 'depth'), seed=4)
    runs = {}
    for switches in EXPECTED:
        model = build_small_crd(('rgb', 'depth'), crossmodal_filter=switches[0], crossmodal_amplifier=switches[1],
                                stop_gradients=switches[2]).train()
        losses = model.loss(inputs)
        teacher = teacher_feats(model, inputs)
        out = reference_branch(model.branch_rgb, teacher['rgb'], {'depth': teacher['depth']},
                               stop_gradients=switches[2])
        student = dict(loss_decoder=out['decoder_feats'], loss_output=out['output_feats'],
                       loss_filter=out['filter_feats'].get('depth'), loss_amplifier=out['amplifier_feats'].get('depth'))
        oracle_losses = {term: rd_loss(student[term], teacher['rgb']) for term in EXPECTED[switches]}
        runs[switches] = model, losses, oracle_losses
    return runs


def gradients(loss, model):
    """Name -> gradient of every trainable parameter of the model (zeros where the loss does not reach)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named], retain_graph=True, allow_unused=True)
    return {name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(named, grads)}


def reached_parts(grads, branch):
    prefix = f'branch_{branch}.'
    return {part for part in PARTS
            if any(g.abs().sum() > 0 for name, g in grads.items() if name.startswith(f'{prefix}{part}.'))}


def test_every_switch_setting_has_a_row_per_loss_term(runs):
    for switches, (_, losses, oracle_losses) in runs.items():
        assert sorted(key.split('.', 1)[1] for key in losses if key.startswith('rgb.')) == sorted(EXPECTED[switches])
        assert sorted(oracle_losses) == sorted(EXPECTED[switches])


@pytest.mark.parametrize('case', CASES, ids=[case_id(case) for case in CASES])
def test_parts_trained_by_each_term(runs, case):
    switches, term, parts = case
    model, losses, _ = runs[switches]
    grads = gradients(losses[f'rgb.{term}'], model)
    assert reached_parts(grads, 'rgb') == parts
    assert not any(g.abs().sum() > 0 for name, g in grads.items() if not name.startswith('branch_rgb.'))
    assert not any(p.requires_grad for p in model.teacher.parameters())


@pytest.mark.parametrize('case', CASES, ids=[case_id(case) for case in CASES])
def test_gradients_equal_the_rewired_oracle(runs, case):
    switches, term, _ = case
    model, losses, oracle_losses = runs[switches]
    got = gradients(losses[f'rgb.{term}'], model)
    expected = gradients(oracle_losses[term], model)
    differences = {name: float((grad - expected[name]).abs().max()) for name, grad in got.items()}
    worst = max(differences, key=differences.get)
    scale = max(float(g.abs().max()) for g in expected.values())
    assert differences[worst] <= 1e-4 * scale, f'{worst}: gradient differs by {differences[worst]} (scale {scale})'
