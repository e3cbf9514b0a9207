"""Turn an MMSegmentation config into an NPE config (docs/method.md sections 4 and 5), and the config edits
every run shares: data roots, ``--cfg-options``, data-folder checks, per-run instance names."""
from __future__ import annotations

import copy
import importlib
import math
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from mmengine.config import Config, ConfigDict

from npe import config_names
from npe.arguments import Checker, check_npe_options
from npe.constants import LOADERS
from npe.errors import ConfigError, DataError
from npe.options import DEFAULTS, NPEOptions

log = logging.getLogger(__name__)

#: Batch size per process the reference forces (its 4 GPUs x 4 images).
BATCH_SIZE = 16

#: The reference's dataset-keyed schedules: (max_iters, val_interval, MultiStepLR milestones).
SCHEDULES = {
    'STAREDataset': (600, 200, [200, 400]),
    'ADE20KDataset': (2500, 1250, [1250]),
}

#: What the runner's weight initialisation does to the wrapper, per protocol (docs/method.md section 1;
#: ``MultiHeadWrapper(init_mode=...)``). ``upstream``: the reference's N(0, 0.001^2) for every
#: Conv2d/Linear of the wrapper at iteration 0. ``fixed``: the main head is initialised as MMSeg
#: initialises it un-wrapped (classifier N(0, 0.01^2)), so a 0-PEM baseline is a plain MMSeg model;
#: the reference init leaves the head's classifier 10x smaller, which slows the head's training and,
#: on the fidelity set, cost the baseline 23 mIoU points (docs/fidelity.md).
INIT_MODE = {'upstream': 'reference', 'fixed': 'mmseg'}

#: How the PEM loss is computed, per protocol (``OneWayLogisticLoss(arithmetic=...)``):
#: ``upstream`` follows the reference code's floating-point operations so that a seed reproduces
#: its training bit for bit; ``fixed`` keeps the kit's (same loss, other last bits; docs/fidelity.md).
PEM_LOSS_ARITHMETIC = {'upstream': 'reference', 'fixed': 'kit'}

#: Modules a dumped NPE config imports, so MMSeg's own tools can load it too.
CUSTOM_IMPORTS = ['npe.models', 'npe.hooks', 'npe.resume', 'npe.datasets.mmseg_types']


def register() -> None:
    """Register the wrapper head, the loss, the hooks and the built-in datasets with MMSeg."""
    for module in CUSTOM_IMPORTS:
        importlib.import_module(module)


def warn(message: str) -> None:
    """One warning (protocol departures and the like): a ``warning:`` line on stderr in the commands."""
    log.warning('%s', message)


def resolve_config_path(name: str) -> Path:
    """The file behind a config name: a path, ``mmseg::<rel>`` (configs shipped inside the mmseg
    wheel) or ``npe::<rel>`` (configs shipped with this package). :class:`ConfigError` if absent."""
    scope, path = config_names.resolve(name)
    if path.is_file():
        return path
    if scope is not None:
        raise ConfigError(f'config {name!r} does not exist in {config_names.scope_root(scope)}; check the name '
                          f'(e.g. mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py)')
    raise ConfigError(f'config {name!r} does not exist; give a config file or an MMSeg name like '
                      "'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'")


def load_config(name: str | os.PathLike) -> Config:
    """Load an MMSeg config: a file, or a config shipped with MMSeg or this kit by name.

    ``npe.load_config('mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py')`` reads the file
    inside the installed mmseg wheel (MMEngine's own ``Config.fromfile('mmseg::...')`` cannot, for
    MMSeg's configs); ``npe::smoke_unet.py`` one of ``npe/configs/``; anything else is a path.

    Raises:
        npe.errors.ConfigError: no such config, or it cannot be loaded (one line naming it).
    """
    Checker('npe.load_config', ConfigError).path('name', name)
    path = resolve_config_path(os.fspath(name))
    try:
        return Config.fromfile(str(path))
    except FileNotFoundError as exc:
        raise ConfigError(f'config {name!r} cannot be resolved ({exc}); check the name') from None
    except Exception as exc:  # syntax errors and the like inside the user's config
        raise ConfigError(f'config {name!r} cannot be loaded: {type(exc).__name__}: {exc}') from None


#: The name the kit's modules have always used for :func:`load_config`.
load_base_config = load_config


