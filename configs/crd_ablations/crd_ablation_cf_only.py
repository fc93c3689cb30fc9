# Tab. 3/4: crossmodal filter only (BP of the other modality into each branch's OCBE); also Tab. 5's 8x8 row.
_base_ = ['./crd_ablation_full.py']
model = dict(crossmodal_filter=True, crossmodal_amplifier=False)
