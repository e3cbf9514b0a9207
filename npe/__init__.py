"""Neural Prior Estimator (NPE / NPE-LA) for MMSegmentation, and the kit that reproduces the paper.

``import npe`` is cheap; the MMSeg parts load on first use of :func:`apply_npe` or :func:`register`.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["apply_npe", "register", "__version__"]


def register() -> None:
    """Register the wrapper head, the loss, the hooks and the built-in datasets with MMSeg."""
    import importlib

    from npe.config import CUSTOM_IMPORTS

    for module in CUSTOM_IMPORTS:
        importlib.import_module(module)


def apply_npe(cfg, num_pem: int = 1, pem_type: str = "auto", scale_factor: float = 1.0,
              freeze_backbone: bool = False, freeze_decode: bool = False, load_from=None,
              protocol: str = "upstream"):
    """Make an MMSeg config an NPE config; see :func:`npe.config.apply_npe`."""
    from npe.config import apply_npe as _apply

    register()
    return _apply(cfg, num_pem=num_pem, pem_type=pem_type, scale_factor=scale_factor,
                  freeze_backbone=freeze_backbone, freeze_decode=freeze_decode,
                  load_from=load_from, protocol=protocol)