def _dataset_type(cfg: Config) -> str | None:
    if 'dataset_type' in cfg:
        return cfg.dataset_type
    try:
        return cfg.train_dataloader.dataset.type
    except AttributeError:
        return None


def _schedule_text(train_cfg: Any, schedulers: Any) -> str:
    """``160000 iterations of PolyLR, validation every 16000``: a schedule in one phrase."""
    train_cfg = train_cfg or {}
    length = (f'{train_cfg["max_iters"]} iterations' if train_cfg.get('max_iters') is not None
              else f'{train_cfg.get("max_epochs")} epochs')
    schedulers = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers] if schedulers else []
    names = []
    for sched in schedulers:
        name = str(sched.get('type', '?')).split('.')[-1]
        if sched.get('milestones'):
            name += f' (x{sched.get("gamma", 0.1):g} at {", ".join(str(m) for m in sched["milestones"])})'
        names.append(name)
    text = f'{length} of {" + ".join(names) or "a constant learning rate"}'
    return text + (f', validation every {train_cfg["val_interval"]}' if train_cfg.get('val_interval') else '')


def _set_schedule(cfg: Config, protocol: str, keep_schedule: bool, dry: bool = False) -> None:
    """The reference's dataset-keyed schedule (STARE, ADE20K); other datasets, and ``keep_schedule``
    under ``fixed``, keep the config's. Replacing it is one warning naming both schedules.
    ``dry``: only the check that ``keep_schedule`` is allowed, before anything is changed."""
    dataset = _dataset_type(cfg) or ''
    schedule = SCHEDULES.get(dataset)
    if schedule is None:
        return  # other datasets keep the base config's schedule
    if keep_schedule:
        if protocol == 'upstream':
            # upstream reproduces the reference, whose schedule is part of what made its numbers
            raise ConfigError(f'keep_schedule=True needs protocol \'fixed\': protocol \'upstream\' trains '
                              f'{dataset} with the reference\'s schedule; give protocol=\'fixed\' or drop '
                              'keep_schedule')
        return
    if dry:
        return
    max_iters, val_interval, milestones = schedule
    old = _schedule_text(cfg.get('train_cfg'), cfg.get('param_scheduler'))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
    cfg.param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                                milestones=milestones, gamma=0.1)]
    new = _schedule_text(cfg.train_cfg, cfg.param_scheduler)
    if new != old:
        where = '' if protocol == 'upstream' else ' (keep_schedule=True keeps the config\'s)'
        warn(f'schedule (train_cfg, param_scheduler): {old} -> {new}, the reference\'s {dataset} '
             f'schedule{where}')


def _replaced(what: str, old: Any, new: Any, why: str) -> None:
    """One warning for a setting of the user's config that ``apply_npe`` replaces (none if equal)."""
    if old != new:
        warn(f'{what}: {old} -> {new} ({why})')


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


def _config_argument(cfg: Any) -> Config:
    """``apply_npe``'s ``cfg``: a Config (or a plain dict), or a config file / ``mmseg::`` name to load."""
    if isinstance(cfg, (str, os.PathLike)):
        Checker('npe.apply_npe', ConfigError).path('cfg', cfg)
        return load_base_config(os.fspath(cfg))
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, dict):
        return Config(cfg)
    raise Checker('npe.apply_npe', ConfigError).fail(
        'cfg', 'an mmengine Config, a dict, or a config file name', cfg,
        "load one with mmengine.config.Config.fromfile('my_config.py')")


