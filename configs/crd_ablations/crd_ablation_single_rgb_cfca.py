# Tab. 3: a single rgb branch with CF and CA fed by the other modality (only the rgb map is scored).
_base_ = ['./crd_ablation_full.py']
model = dict(branches=('rgb', ))
