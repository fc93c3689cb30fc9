# Tab. 5 (assumed sizes): BP to stride 16 (16x16 at 256 input, 4x4 at 64), CF only.
_base_ = ['./crd_ablation_cf_only.py']
model = dict(bottleneck=dict(bottleneck_stride=16))
