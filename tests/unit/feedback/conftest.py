"""The demo city's feedback configuration, loaded once: routing and marks are built from it."""

from __future__ import annotations

import pytest

from koho.config import KohoConfig, load_config
from koho.config.loader import include_dir
from koho.feedback.marks import Marker
from koho.feedback.routing import Router


@pytest.fixture(scope="session")
def demo_config() -> KohoConfig:
    config = load_config(include_dir() / "config")
    assert config.problems == [] and config.policy is not None
    return config


@pytest.fixture(scope="session")
def router(demo_config: KohoConfig) -> Router:
    assert demo_config.policy is not None
    return Router(demo_config.departments, demo_config.policy.pr_department, demo_config.policy.feedback.routing)


@pytest.fixture(scope="session")
def marker(demo_config: KohoConfig) -> Marker:
    assert demo_config.policy is not None
    return Marker(demo_config.policy.feedback.marks)
