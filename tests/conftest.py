"""Session fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_tloss_model(tmp_path_factory) -> dict:
    """One tiny T-Loss model trained with the stock nnU-Net commands (see nnunet_commands.py)."""
    from nnunet_commands import train_tiny_tloss_model

    return train_tiny_tloss_model(tmp_path_factory.mktemp("nnunet_cli"))
