# Tab. 3: a single rgb branch without the crossmodal parts (plain reverse distillation of rgb).
_base_ = ['./crd_ablation_full.py']
model = dict(branches=('rgb', ), crossmodal_filter=False, crossmodal_amplifier=False)
