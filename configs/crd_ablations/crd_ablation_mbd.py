# Tab. 3, MBD: rgb + depth branches without the crossmodal parts (multi-branch distillation baseline).
_base_ = ['./crd_ablation_full.py']
model = dict(crossmodal_filter=False, crossmodal_amplifier=False)
