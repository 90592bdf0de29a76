"""Shared fixtures: a seeded Generator per test, so every test is reproducible on its own."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(231)
