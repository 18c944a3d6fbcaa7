"""Session fixtures shared by several test modules, and how the tests are shared among pytest-xdist workers."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_tloss_model(tmp_path_factory) -> dict:
    """One tiny T-Loss model trained with the stock nnU-Net commands (see nnunet_commands.py)."""
    from nnunet_commands import train_tiny_tloss_model

    return train_tiny_tloss_model(tmp_path_factory.mktemp("nnunet_cli"))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (scripts/test.sh), a module's tests stay on one worker, so a module-scoped
    fixture (a converted release, a trained smoke study) is built once; modules that share a session fixture
    name one group themselves (``xdist_group("trained_tloss_model")``)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))
