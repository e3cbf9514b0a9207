
# Small UNet-S5-D16 (base_channels 16) + FCN head, BN, no aux head, on the
# synthetic long-tailed 64x64 set in longtail_set.tar.xz, whole-image inference. Schedule: SGD lr 0.01,
# PolyLR, 1600 iterations, one validation at the end. Point data_root at the generated folder.
_base_ = ['mmseg::_base_/models/fcn_unet_s5-d16.py',
          'mmseg::_base_/default_runtime.py',
          'mmseg::_base_/schedules/schedule_40k.py']
MAX_ITERS = 1600
norm_cfg = dict(type='BN', requires_grad=True)
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=16, channels=16, num_classes=7, norm_cfg=norm_cfg),
    auxiliary_head=None,
    test_cfg=dict(mode='whole'))
dataset_type = 'BaseSegDataset'
data_root = 'longtail_fidelity_data'  # set with --cfg-options / data root
metainfo = dict(
    classes=('bg', 'c1_blob', 'c2_stripe_rect', 'c3_disk', 'c4_checker_sq', 'c5_dot_disk', 'c6_diag_diamond'),
    palette=[[0, 0, 0], [0, 200, 0], [0, 0, 255], [255, 0, 0], [255, 255, 0], [0, 255, 255], [255, 0, 255]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=MAX_ITERS, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=MAX_ITERS, val_interval=MAX_ITERS)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=MAX_ITERS, save_last=True))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
