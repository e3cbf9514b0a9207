"""npe.files: output-folder checks (dangling links, files in the way) and temporary files unique per
writer, with the leftovers of killed writers cleaned (issue 18)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from npe.errors import UserError
from npe.files import check_output_dir, write_bytes_atomic


def test_dangling_link_is_refused_naming_link_and_target(tmp_path):
    (tmp_path / 'res').symlink_to(tmp_path / 'not_mounted')
    for path in (tmp_path / 'res', tmp_path / 'res' / 'smoke' / 'deeper'):
        with pytest.raises(UserError) as exc:
            check_output_dir(path, '--results-dir')
        message = str(exc.value)
        assert '\n' not in message and '--results-dir' in message
        assert str(tmp_path / 'res') in message and str(tmp_path / 'not_mounted') in message
        assert 'symbolic link' in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ['res']   # nothing created


def test_link_to_a_folder_and_new_folders_are_fine(tmp_path):
    (tmp_path / 'real').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'real')
    assert check_output_dir(tmp_path / 'link' / 'a' / 'b', '--work-dir') == tmp_path / 'link' / 'a' / 'b'
    assert check_output_dir(tmp_path / 'new' / 'x', '--work-dir') == tmp_path / 'new' / 'x'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['link', 'real']


def test_file_or_link_to_a_file_is_refused(tmp_path):
    (tmp_path / 'f').write_text('x')
    (tmp_path / 'lf').symlink_to(tmp_path / 'f')
    for path, words in ((tmp_path / 'f', 'is not a folder'), (tmp_path / 'lf', 'is not a folder'),
                        (tmp_path / 'lf' / 'sub', 'is a file')):
        with pytest.raises(UserError, match=words):
            check_output_dir(path, '--out-dir')


def test_temporary_files_are_unique_per_writer_and_stale_ones_cleaned(tmp_path):
    from npe.files import clean_stale_temps

    target = tmp_path / 'fig.png'
    # A writer killed before its rename (a real process, so its id is really gone) ...
    code = ('import os, sys, tempfile; from npe.files import _writer_id; '
            'fd, p = tempfile.mkstemp(prefix=f".fig.png.{_writer_id()}.", suffix=".tmp", dir=sys.argv[1]); '
            'os.write(fd, b"half"); os._exit(9)')
    proc = subprocess.run([sys.executable, '-c', code, str(tmp_path)])
    assert proc.returncode == 9
    (leftover,) = tmp_path.glob('.fig.png.*.tmp')
    # ... and one of a writer that still runs (this process): kept.
    ours = tmp_path / f'.fig.png.{os.getpid()}@{leftover.name.split("@")[1].split(".")[0]}.abcdefgh.tmp'
    ours.write_bytes(b'in progress')
    old_style = tmp_path / '.fig.png.tmp'   # the fixed name older versions used, long ago
    old_style.write_bytes(b'x')
    os.utime(old_style, (0, 0))
    assert sorted(clean_stale_temps(tmp_path)) == sorted([leftover, old_style])
    assert ours.is_file()
    write_bytes_atomic(target, b'whole')
    assert target.read_bytes() == b'whole'
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, ours.name])


def test_folder_that_cannot_be_made_is_refused_even_for_root(tmp_path):
    """Issue 18: ``npe-train --work-dir /proc/x`` passed the check (``os.access`` says yes to root)
    and ended in a traceback; /proc takes no new folders, for root neither."""
    from npe.errors import UserError
    from npe.files import check_output_dir

    with pytest.raises(UserError, match=r'--work-dir /proc/x: /proc is not writable'):
        check_output_dir('/proc/x', '--work-dir')
    assert check_output_dir(tmp_path / 'new' / 'w', '--work-dir') == tmp_path / 'new' / 'w'
    assert list(tmp_path.iterdir()) == []   # the check made and removed its folder


def test_link_loop_is_named_a_loop_not_an_unmounted_disk(tmp_path):
    (tmp_path / 'a').symlink_to(tmp_path / 'b')
    (tmp_path / 'b').symlink_to(tmp_path / 'a')
    with pytest.raises(UserError, match=r'is a loop of symbolic links') as exc:
        check_output_dir(tmp_path / 'a' / 'results', '--results-dir')
    assert 'not mounted' not in str(exc.value) and str(tmp_path / 'a') in str(exc.value)
