"""Fail the image build unless the stack works: torch of the expected version, mmcv *with its compiled
ops* (the most common broken image: mmcv built without ops or for another torch), MMEngine and
MMSegmentation at the kit's pins, a clean `pip check` for what the build installed, and (``--kit``)
the npe package installed non-editable and finding its recipes and configs."""
import argparse
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def fail(message: str) -> None:
    print(f'verify_stack: error: {message}', file=sys.stderr)
    raise SystemExit(1)


def own_distributions() -> set[str]:
    """Distributions installed in this venv itself (not a base image's site-packages it can see)."""
    own = {Path(p).resolve() for p in site.getsitepackages() if Path(p).resolve().is_relative_to(Path(sys.prefix).resolve())}
    names = set()
    for dist in metadata.distributions():
        location = Path(str(dist.locate_file(''))).resolve()
        if location in own:
            names.add(dist.metadata['Name'].lower().replace('_', '-'))
    return names


def pip_check() -> None:
    out = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True)
    own = own_distributions()
    bad = [line for line in out.stdout.splitlines()
           if line.split(' ', 1)[0].lower().replace('_', '-') in own]
    if bad:
        fail('pip check: ' + '; '.join(bad))


def stack(torch_version: str, mmcv_version: str) -> None:
    import torch
    if not torch.__version__.split('+')[0] == torch_version:
        fail(f'torch {torch.__version__}, expected {torch_version}')
    import mmcv
    if mmcv.__version__ != mmcv_version:
        fail(f'mmcv {mmcv.__version__}, expected {mmcv_version}')
    try:
        import mmcv.ops
        from mmcv.ops import nms
    except Exception as exc:  # noqa: BLE001 - any failure here is the broken-mmcv case
        fail(f'import mmcv.ops failed ({type(exc).__name__}: {exc}): mmcv built without ops or for '
             f'another torch')
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    kept = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)[1].tolist()
    if kept != [0, 2]:
        fail(f'mmcv.ops.nms gave {kept}')
    import mmengine
    import mmseg
    import mmseg.models  # noqa: F401
    for name, module, want in (('mmengine', mmengine, '0.10.7'), ('mmsegmentation', mmseg, '1.2.2')):
        if module.__version__ != want:
            fail(f'{name} {module.__version__}, expected {want}')
    pip_check()
    print(f'verify_stack: torch {torch.__version__} (CUDA {torch.version.cuda}), mmcv {mmcv.__version__} '
          f'with ops, mmengine {mmengine.__version__}, mmseg {mmseg.__version__}: ok')


def kit() -> None:
    import npe
    from npe.recipes import PACKAGE_DIR, list_recipes, load_recipe
    if (PACKAGE_DIR.parent / 'pyproject.toml').exists():
        fail(f'npe is installed from a checkout ({PACKAGE_DIR}), expected a non-editable install')
    names = list_recipes()
    if 'smoke' not in names or 'longtail_synth' not in names:
        fail(f'the installed package finds these recipes only: {names}')
    load_recipe('smoke')  # resolves npe::smoke_unet.py inside the package
    pip_check()
    print(f'verify_stack: npe {npe.__version__}, {len(names)} recipes: ok')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--torch')
    parser.add_argument('--mmcv', default='2.1.0')
    parser.add_argument('--kit', action='store_true')
    args = parser.parse_args()
    if args.kit:
        kit()
    else:
        stack(args.torch, args.mmcv)


if __name__ == '__main__':
    main()
