"""The suite's sharing of work among pytest-xdist workers holds (scripts/test.sh runs ``--dist loadgroup``)."""

from __future__ import annotations

import pytest


def test_a_test_carries_its_group_under_loadgroup(request: pytest.FixtureRequest) -> None:
    """Every test is in a group (conftest.py: its module's, or a named one for a shared trained model). Under
    ``--dist loadgroup`` xdist appends it to the node id; when a pytest/xdist pairing loses it (pytest 9.2 with
    xdist 3.8), tests of one module scatter over the workers and the shared fixtures are built on each."""
    assert request.node.get_closest_marker("xdist_group") is not None
    if getattr(request.config.option, "loadgroup", False):  # set on xdist's workers for --dist loadgroup
        assert request.node.nodeid.endswith(f"@{__name__}"), request.node.nodeid
