# Tab. 7: the branch maps summed as they are (no per-branch normalisation).
_base_ = ['./crd_ablation_full.py']
model = dict(aggregator=dict(_delete_=True, type='Sum'))