def apply_npe(cfg: Config,
              num_pem: int = DEFAULTS.num_pem,
              pem_type: str = DEFAULTS.pem_type,
              scale_factor: float = DEFAULTS.scale_factor,
              freeze_backbone: bool = DEFAULTS.freeze_backbone,
              freeze_decode: bool = DEFAULTS.freeze_decode,
              load_from: str | None = None,
              protocol: str = DEFAULTS.protocol,
              keep_schedule: bool = False) -> Config:
    """Return a copy of ``cfg`` made into an NPE model with the reference's training protocol.

    Wraps the decode head in ``MultiHeadWrapper``, removes the auxiliary head, forces batch size 16,
    applies the dataset-keyed schedule, the optimizer multipliers and hooks of ``protocol``
    (``'upstream'`` = the reference's effective behaviour, ``'fixed'`` = its documented one).
    Every setting of ``cfg`` it replaces (batch size, schedule, checkpoint interval, auxiliary head,
    an optimizer ``lr_mult`` of the config's own) is one logging warning naming the old and the new
    value. ``keep_schedule=True`` keeps the config's schedule (``train_cfg``, ``param_scheduler``)
    under ``protocol='fixed'``; ``'upstream'`` refuses it where the reference imposes a schedule
    (STARE, ADE20K). The options are checked by :class:`npe.options.NPEOptions`. Apply
    ``cfg_options`` after this call.
    """
    cfg = _config_argument(cfg)
    Checker('npe.apply_npe', ConfigError).flag('keep_schedule', keep_schedule)
    check_npe_options('npe.apply_npe', num_pem=num_pem, pem_type=pem_type, scale_factor=scale_factor,
                      freeze_backbone=freeze_backbone, freeze_decode=freeze_decode, load_from=load_from,
                      protocol=protocol)
    options = NPEOptions(num_pem=num_pem, pem_type=pem_type, scale_factor=scale_factor,
                         freeze_backbone=freeze_backbone, freeze_decode=freeze_decode, protocol=protocol)
    num_pem, scale_factor = options.num_pem, options.scale_factor
    register()
    from npe.models.wrapper import check_head

    if 'model' not in cfg or 'decode_head' not in cfg.model:
        raise ConfigError('the config has no model.decode_head; NPE wraps a decode head')
    head = cfg.model.decode_head
    if isinstance(head, (list, tuple)):
        raise ConfigError('model.decode_head is a list (cascade decoder); NPE supports one decode head')
    if head.get('type') == 'MultiHeadWrapper':
        raise ConfigError('the config is already an NPE config (decode_head is MultiHeadWrapper)')
    check_head(head)
    _set_schedule(cfg, protocol, keep_schedule, dry=True)   # refused before any warning

    cfg = copy.deepcopy(cfg)
    cfg.model.decode_head = dict(type='MultiHeadWrapper', main_head=head.to_dict()
                                 if isinstance(head, ConfigDict) else dict(head),
                                 num_pem=num_pem, pem_type=pem_type,
                                 scale_factor=scale_factor, init_mode=INIT_MODE[protocol])
    auxiliary = cfg.model.pop('auxiliary_head', None)
    if auxiliary:
        kinds = ([a.get('type') for a in auxiliary] if isinstance(auxiliary, (list, tuple))
                 else auxiliary.get('type'))
        _replaced('model.auxiliary_head', kinds, None, 'removed: NPE trains the decode head and its PEMs alone')
    cfg.model.decode_head.pem_loss = dict(arithmetic=PEM_LOSS_ARITHMETIC[protocol])

    _replaced('train_dataloader.batch_size', cfg.train_dataloader.get('batch_size'), BATCH_SIZE,
              "the reference's total batch of 16 images")
    cfg.train_dataloader.batch_size = BATCH_SIZE
    _set_schedule(cfg, protocol, keep_schedule)
    if 'train_cfg' in cfg and cfg.train_cfg.get('val_interval') and 'default_hooks' in cfg \
            and 'checkpoint' in cfg.default_hooks:
        # Checkpoint at every validation so an interrupted run resumes close to where it stopped.
        hook = cfg.default_hooks.checkpoint
        _replaced('default_hooks.checkpoint.interval', hook.get('interval'), cfg.train_cfg.val_interval,
                  'a checkpoint at every validation, so an interrupted run resumes close to where it stopped')
        hook.interval = cfg.train_cfg.val_interval
        hook.by_epoch = False

    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    custom_keys = dict(paramwise.get('custom_keys') or {})
    for key, new in _lr_mults(cfg, protocol, freeze_backbone, freeze_decode).items():
        # only multipliers the config sets itself: a protocol's own are warned about with the protocol
        old = (custom_keys.get(key) or {}).get('lr_mult')
        if old is not None:
            _replaced(f"optim_wrapper.paramwise_cfg.custom_keys['{key}'].lr_mult", old, new['lr_mult'],
                      f'protocol {protocol}')
        custom_keys[key] = new
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
    cfg.npe = dict(options.as_dict(), load_from=str(load_from) if load_from else None)
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


