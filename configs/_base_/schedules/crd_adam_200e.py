# One Adam per branch (lr 0.005, betas (0.5, 0.999)), ExponentialLR(0.95) per epoch, 200 epochs.
optim_wrapper = dict(
    constructor='BranchOptimWrapperConstructor',
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)),
)
param_scheduler = dict(type='ExponentialLR', gamma=0.95, by_epoch=True)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)
