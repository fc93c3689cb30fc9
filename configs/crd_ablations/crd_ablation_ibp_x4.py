# Tab. 6: IBP with expansion 4, CA only.
_base_ = ['./crd_ablation_ca_only.py']
model = dict(amplifier=dict(expansion=4))
