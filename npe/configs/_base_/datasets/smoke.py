# The generated `smoke` set (npe-data prepare smoke): 3 classes.
_base_ = ['./generated.py']
dataset_type = 'SmokeDataset'
data_root = 'segmentation/data/smoke'
train_dataloader = dict(batch_size=4, dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
holdout_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
