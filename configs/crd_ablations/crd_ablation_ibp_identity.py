# Tab. 6: IBP as identity (x1, no projection), CA only.
_base_ = ['./crd_ablation_ca_only.py']
model = dict(amplifier=dict(expansion=None))
