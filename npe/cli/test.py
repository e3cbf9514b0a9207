"""``npe-test``: evaluate a training run's checkpoint at one or several scale factors s.

Parses the flags and calls :func:`npe.evaluation.evaluate` (which config, checkpoint and s are used
is documented there); bad input is one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from npe.cli.common import add_cfg_options, add_launcher, make_parser, quiet_library_warnings
from npe.errors import UserError, cli_entry
from npe.files import check_output_dir


def build_parser():
    """The ``npe-test`` argument parser."""
    p = make_parser('npe-test', "Evaluate a training run's checkpoint with NPE-LA at one or several "
                                'scale factors.')
    p.add_argument('work_dir', metavar='WORK_DIR', help='work dir of an npe-train run')
    p.add_argument('--checkpoint', metavar='CKPT', help='default: the last checkpoint of the run')
    p.add_argument('--scale-factor', type=float, nargs='+', metavar='S',
                   help='s values to evaluate, all in one pass over the data (default: the trained '
                        'value; inf = no adjustment)')
    p.add_argument('--per-s', action='store_true',
                   help='one full evaluation per s instead of one pass (for checking: same counts)')
    p.add_argument('--verbose', action='store_true',
                   help="MMEngine's log on the terminal (default: in the test folder's npe-test.log)")
    p.add_argument('--tta', action='store_true', help="test-time augmentation (the config's tta_*)")
    add_launcher(p)
    p.add_argument('--out', metavar='FILE', help='write the metrics as JSON')
    p.add_argument('--config', metavar='FILE', help="default: the run's own dumped config")
    p.add_argument('--data-root', metavar='DIR',
                   help="read the test data from the kit's data root DIR (DIR/<dataset folder>; for "
                        'datasets the kit does not know, DIR is the dataset folder); default: where '
                        'the run was trained from')
    add_cfg_options(p, 'override test config keys (MMEngine syntax)')
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """``npe-test`` entry point; bad input: one ``error:`` line on stderr, exit status 2."""
    quiet_library_warnings()
    args = build_parser().parse_args(argv)
    if args.out and Path(args.out).is_dir():
        raise UserError(f'--out {args.out} is a folder; give a file name')
    if args.out:
        check_output_dir(Path(args.out).parent, '--out folder')
    from npe.evaluation import evaluate, format_table, write_metrics

    print(f'npe-test: evaluating {args.work_dir} at s = '
          f'{", ".join(f"{s:g}" for s in args.scale_factor) if args.scale_factor else "trained value"}',
          flush=True)

    results = evaluate(args.work_dir, checkpoint=args.checkpoint,
                       scale_factors=args.scale_factor or [None], tta=args.tta,
                       cfg_options=args.cfg_options, config=args.config, data_root=args.data_root,
                       launcher=args.launcher, per_s=args.per_s, quiet=not args.verbose)
    from mmengine.dist import is_main_process

    from npe.launch import finish_distributed
    main_process = is_main_process()
    finish_distributed()
    if not main_process:
        return 0
    first = results[0]
    how = 'one pass' if first['one_pass'] else f'{len(results)} evaluation(s)'
    print(f'npe-test: {first["checkpoint"]}' + (' (TTA)' if args.tta else '') +
          f'; {first["num_images"]} images, {how}, {sum({r["wall_time_s"] for r in results}):.1f} s')
    for note in first.get('notes') or []:
        print(f'npe-test: note: {note}')
    if (first.get('npe') or {}).get('num_pem') == 0 and len({r['scale_factor'] for r in results}) > 1:
        # identical rows would otherwise look like a broken sweep
        print('npe-test: note: this run has no prior estimator module (num_pem=0), so s has no effect: '
              'every row is the same model')
    if first.get('log_file'):
        print(f'npe-test: MMEngine log in {first["log_file"]} (--verbose to see it here)')
    print(format_table(results))
    if args.out:
        path = write_metrics(args.out, args.work_dir, results, tta=args.tta)
        print(f'npe-test: wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