def set_data_root(cfg: Config, dataset_folder: str | Path) -> Config:
    """Point every dataloader's dataset(s) at ``dataset_folder``: MMSeg's ``data_root`` keys, the
    folder holding ``images/`` and ``annotations/`` (in place; returns ``cfg``). Every
    ``*_dataloader`` counts, not only MMSeg's three: a config's ``holdout_dataloader`` would otherwise
    keep its relative root in the dumped config."""
    extra = [key for key in cfg.keys() if key.endswith('_dataloader') and key not in LOADERS]
    for loader in (*LOADERS, *extra):
        if cfg.get(loader) is not None:
            for _, dataset in leaf_datasets(cfg[loader].get('dataset')):
                dataset['data_root'] = str(dataset_folder)
    cfg.data_root = str(dataset_folder)
    return cfg


def _stock_data_roots(folder: str) -> set[str]:
    """The relative defaults MMSeg's configs (``data/<folder>``) and the kit's (``segmentation/data/
    <folder>``) carry for a dataset: they name no real place, so the kit's data root replaces them."""
    return {f'data/{folder}', f'segmentation/data/{folder}'}


def config_data_root(cfg: Config, folder: str) -> Path | None | bool:
    """The data root the user's config itself sets, if any (anything but a stock relative default).

    Returns ``True`` when the config's datasets carry their own roots (they are kept as they are), a
    path when only the top-level ``data_root`` is the user's (every dataset is pointed at it), and
    None when the config has nothing but the stock defaults.
    """
    stock = _stock_data_roots(folder)

    def own(value: Any) -> bool:
        return bool(value) and str(value).rstrip('/') not in stock

    for loader in LOADERS:
        for _, dataset in leaf_datasets((cfg.get(loader) or {}).get('dataset')):
            if own(dataset.get('data_root')):
                return True
    return Path(str(cfg.data_root)) if own(cfg.get('data_root')) else None


def kit_dataset_folder(cfg: Config, kit_data_root: str | Path | None = None) -> Path | None:
    """Where a config's dataset lives, the one rule of ``npe-train``, ``npe-test`` and the driver.

    For a dataset the kit prepares (STARE, ADE20K, the generated ones), in this order:
    ``kit_data_root`` (the kit's data root, the ``--data-root`` flag) / <its folder>; the data root
    the config itself sets (anything but MMSeg's stock relative default such as ``data/STARE``),
    which is then kept (None is returned) or, set only at the top level, returned;
    ``$NPE_DATA_ROOT`` / <folder>; ``segmentation/data`` / <folder>. For any other dataset an
    explicit ``kit_data_root`` is taken as the dataset folder itself, and without one the config's
    own ``data_root`` stays (None is returned).
    """
    from npe import datasets, paths

    spec = datasets.for_mmseg_type(_dataset_type(cfg))
    if spec is None:
        return Path(kit_data_root) if kit_data_root else None
    if not kit_data_root:
        own = config_data_root(cfg, spec.folder)
        if own is not None:
            return None if own is True else own
    return spec.path(paths.data_root(kit_data_root))


def merge_cfg_options(cfg: Config, options: dict | None) -> None:
    """Apply ``--cfg-options`` to ``cfg`` in place; a malformed key path is a :class:`ConfigError`."""
    if not options:
        return
    from npe.cfg_keys import warn_unknown_keys
    warn_unknown_keys(cfg, options)   # a typo is named before the merge adds it as a new key
    try:
        cfg.merge_from_dict(dict(options))
    except Exception as exc:  # e.g. indexing into a value that is not a list
        raise ConfigError(f'cfg_options (--cfg-options) cannot be applied: {type(exc).__name__}: {exc}') from None


