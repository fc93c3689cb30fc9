# Tab. 3/4: crossmodal amplifier only (IBP of the other modality fused into the decoder); also Tab. 6's x2 row.
_base_ = ['./crd_ablation_full.py']
model = dict(crossmodal_filter=False, crossmodal_amplifier=True)
