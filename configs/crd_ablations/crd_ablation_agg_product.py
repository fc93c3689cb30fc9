# Tab. 7: the product of the branch maps.
_base_ = ['./crd_ablation_full.py']
model = dict(aggregator=dict(_delete_=True, type='Product'))
