# The generated `longtail_synth` set (npe-data prepare longtail_synth): 7 classes with pixel shares ~ r^k, 100x imbalance (true prior in prior.json).
_base_ = ['./generated.py']
dataset_type = 'LongtailSynthDataset'
data_root = 'segmentation/data/longtail_synth'
train_dataloader = dict(batch_size=8, dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
holdout_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
