"""MMEngine checkpoints load with torch's default ``weights_only=True``, and nothing else gets in."""
from __future__ import annotations

import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer

from npe.checkpoint import allow_mmengine_checkpoints


class _Sneaky:
    """Pickles as ``getattr(HistoryBuffer, name)``, like HistoryBuffer's own methods do."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return getattr, (HistoryBuffer, self.name)


def test_history_buffer_round_trip(tmp_path):
    allow_mmengine_checkpoints()
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(2.5)
    torch.save({'message_hub': {'loss': buffer}, 'w': torch.ones(2)}, tmp_path / 'c.pth')
    loaded = torch.load(tmp_path / 'c.pth')  # weights_only is torch's default
    assert loaded['message_hub']['loss'].mean() == 2.0
    assert loaded['message_hub']['loss'].max() == 2.5


@pytest.mark.parametrize('name', ['__subclasses__', '__init__', '_statistics_methods'])
def test_getattr_is_limited_to_history_buffer_methods(tmp_path, name):
    allow_mmengine_checkpoints()
    torch.save({'x': _Sneaky('min')}, tmp_path / 'ok.pth')
    assert torch.load(tmp_path / 'ok.pth')['x'] is HistoryBuffer.min
    torch.save({'x': _Sneaky(name)}, tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'bad.pth')
