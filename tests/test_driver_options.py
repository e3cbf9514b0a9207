"""The driver options: npe-repro's flags -> one DriverOptions -> flags of a Slurm task -> the same
options (through the real npe-repro parser)."""
from __future__ import annotations

import dataclasses
import sys

import pytest

import npe
from npe.cli.repro import build_parser
from npe.driver_options import FLAGS, DriverOptions
from npe.errors import ConfigError, UserError

#: A value for every field that differs from its default.
OTHER = dict(variants=('npe1', 'baseline'), seeds=(3, 0), data_root='/d a/t', results_dir='/r',
             work_dir='/w', mirror='https://mirror.example/npe', offline=True, dry_run=True, tables=False,
             verbose=True, gpus=2, batch_per_process=4, amp=True, amp_dtype='bfloat16', task=1, per_s=True,
             slurm=('--partition', 'gpu', '--time', '4:00:00'))
#: What npe-repro's parser knows besides the driver options: the recipe and the command's own flags.
COMMAND_ONLY = {'recipe', 'list', 'compare', 'help', 'no_tables'}


def parse(argv: list[str]) -> DriverOptions:
    return DriverOptions.from_namespace(build_parser().parse_args(['some_recipe', *argv]))


def test_other_values_cover_every_field():
    assert set(OTHER) == {f.name for f in dataclasses.fields(DriverOptions)}
    for f in dataclasses.fields(DriverOptions):
        assert OTHER[f.name] != f.default, f.name


@pytest.mark.parametrize('name', sorted(OTHER))
def test_every_flag_survives_the_round_trip(name):
    opts = DriverOptions(**{name: OTHER[name]})
    argv = opts.to_argv()
    assert FLAGS[name] in argv
    assert parse(argv) == opts


def test_all_flags_at_once_survive_the_round_trip():
    opts = DriverOptions(**OTHER)
    assert parse(opts.to_argv()) == opts
    assert opts.to_argv()[-5:] == ['--slurm', '--partition', 'gpu', '--time', '4:00:00']  # sbatch's last


def test_defaults_give_no_flags_and_parse_back_to_defaults():
    assert DriverOptions().to_argv() == []
    assert parse([]) == DriverOptions()
    assert parse(['--slurm']) == DriverOptions(slurm=())  # --slurm without sbatch options is kept


def test_every_parser_flag_is_a_driver_option():
    """A new npe-repro flag must become a field, or the Slurm tasks would drop it."""
    dests = {a.dest for a in build_parser()._actions}
    assert dests - COMMAND_ONLY == set(FLAGS) - {'tables'}
    flags = {s for a in build_parser()._actions for s in a.option_strings}
    assert set(FLAGS.values()) <= flags


def test_keywords_and_options_object_meet_in_run_recipe(tmp_path, capsys):
    dirs = dict(data_root=tmp_path / 'data', results_dir=tmp_path / 'res', work_dir=tmp_path / 'work')
    opts = DriverOptions(dry_run=True, **dirs)
    assert opts.data_root == str(tmp_path / 'data')  # folders kept as strings: equal flags, equal objects
    assert npe.run_recipe('smoke', opts, variants=['npe1']).failures == 0
    assert 'npe1' in capsys.readouterr().out
    with pytest.raises(ConfigError, match="npe.run_recipe: unknown argument 'per_ss' \\(did you mean per_s\\?\\)"):
        npe.run_recipe('smoke', opts, per_ss=True)
    with pytest.raises(ConfigError, match='options: expected an npe.driver_options.DriverOptions'):
        npe.run_recipe('smoke', {'dry_run': True})
    with pytest.raises(UserError, match='npe.run_recipe: seeds: expected a list'):
        DriverOptions(seeds=3)


def test_slurm_task_command_carries_the_flags(tmp_path):
    """The task command written for sbatch parses back to the driver's options (only the folders
    resolved, --offline, no tables, no --slurm): what a local run with the same flags would do."""
    import shlex

    from npe.launch import write_sbatch_scripts

    opts = DriverOptions(variants=('npe1',), seeds=(0,), gpus=2, batch_per_process=4, amp=True,
                         amp_dtype='float16', per_s=True, verbose=True)
    task = opts.replace(data_root='/d', results_dir='/r', work_dir='/w', offline=True, tables=False)
    train, _ = write_sbatch_scripts(tmp_path, recipe_name='smoke', tasks=2, tables_command=['true'],
                                    task_command=[sys.executable, '-m', 'npe', 'smoke', *task.to_argv()])
    line = next(x for x in train.read_text().splitlines() if x.startswith('exec '))
    argv = shlex.split(line)[4:]   # exec PYTHON -m npe | smoke ... --task $SLURM_ARRAY_TASK_ID
    assert argv[-2:] == ['--task', '$SLURM_ARRAY_TASK_ID']
    assert build_parser().parse_args(argv[:-2]).recipe == 'smoke'
    assert DriverOptions.from_namespace(build_parser().parse_args(argv[:-2])) == task
