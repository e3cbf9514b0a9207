"""``npe-test``: evaluate a training run's checkpoint at one or several scale factors s.

``npe-test WORK_DIR`` (a run of npe-train) or ``npe-test CONFIG CHECKPOINT`` (MMSeg's order). Parses
the flags and calls :func:`npe.evaluation.evaluate` (which s: documented there; which config and
checkpoint: :mod:`npe.eval_config`); ``--counted-la`` counts the prior on the config's training split
(:func:`npe.own_data.counted_prior`); bad input is one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from npe.cli.common import add_cfg_options, add_launcher, make_parser, quiet_library_warnings
from npe.constants import AUTO, METRICS
from npe.errors import UserError, cli_entry
from npe.files import check_output_dir


def build_parser():
    """The ``npe-test`` argument parser."""
    p = make_parser('npe-test', "Evaluate a training run's checkpoint with NPE-LA (or, with --counted-la, "
                                'with counted priors) at one or several scale factors.',
                    epilog='usage forms: npe-test WORK_DIR [--checkpoint CKPT] | npe-test CONFIG.py '
                           'CHECKPOINT.pth [--work-dir DIR] (MMSeg order; the test folder goes to DIR, '
                           'default work_dirs/<config stem>, which may hold anything)')
    p.add_argument('run', metavar='WORK_DIR|CONFIG', help='work dir of an npe-train run, or a config file (.py)')
    p.add_argument('ckpt', nargs='?', metavar='CHECKPOINT', help="with CONFIG: the checkpoint (.pth), MMSeg's order")
    p.add_argument('--checkpoint', metavar='CKPT', help='default: the last checkpoint of the run')
    p.add_argument('--work-dir', metavar='DIR', help='with CONFIG CHECKPOINT: where the test folder goes')
    p.add_argument('--scale-factor', type=_scale, nargs='+', metavar='S',
                   help='s values to evaluate, all in one pass over the data (default: the trained '
                        'value; inf = no adjustment; auto = the best of --auto-candidates on the '
                        "held-out training split, never the validation set)")
    p.add_argument('--counted-la', action='store_true',
                   help='classic logit adjustment z - log(prior)/s with the class pixel shares counted '
                        "on the config's training split (cached beside the data); works on a plain "
                        '(--num-pem 0) model')
    p.add_argument('--auto-candidates', type=float, nargs='+', metavar='S',
                   help='candidates of s = auto (default: 0.5 1 1.5 2 3 4)')
    p.add_argument('--auto-metric', choices=METRICS, default='mIoU', help='what auto chooses by (default mIoU)')
    p.add_argument('--per-s', action='store_true',
                   help='one full evaluation per s instead of one pass (for checking: same counts)')
    p.add_argument('--verbose', action='store_true',
                   help="MMEngine's log on the terminal (default: in the test folder's npe-test.log)")
    p.add_argument('--tta', action='store_true', help="test-time augmentation (the config's tta_*)")
    add_launcher(p)
    p.add_argument('--show-dir', metavar='DIR', help="draw MMSeg's overlays (ground truth | prediction) of "
                   'every test image at one s (the auto one, if asked) into DIR/vis_data/vis_image; one extra pass')
    p.add_argument('--out', metavar='FILE', help="write the metrics as one JSON file (not MMSeg's "
                                                 '--out folder of predicted label maps)')
    p.add_argument('--config', metavar='FILE', help="default: the run's own dumped config")
    p.add_argument('--data-root', metavar='DIR',
                   help="read the test data from the kit's data root DIR (DIR/<dataset folder>; for "
                        'datasets the kit does not know, DIR is the dataset folder); default: where '
                        'the run was trained from')
    add_cfg_options(p, 'override test config keys (MMEngine syntax)')
    return p


def _scale(text: str) -> float | str:
    """A --scale-factor value: a number or ``auto``."""
    if text == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, inf or auto, got {text!r}") from None


def _run(args) -> tuple[str | None, str | None, str | None]:
    """(work_dir, config, checkpoint) of ``npe-test WORK_DIR`` or ``npe-test CONFIG CHECKPOINT``."""
    if not args.run.endswith('.py'):
        if args.ckpt:
            raise UserError(f'expected WORK_DIR or CONFIG.py CHECKPOINT, got {args.run} {args.ckpt}')
        return args.run, args.config, args.checkpoint
    if args.ckpt and (args.config or args.checkpoint):
        raise UserError('CONFIG CHECKPOINT already name them; drop --config / --checkpoint')
    if not (args.ckpt or args.checkpoint):
        raise UserError(f'{args.run} is a config: give its checkpoint too (npe-test CONFIG.py CHECKPOINT)')
    return args.work_dir, args.run, args.ckpt or args.checkpoint


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """``npe-test`` entry point; bad input: one ``error:`` line on stderr, exit status 2."""
    quiet_library_warnings()
    args = build_parser().parse_args(argv)
    if args.out and Path(args.out).is_dir():
        raise UserError(f'--out {args.out} is a folder; give a file name')
    if args.out:
        check_output_dir(Path(args.out).parent, '--out folder')
    work_dir, config, checkpoint = _run(args)
    if args.work_dir and work_dir != args.work_dir:
        raise UserError('--work-dir goes with CONFIG CHECKPOINT; with a WORK_DIR the test folder is inside it')
    if args.show_dir:
        from npe.overlays import check_request
        check_request(args.scale_factor or [None])
    from npe.eval_config import find_run_config, test_parent
    from npe.evaluation import evaluate, format_table, write_metrics
    scales = args.scale_factor or [None]
    what = ', '.join(map(str, args.scale_factor)) if args.scale_factor else 'trained value'
    print(f'npe-test: evaluating {args.run} at s = {what}' + ' (counted LA)' * args.counted_la, flush=True)
    log_prior = None
    if args.counted_la:
        from npe.own_data import counted_prior
        _, log_prior = counted_prior(config or find_run_config(work_dir), kit_data_root=args.data_root)
    given = dict(work_dir=work_dir, checkpoint=checkpoint, scale_factors=scales, tta=args.tta, config=config,
                 cfg_options=args.cfg_options, data_root=args.data_root, launcher=args.launcher,
                 per_s=args.per_s, quiet=not args.verbose, log_prior=log_prior)
    results = evaluate(**given, auto_candidates=args.auto_candidates, auto_metric=args.auto_metric)
    if args.show_dir:
        from npe import overlays
        print(f'npe-test: overlays in {overlays.draw(evaluate, given, results, args.show_dir)}')
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
    for r in results:
        if r.get('auto'):
            print(f'npe-test: auto -> s = {r["scale_factor"]:g} (best {r["auto"]["metric"]} on the '
                  f'{r["auto"]["split"]} split among {", ".join(r["auto"]["candidates"])})')
    if args.counted_la:
        print('npe-test: counted LA rows (prior counted on the training split)')
    elif (first.get('npe') or {}).get('num_pem') == 0 and len({r['scale_factor'] for r in results}) > 1:
        # identical rows would otherwise look like a broken sweep
        print('npe-test: note: this run has no prior estimator module (num_pem=0), so s has no effect: '
              'every row is the same model')
    if first.get('log_file'):
        print(f'npe-test: MMEngine log in {first["log_file"]} (--verbose to see it here)')
    print(format_table(results))
    if args.out:
        path = write_metrics(args.out, test_parent(work_dir, config, checkpoint), results, tta=args.tta)
        print(f'npe-test: wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
