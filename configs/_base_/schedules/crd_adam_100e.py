# The 200-epoch CRD schedule cut to 100 epochs (the authors' Eyecandies setting).
_base_ = ['./crd_adam_200e.py']
train_cfg = dict(max_epochs=100)
