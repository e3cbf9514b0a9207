# Small UNet + FCN head on the generated `longtail_synth` set (npe-data prepare longtail_synth).
# Not one of the paper's datasets: the reference protocol keeps this config's own schedule.
_base_ = ['./_base_/models/small_unet_fcn.py', './_base_/datasets/longtail_synth.py',
          './_base_/runtime/cpu_runtime.py']
model = dict(data_preprocessor=dict(size=(64, 64)), decode_head=dict(num_classes=7))
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=300, by_epoch=False)]
default_hooks = dict(logger=dict(interval=10))
