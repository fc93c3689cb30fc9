default_scope = 'mmad'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Atomic writes (temporary file, then rename): a crash or a full disk never truncates a checkpoint. Keep
    # max_keep_ckpts >= 2: mmengine deletes the oldest checkpoint before it writes the new one.
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_last=True,
                    backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Several processes: average the BatchNorm statistics of all ranks after each epoch, before the validation
    # statistics and the checkpoint (a no-op in one process).
    sync_buffers=dict(type='SyncBuffersHook'),
)

# SafeCheckpointHook: checkpoints load with torch.load(weights_only=True).
# ValidationStatisticsHook: after the last epoch, the global mean/std of the validation maps of each branch.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # backend None: nccl with CUDA, gloo without (mmad.utils.init_distributed_if_needed); timeout in seconds.
    dist_cfg=dict(backend=None),
)

# Each branch is wrapped on its own, so the model's train_step (one optimiser per branch) is used under DDP; the
# frozen teacher is not wrapped. broadcast_buffers: every forward starts from rank 0's BatchNorm statistics.
# sync_bn='torch' (GPUs only): the branches' BatchNorm uses the statistics of the global batch (docs/distributed.md).
# The 'mmad.' scope: mmengine's runner looks the wrapper type up in its root registry.
model_wrapper_cfg = dict(type='mmad.BranchDistributedDataParallel', sync_bn=None, broadcast_buffers=True,
                         find_unused_parameters=False)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
# ConciseLogProcessor: total and per-branch losses on the console; every loss in vis_data/scalars.json.
log_processor = dict(type='ConciseLogProcessor', by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42, deterministic=False)
