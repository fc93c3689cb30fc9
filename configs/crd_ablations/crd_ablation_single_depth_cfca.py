# Tab. 3: a single depth branch with CF and CA fed by the other modality (only the depth map is scored).
_base_ = ['./crd_ablation_full.py']
model = dict(branches=('depth', ))
