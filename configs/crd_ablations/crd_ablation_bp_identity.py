# Tab. 5 (sizes are an assumption: the paper text lost them): BP without downsampling, CF only.
_base_ = ['./crd_ablation_cf_only.py']
model = dict(bottleneck=dict(bottleneck_stride=None))
