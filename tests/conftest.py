"""Shared fixtures."""

from __future__ import annotations

import pytest
from torch import nn

from helpers import make_cnn, make_mlp


@pytest.fixture
def mlp() -> nn.Module:
    return make_mlp()


@pytest.fixture
def cnn() -> nn.Module:
    return make_cnn()
