"""Session fixtures shared by several test modules, and how the tests are shared among pytest-xdist workers."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_tloss_model(tmp_path_factory, worker_id: str) -> dict:
    """One tiny T-Loss model trained with the stock nnU-Net commands (see nnunet_commands.py), once per test run.

    Under pytest-xdist the first worker that needs it trains it in the run's shared temporary folder, under a file
    lock; the others wait for the lock and read it. Tests treat it as read-only (a test that trains more copies its
    results folder: ``nnunet_commands.private_results``).
    """
    from filelock import FileLock
    from nnunet_commands import tiny_model_layout, train_tiny_tloss_model

    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "trained_tloss_model"
    shared.mkdir(exist_ok=True)
    with FileLock(str(shared) + ".lock"):
        layout = tiny_model_layout(shared)
        done, failed = shared / "trained", shared / "training_failed"
        if failed.is_file():
            pytest.fail(f"the shared tiny model failed to train in another worker:\n{failed.read_text()}")
        if not done.is_file():
            try:
                train_tiny_tloss_model(layout)
            except BaseException as error:  # the other workers report it instead of retraining over a half-model
                failed.write_text(f"{type(error).__name__}: {error}"[-5000:])
                raise
            done.write_text("fold 0 trained\n")
    return layout


#: The modules that take longest (``scripts/test.sh --durations=25``: 25-170 s each, mostly stock nnU-Net commands),
#: longest first. They are handed out first, so that the two workers of the 2-core machine finish together
#: instead of one running the longest module alone at the end.
LONGEST_MODULES = ("test_demo", "test_robustness_nnunet", "test_gpu_check", "test_audit_faults", "test_suspects_cli",
                   "test_nnunet_e2e", "test_horizon", "test_repair_e2e", "test_repair_study", "test_audit_parts")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (scripts/test.sh), a module's tests stay on one worker, so a module-scoped
    fixture (a converted release, a trained smoke study) is built once; the :data:`LONGEST_MODULES` come first
    (scripts/test.sh passes ``--no-loadscope-reorder``, which keeps this order)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(item.module.__name__ if item.module else "", len(rank)),
                                 position[id(item)]))
