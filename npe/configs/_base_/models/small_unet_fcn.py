# A narrow 4-stage UNet with an FCN head: learns the generated sets on a CPU in about a minute.
# num_classes and crop size are set by the config that uses it.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(type='UNet', in_channels=3, base_channels=16, num_stages=4, strides=(1, 1, 1, 1),
                  enc_num_convs=(2, 2, 2, 2), dec_num_convs=(2, 2, 2), downsamples=(True, True, True),
                  enc_dilations=(1, 1, 1, 1), dec_dilations=(1, 1, 1), with_cp=False, conv_cfg=None,
                  norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'), upsample_cfg=dict(type='InterpConv'),
                  norm_eval=False),
    decode_head=dict(type='FCNHead', in_channels=16, in_index=3, channels=16, num_convs=1,
                     concat_input=False, dropout_ratio=0.1, num_classes=2, norm_cfg=norm_cfg,
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
