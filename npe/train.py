"""``npe.train`` stays the function :func:`npe.training.train` even after ``import npe.train``.

Importing a submodule binds it as an attribute of its package, which would replace the public
function ``npe.train`` by this file; the import system binds whatever ``sys.modules`` holds for the
name once the file has run, so this file puts the function there. The ``npe-train`` command is
:mod:`npe.cli.train` (``python -m npe.cli.train``).
"""
import sys

if __name__ == '__main__':  # the old ``python -m npe.train``: say where the command went, one line
    sys.exit('error: python -m npe.train moved; run npe-train or python -m npe.cli.train')

from npe.training import train  # noqa: E402  (after the guard: the command above needs no torch)

sys.modules[__name__] = train  # type: ignore[assignment]
