# One Adam per branch (lr 0.005, betas (0.5, 0.999)), ExponentialLR(0.95) per epoch, 200 epochs.
# fused=True: one kernel per parameter tensor instead of one pass per Adam operation (same update to float
# rounding); on CPU it cut the Adam step alone of a paper-sized branch (193 M parameters) about 4x.
optim_wrapper = dict(
    constructor='BranchOptimWrapperConstructor',
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999), fused=True),
)
param_scheduler = dict(type='ExponentialLR', gamma=0.95, by_epoch=True)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)