def fix_dataloaders(cfg: Config, loaders: Sequence[str] = LOADERS) -> None:
    """``persistent_workers`` needs workers; MMSeg configs set it, users often set num_workers=0."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if loader_cfg and loader_cfg.get('num_workers', 1) == 0 and loader_cfg.get('persistent_workers'):
            loader_cfg.persistent_workers = False


def own_runner_instances(cfg: Config) -> None:
    """Give this run's visualizer and experiment (logger, scope) names of their own (in place).

    MMEngine keeps one instance per name for the whole process. Visualizers share one fixed name, so
    a second Runner would write its scalars (the loss curve) into the first run's folder; loggers are
    named by the second the Runner started, so two Runners started within a second share one log.
    """
    import time
    import uuid

    tag = uuid.uuid4().hex[:8]
    if cfg.get('visualizer'):
        base = str(cfg.visualizer.get('name') or 'visualizer').split('#')[0]
        cfg.visualizer['name'] = f'{base}#{tag}'
    stem = Path(cfg.filename).stem if cfg.filename else 'npe'
    cfg.experiment_name = f'{stem}_{time.strftime("%Y%m%d_%H%M%S")}_{tag}'


def _dataset_hint(dataset_type: str | None) -> str:
    """``npe-data prepare <name>`` for the kit's dataset with this MMSeg type, else a generic hint."""
    from npe.datasets import for_mmseg_type

    spec = for_mmseg_type(dataset_type)
    return f'npe-data prepare {spec.name}' if spec is not None else 'npe-data prepare <dataset>'


def check_data(cfg: Config, loaders: Sequence[str] = LOADERS) -> None:
    """:class:`DataError` naming the first missing or empty data folder of the given dataloaders.

    Catches what would otherwise be a deep traceback from inside the dataloader: a ``data_root`` put
    on a ``RepeatDataset`` wrapper, a missing folder, an empty image folder.
    """
    for loader in loaders:
        top = (cfg.get(loader) or {}).get('dataset') or {}
        if ('dataset' in top or 'datasets' in top) and 'data_root' in top:
            raise ConfigError(f'{loader}.dataset is a {top.get("type", "wrapper")} and takes no '
                              f'data_root; set {loader}.dataset.dataset.data_root instead')
        for key, dataset in leaf_datasets(top, f'{loader}.dataset'):
            root = Path(dataset.get('data_root', '') or '')
            prefix = dataset.get('data_prefix') or {}
            fix = (f'prepare the data with `{_dataset_hint(dataset.get("type"))}` or set '
                   f'{key}.data_root=DIR in cfg_options (--cfg-options)')
            for name in ('img_path', 'seg_map_path'):
                if not prefix.get(name):
                    continue
                folder = root / prefix[name]
                if not folder.is_dir():
                    raise DataError(f'{loader}: data folder {folder} does not exist; {fix}')
                if name == 'img_path' and not any(folder.iterdir()):
                    raise DataError(f'{loader}: data folder {folder} is empty; {fix}')


def check_seed(seed: Any, where: str) -> int:
    """A seed is an integer in [0, 2**32) (numpy's range); anything else is a :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise ConfigError(f'{where}: seed {seed!r} is not an integer from 0 to 4294967295; give e.g. 0')
    return seed


#: Config keys whose type MMEngine only checks deep inside training: (path, kind, minimum).
_TYPED_KEYS = (('train_cfg.max_iters', int, 1), ('train_cfg.max_epochs', int, 1),
               ('train_cfg.val_interval', int, 1), ('train_cfg.val_begin', int, 0),
               ('train_dataloader.batch_size', int, 1), ('val_dataloader.batch_size', int, 1),
               ('test_dataloader.batch_size', int, 1), ('train_dataloader.num_workers', int, 0),
               ('val_dataloader.num_workers', int, 0), ('test_dataloader.num_workers', int, 0),
               ('default_hooks.checkpoint.interval', int, -1), ('default_hooks.logger.interval', int, 1),
               ('optim_wrapper.optimizer.lr', float, 0), ('optim_wrapper.optimizer.weight_decay', float, 0),
               ('optim_wrapper.optimizer.momentum', float, 0))


def check_schedule(cfg: Config) -> None:
    """Values MMEngine would trip over mid-run (``train_cfg.max_iters=abc``, ``max_iters=-3``) are
    one :class:`ConfigError` naming the key, at config-build time."""
    for key, kind, minimum in _TYPED_KEYS:
        node: Any = cfg
        for part in key.split('.'):
            node = node.get(part) if hasattr(node, 'get') else None
            if node is None:
                break
        if node is None:
            continue
        ok = not isinstance(node, bool) and (isinstance(node, int) if kind is int
                                             else isinstance(node, (int, float)) and math.isfinite(node))
        if not ok or node < minimum:
            what = 'an integer' if kind is int else 'a number'
            raise ConfigError(f'{key} = {node!r} is not {what} >= {minimum}; fix it in cfg_options '
                              "(--cfg-options, the recipe's cfg_options) or in the config")
