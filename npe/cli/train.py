"""``npe-train``: train an MMSeg config with prior estimator modules (the reference's train script).

Parses the reference's flags and calls :func:`npe.training.build_train_config` and
:func:`npe.training.run_training`; bad input is one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Sequence

from npe.cli.common import add_cfg_options, add_launcher, make_parser, quiet_library_warnings
from npe.errors import UserError, cli_entry
from npe.options import DEFAULTS, PEM_TYPE, PROTOCOL


def build_parser():
    """The ``npe-train`` argument parser (the reference's flags plus the kit's)."""
    p = make_parser('npe-train', 'Train an MMSegmentation config with NPE prior estimator modules.',
                    epilog='Data root of a dataset the kit prepares (STARE, ADE20K, smoke, '
                           'longtail_synth), first found: --data-root DIR; the data_root your config '
                           "sets itself (not MMSeg's stock relative default such as data/STARE); "
                           '$NPE_DATA_ROOT; segmentation/data. --cfg-options are applied last.')
    p.add_argument('config', metavar='BASE_CONFIG',
                   help="an MMSeg config file or package name, e.g. "
                        "'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'")
    p.add_argument('--load-from', metavar='CKPT',
                   help='initial checkpoint; a plain MMSeg checkpoint initialises the main head')
    p.add_argument('--work-dir', metavar='DIR',
                   help='where logs and checkpoints go (default ./work_dirs/<config stem>/)')
    p.add_argument('--data-root', metavar='DIR',
                   help="the kit's data root: STARE, ADE20K and the built-in sets are read from "
                        'DIR/<dataset folder> (default: the data_root your config sets, else '
                        '$NPE_DATA_ROOT or segmentation/data); for other datasets DIR is the dataset '
                        "folder (default: the config's data_root)")
    p.add_argument('--freeze-backbone', action='store_true', help='do not train the backbone')
    p.add_argument('--freeze-decode', action='store_true', help='do not train the original head')
    p.add_argument('--num-pem', type=int, default=DEFAULTS.num_pem, metavar='M',
                   help=f'number of prior estimator modules (0 = baseline; default {DEFAULTS.num_pem})')
    p.add_argument('--pem-type', default=DEFAULTS.pem_type, choices=PEM_TYPE.choices,
                   help='auto = BN-free copy of the decode head; FCNHead = light head '
                        f'(default {DEFAULTS.pem_type})')
    p.add_argument('--scale-factor', type=float, default=DEFAULTS.scale_factor, metavar='S',
                   help=f's of NPE-LA, stored in the config for testing (default {DEFAULTS.scale_factor:g})')
    p.add_argument('--protocol', default=DEFAULTS.protocol, choices=PROTOCOL.choices,
                   help="upstream = the reference's effective behaviour, fixed = its documented one "
                        f'(default {DEFAULTS.protocol})')
    p.add_argument('--keep-schedule', action='store_true',
                   help="keep the config's schedule (train_cfg, param_scheduler) instead of the "
                        "reference's STARE / ADE20K one; --protocol fixed only (upstream refuses it where "
                        'the reference imposes a schedule; other datasets keep theirs anyway)')
    p.add_argument('--seed', type=int, help='random seed')
    p.add_argument('--deterministic', action='store_true', help='deterministic cuDNN/algorithms')
    p.add_argument('--resume', action='store_true',
                   help="continue from the work dir's latest checkpoint (start fresh if none)")
    p.add_argument('--amp', action='store_true',
                   help="mixed precision through MMEngine's AmpOptimWrapper (needs a CUDA GPU)")
    p.add_argument('--amp-dtype', default='auto', choices=('auto', 'float16', 'bfloat16'),
                   help='auto = bfloat16 where the GPU has it, else float16 with dynamic loss scaling')
    add_launcher(p, batch_help=True)
    add_cfg_options(p, 'override config keys, applied last (MMEngine syntax, e.g. '
                       'train_cfg.max_iters=100 train_dataloader.batch_size=2)')
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """``npe-train`` entry point; bad input: one ``error:`` line on stderr, exit status 2."""
    quiet_library_warnings()
    args = build_parser().parse_args(argv)
    from npe.training import build_train_config, run_training

    cfg = build_train_config(
        args.config, load_from=args.load_from, work_dir=args.work_dir,
        freeze_backbone=args.freeze_backbone, freeze_decode=args.freeze_decode,
        num_pem=args.num_pem, pem_type=args.pem_type, scale_factor=args.scale_factor,
        protocol=args.protocol, keep_schedule=args.keep_schedule, cfg_options=args.cfg_options, seed=args.seed,
        deterministic=args.deterministic, resume=args.resume, amp=args.amp, amp_dtype=args.amp_dtype,
        launcher=args.launcher, batch_per_process=args.batch_per_process, kit_data_root=args.data_root)
    fresh = not Path(cfg.work_dir).exists()
    try:
        info = run_training(cfg)
    except TypeError as exc:   # a misspelt --cfg-options key refused by the class it reached
        from npe.cfg_keys import typo_in_options
        message = typo_in_options(exc, args.cfg_options)
        if message is None:
            raise
        if fresh:   # the Runner's log folder of a run that never started
            shutil.rmtree(cfg.work_dir, ignore_errors=True)
        raise UserError(message) from None
    from npe.launch import finish_distributed, rank
    finish_distributed()
    if rank() == 0:
        print(f'npe-train: {info["iterations"]} iterations in {info["wall_time_s"]:.1f} s; '
              f'work dir {info["work_dir"]}; last checkpoint {info["checkpoint"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
