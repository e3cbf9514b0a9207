"""Turn an MMSegmentation config into an NPE config (NPE.md sections 4 and 5)."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

from mmengine.config import Config, ConfigDict

from npe.errors import UserError

PROTOCOLS = ('upstream', 'fixed')

#: Batch size per process the reference forces (its 4 GPUs x 4 images).
BATCH_SIZE = 16

#: The reference's dataset-keyed schedules: (max_iters, val_interval, MultiStepLR milestones).
SCHEDULES = {
    'STAREDataset': (600, 200, [200, 400]),
    'ADE20KDataset': (2500, 1250, [1250]),
}

#: What the runner's weight initialisation does to the wrapper, per protocol (NPE.md section 1;
#: ``MultiHeadWrapper(init_mode=...)``). ``reference``: every Conv2d/Linear of the wrapper
#: N(0, 0.001^2) at iteration 0, as the reference code does.
INIT_MODE = {'upstream': 'reference', 'fixed': 'reference'}

#: Modules a dumped NPE config imports, so MMSeg's own tools can load it too.
CUSTOM_IMPORTS = ['npe.models', 'npe.hooks', 'npe.datasets.mmseg_types']


def warn(message: str) -> None:
    """One warning line on stderr (protocol departures and the like)."""
    print(f'warning: {message}', file=sys.stderr)


def resolve_config_path(name: str) -> Path:
    """The file behind a config name: a path, ``mmseg::<rel>`` (configs shipped inside the mmseg
    wheel) or ``npe::<rel>`` (configs shipped with this package). :class:`UserError` if absent."""
    for scope, root in (('mmseg::', _mmseg_config_dir), ('npe::', _npe_config_dir)):
        if name.startswith(scope):
            path = root() / name[len(scope):]
            if not path.is_file():
                raise UserError(f'config {name!r} does not exist in {root()}; check the name '
                                f'(e.g. mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py)')
            return path
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(f'config {name!r} does not exist; give a config file or an MMSeg name like '
                        "'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'")
    return path


def _mmseg_config_dir() -> Path:
    import mmseg

    return Path(mmseg.__file__).resolve().parent / '.mim' / 'configs'


def _npe_config_dir() -> Path:
    return Path(__file__).resolve().parent / 'configs'


def load_base_config(name: str) -> Config:
    """Load a config file or an ``mmseg::``/``npe::`` config; :class:`UserError` if it cannot be read."""
    path = resolve_config_path(str(name))
    try:
        return Config.fromfile(str(path))
    except FileNotFoundError as exc:
        raise UserError(f'config {name!r} cannot be resolved ({exc}); check the name') from None
    except Exception as exc:  # syntax errors and the like inside the user's config
        raise UserError(f'config {name!r} cannot be loaded: {type(exc).__name__}: {exc}') from None


def _dataset_type(cfg: Config) -> str | None:
    if 'dataset_type' in cfg:
        return cfg.dataset_type
    try:
        return cfg.train_dataloader.dataset.type
    except AttributeError:
        return None


def _set_schedule(cfg: Config) -> None:
    schedule = SCHEDULES.get(_dataset_type(cfg) or '')
    if schedule is None:
        return  # other datasets keep the base config's schedule
    max_iters, val_interval, milestones = schedule
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                                milestones=milestones, gamma=0.1)]


def _lr_mults(cfg: Config, protocol: str, freeze_backbone: bool, freeze_decode: bool) -> dict:
    base_lr = float(cfg.optim_wrapper.optimizer.get('lr', 0.01))
    if protocol == 'upstream':
        # Reference departure 1 and 2: the backbone multiplier is the base LR itself, and the
        # main-head key matches no parameter name (kept only to show that it is a no-op).
        return {'backbone': dict(lr_mult=base_lr),
                'decode_head.base_head': dict(lr_mult=0.0 if freeze_decode else 1.0)}
    return {'backbone': dict(lr_mult=0.0 if freeze_backbone else 1.0),
            'decode_head.main_head': dict(lr_mult=0.0 if freeze_decode else 1.0)}


def _upstream_warnings(cfg: Config, freeze_backbone: bool, freeze_decode: bool,
                       load_from: str | None) -> None:
    base_lr = float(cfg.optim_wrapper.optimizer.get('lr', 0.01))
    warn(f'protocol upstream: backbone lr_mult = {base_lr:g} (the base LR, as in the reference code), '
         f'so the backbone trains at {base_lr * base_lr:g}; --protocol fixed uses lr_mult 1.0')
    if freeze_decode and not load_from:
        warn('protocol upstream: --freeze-decode does nothing without --load-from (as in the '
             'reference code); --protocol fixed freezes the main head')
    if freeze_backbone or freeze_decode:
        warn('protocol upstream: BatchNorm statistics of frozen parts keep changing (MMEngine puts '
             'the model back in train mode every iteration); --protocol fixed keeps them fixed')


def apply_npe(cfg: Config,
              num_pem: int = 1,
              pem_type: str = 'auto',
              scale_factor: float = 1.0,
              freeze_backbone: bool = False,
              freeze_decode: bool = False,
              load_from: str | None = None,
              protocol: str = 'upstream') -> Config:
    """Return a copy of ``cfg`` made into an NPE model with the reference's training protocol.

    Wraps the decode head in ``MultiHeadWrapper``, removes the auxiliary head, forces batch size 16,
    applies the dataset-keyed schedule, the optimizer multipliers and hooks of ``protocol``
    (``'upstream'`` = the reference's effective behaviour, ``'fixed'`` = its documented one).
    Apply ``--cfg-options`` after this call.
    """
    from npe.models.wrapper import PEM_TYPES, check_head

    if protocol not in PROTOCOLS:
        raise UserError(f'unknown protocol {protocol!r}; choose upstream or fixed')
    if pem_type not in PEM_TYPES:
        raise UserError(f'unknown pem type {pem_type!r}; choose one of {", ".join(PEM_TYPES)}')
    if isinstance(num_pem, bool) or int(num_pem) != num_pem or num_pem < 0:
        raise UserError(f'num_pem must be an integer >= 0, got {num_pem!r}')
    if not float(scale_factor) > 0:
        raise UserError(f'scale factor must be > 0, got {scale_factor!r}')
    if num_pem == 0 and freeze_backbone and freeze_decode:
        raise UserError('num_pem 0 with both --freeze-backbone and --freeze-decode leaves nothing to '
                        'train; drop a freeze flag or use --num-pem >= 1')
    if 'model' not in cfg or 'decode_head' not in cfg.model:
        raise UserError('the config has no model.decode_head; NPE wraps a decode head')
    head = cfg.model.decode_head
    if isinstance(head, (list, tuple)):
        raise UserError('model.decode_head is a list (cascade decoder); NPE supports one decode head')
    if head.get('type') == 'MultiHeadWrapper':
        raise UserError('the config is already an NPE config (decode_head is MultiHeadWrapper)')
    check_head(head)

    cfg = copy.deepcopy(cfg)
    cfg.model.decode_head = dict(type='MultiHeadWrapper', main_head=head.to_dict()
                                 if isinstance(head, ConfigDict) else dict(head),
                                 num_pem=int(num_pem), pem_type=pem_type,
                                 scale_factor=float(scale_factor), init_mode=INIT_MODE[protocol])
    cfg.model.pop('auxiliary_head', None)

    cfg.train_dataloader.batch_size = BATCH_SIZE
    _set_schedule(cfg)
    if 'train_cfg' in cfg and cfg.train_cfg.get('val_interval') and 'default_hooks' in cfg \
            and 'checkpoint' in cfg.default_hooks:
        # Checkpoint at every validation so an interrupted run resumes close to where it stopped.
        cfg.default_hooks.checkpoint.interval = cfg.train_cfg.val_interval
        cfg.default_hooks.checkpoint.by_epoch = False

    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    custom_keys = dict(paramwise.get('custom_keys') or {})
    custom_keys.update(_lr_mults(cfg, protocol, freeze_backbone, freeze_decode))
    paramwise['custom_keys'] = custom_keys
    cfg.optim_wrapper.paramwise_cfg = paramwise

    hooks = list(cfg.get('custom_hooks') or [])
    if protocol == 'upstream':
        if freeze_backbone:
            hooks.append(dict(type='NPEFreezeHook', freeze_backbone=True, keep_eval=False))
    elif freeze_backbone or freeze_decode:
        hooks.append(dict(type='NPEFreezeHook', freeze_backbone=freeze_backbone,
                          freeze_decode=freeze_decode, keep_eval=True))
    if load_from:
        cfg.load_from = str(load_from)
        hooks.append(dict(type='NPECheckpointRemapHook', checkpoint=str(load_from),
                          freeze_decode=bool(freeze_decode and protocol == 'upstream')))
    cfg.custom_hooks = hooks
    if freeze_backbone or freeze_decode:
        # Frozen parameters get no gradient; DDP must not wait for them.
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    cfg.custom_imports = dict(imports=imports + [m for m in CUSTOM_IMPORTS if m not in imports],
                              allow_failed_imports=False)
    cfg.npe = dict(num_pem=int(num_pem), pem_type=pem_type, scale_factor=float(scale_factor),
                   freeze_backbone=bool(freeze_backbone), freeze_decode=bool(freeze_decode),
                   load_from=str(load_from) if load_from else None, protocol=protocol)
    if protocol == 'upstream':
        _upstream_warnings(cfg, freeze_backbone, freeze_decode, load_from)
    return cfg


def leaf_datasets(dataset, key: str = 'dataset') -> list[tuple[str, dict]]:
    """``(key path, dataset cfg)`` of the datasets that read files, inside RepeatDataset /
    ConcatDataset wrappers (the key path names where to set an option with ``--cfg-options``)."""
    if not dataset:
        return []
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'], f'{key}.dataset')
    if 'datasets' in dataset:
        return [leaf for i, d in enumerate(dataset['datasets'])
                for leaf in leaf_datasets(d, f'{key}.datasets.{i}')]
    return [(key, dataset)]


def set_data_root(cfg: Config, data_root: str | Path) -> Config:
    """Point every dataloader's dataset(s) at ``data_root`` (in place; returns ``cfg``)."""
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is not None:
            for _, dataset in leaf_datasets(cfg[loader].get('dataset')):
                dataset['data_root'] = str(data_root)
    cfg.data_root = str(data_root)
    return cfg


def kit_dataset_folder(cfg: Config, data_root: str | Path | None = None) -> Path | None:
    """Where a config's dataset lives under the kit's data root.

    For a dataset the kit prepares (STARE, ADE20K, the generated ones) that is
    ``<data root>/<its folder>``, the data root being ``data_root`` > ``$NPE_DATA_ROOT`` >
    ``segmentation/data``. For any other dataset an explicit ``data_root`` is taken as the dataset
    folder itself, and without one the config's own ``data_root`` stays (None is returned).
    """
    from npe import datasets, paths

    spec = datasets.for_mmseg_type(_dataset_type(cfg))
    if spec is not None:
        return spec.path(paths.data_root(data_root))
    return Path(data_root) if data_root else None
