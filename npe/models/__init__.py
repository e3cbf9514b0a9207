"""NPE model parts, registered in MMSegmentation's MODELS registry on import."""
from npe.constants import PEM_TYPES
from npe.models.loss import OneWayLogisticLoss
from npe.models.wrapper import SUPPORTED_HEADS, MultiHeadWrapper, check_head, pem_config

__all__ = ['MultiHeadWrapper', 'OneWayLogisticLoss', 'SUPPORTED_HEADS', 'PEM_TYPES', 'check_head',
           'pem_config']
