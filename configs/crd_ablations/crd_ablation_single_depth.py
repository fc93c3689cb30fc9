# Tab. 3: a single depth branch without the crossmodal parts (plain reverse distillation of depth).
_base_ = ['./crd_ablation_full.py']
model = dict(branches=('depth', ), crossmodal_filter=False, crossmodal_amplifier=False)
