"""The memorisation study: in-process engine end to end (smoke, slow), resume, its summary maths, the nnU-Net
check's trainers as nnU-Net finds and builds them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from benchmarks import memorisation
from benchmarks.memorisation import CONFIGS, FIELDS
from benchmarks.memorisation_report import lr_factor, markdown_table, sustained_onset
from benchmarks.robustness_report import FIELDS as GRID_FIELDS
from benchmarks.studykit.arms import ARMS, SCHEDULES
from benchmarks.studykit.store import KEY_FIELDS, load_runs

SMOKE_ARMS = ["dice_ce", "tloss_absolute", "tloss"]


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memorisation")
    out = tmp / "m.json"
    argv = ["--config", "smoke", "--settings", "a0.7b0.7", "--arms", *SMOKE_ARMS, "--out", str(out),
            "--work-dir", str(tmp / "work")]
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            patch.setenv(variable, str(tmp / "unused"))  # main() points them at --work-dir; restored afterwards
        codes = [memorisation.main(argv), memorisation.main([*argv, "--resume"])]
        repeat = memorisation.main(["--config", "smoke", "--settings", "a0.7b0.7", "--arms", "tloss_absolute",
                                    "--out", str(tmp / "repeat.json"), "--work-dir", str(tmp / "work")])
    return tmp, codes + [repeat]


@pytest.mark.slow
def test_smoke_runs_are_well_formed_and_resume_skips_them(smoke_study, capsys):
    tmp, codes = smoke_study
    assert codes == [0, 0, 0]
    runs = json.loads((tmp / "m.json").read_text())["runs"]
    assert [r["loss"] for r in runs] == SMOKE_ARMS  # the resumed second call added nothing
    smoke = CONFIGS["smoke"]
    for run in runs:
        assert {*KEY_FIELDS, *FIELDS["inprocess"]} <= set(run)
        assert run["trainer"] == ARMS[run["loss"]] and run["n_corrupted"] >= 1
        logged = list(range(smoke.log_every, smoke.iterations + 1, smoke.log_every))
        assert [point[0] for point in run["curve"]] == logged
        for (iteration, memo, test_dice, _), entry in zip(run["curve"], run["log"]):
            assert entry["iteration"] == iteration and entry["test_dice"] == test_dice
            assert memo == pytest.approx(entry["dice_noisy"] - entry["dice_clean"])
            assert 0 <= test_dice <= 1 and entry["mse_corrupted"] >= 0
        first_positive = next((p[0] for p in run["curve"] if p[1] > 0), None)
        assert run["onset"] == first_positive and run["test_dice_final"] == run["curve"][-1][2]
    dice_ce, absolute, capped = runs
    assert dice_ce["nu_final"] is None and dice_ce["log"][-1]["weight_corrupted"] is None
    assert absolute["nu_final"] != 1.0 and absolute["log"][-1]["weight_corrupted"] >= 1  # nu has its optimiser
    # Same seed: same initialisation and batches, so the very first logged point of two T-Loss recipes that agree
    # until the default's cap is reached (100 > the starting mean weight ~ 1 / MSE) is identical.
    assert capped["log"][0]["loss"] == pytest.approx(absolute["log"][0]["loss"])
    # Deterministic: a second study of the same run reproduces it exactly.
    repeat = json.loads((tmp / "repeat.json").read_text())["runs"][0]
    assert repeat["curve"] == absolute["curve"]
    md = (tmp / "m.md").read_text()
    assert md.startswith("# Memorisation study") and "| a0.7b0.7 | tloss | 1 |" in md
    assert (tmp / "m_a0.7b0.7.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "x.json"
    assert memorisation.main(["--settings", "a0.9b0.9", "--out", str(out)]) == 2
    assert "unknown setting" in capsys.readouterr().err
    assert memorisation.main(["--arms", "focal", "--out", str(out)]) == 2
    assert "unknown arm" in capsys.readouterr().err
    assert memorisation.main(["--engine", "nnunet", "--arms", "tloss_cap20", "--out", str(out)]) == 2
    assert "for engine nnunet" in capsys.readouterr().err
    assert memorisation.main(["--workers", "0", "--out", str(out)]) == 2
    assert memorisation.main(["--summarize", "--out", str(out)]) == 2  # no results file yet
    assert not out.exists()


def test_sustained_onset_ignores_blips():
    curve = [[50, 0.001, 0.1, None], [100, -0.1, 0.5, None], [150, 0.02, 0.6, None], [200, 0.3, 0.7, None]]
    assert sustained_onset(curve) == 150
    assert sustained_onset(curve[:2]) is None
    assert sustained_onset([[50, None, 0.1, None]]) is None


def test_lr_factor_sees_a_plateau_drop():
    poly = [(1 - ((i - 1) // 50) / 16) ** 0.9 * 1e-2 for i in (50, 400, 800)]
    run = {"iterations": 800, "config": "cpu",
           "log": [{"iteration": i, "lr": lr} for i, lr in zip((50, 400, 800), poly)]}
    assert lr_factor(run, CONFIGS) == pytest.approx(1.0)
    run["log"][-1]["lr"] *= 0.1
    assert lr_factor(run, CONFIGS) == pytest.approx(0.1)


def test_paired_difference_to_dice_ce():
    runs = []
    for seed, (a, b) in enumerate([(0.80, 0.75), (0.82, 0.78), (0.79, 0.73)]):
        for arm, value in (("dice_ce", b), ("tloss_absolute", a)):
            runs.append({"setting": "a0.7b0.7", "loss": arm, "seed": seed, "test_dice_final": value,
                         "curve": [[50, 0.1, value, None]], "memorisation_final": 0.1, "onset": 50, "nu_final": None,
                         "iterations": 800, "config": "cpu", "log": [{"iteration": 50, "lr": 0.01}]})
    table = markdown_table(runs, CONFIGS)
    diffs = np.array([5.0, 4.0, 6.0])
    half = 4.302652729911275 * diffs.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert f"5.0 [{5 - half:.1f}, {5 + half:.1f}]" in table


def test_nnunet_check_trainers_are_found_and_narrowed(monkeypatch, tmp_path):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from benchmarks.studykit.commands import CommandEngine
    from benchmarks.studykit.data import Family
    from tloss_nnunet.nnunet import nnUNetTrainerTLoss, nnUNetTrainerTLoss_freeze
    from tloss_nnunet.repro.study_trainers import STUDY_SIZES_VARIABLE

    # the stock-command engine's environment: the kit's shim finds the _study trainers, sized by the config
    env = CommandEngine(Family(tmp_path / "raw", {}), CONFIGS["cpu"], tmp_path / "work").env(0)
    for variable in ("nnUNet_extTrainer", STUDY_SIZES_VARIABLE):
        monkeypatch.setenv(variable, env[variable])
    classes = {arm: recursive_find_trainer_class_by_name(name) for arm, name in SCHEDULES["study"].items()}
    assert issubclass(classes["tloss"], nnUNetTrainerTLoss) and not issubclass(classes["dice_ce"], nnUNetTrainerTLoss)
    assert issubclass(classes["tloss_freeze"], nnUNetTrainerTLoss_freeze)
    arch = {"n_stages": 5, "features_per_stage": [32, 64, 128, 256, 512], "conv_op": "torch.nn.modules.conv.Conv2d",
            "kernel_sizes": [[3, 3]] * 5, "strides": [[1, 1]] + [[2, 2]] * 4, "n_conv_per_stage": [2] * 5,
            "n_conv_per_stage_decoder": [2] * 4, "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}}
    plans = {"dataset_name": "Dataset999_X", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": [1, 1],
             "original_median_shape_after_transp": [64, 64], "image_reader_writer": "NaturalImage2DIO",
             "transpose_forward": [0, 1], "transpose_backward": [0, 1], "experiment_planner_used": "x",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
             "configurations": {"2d": {"data_identifier": "x", "preprocessor_name": "DefaultPreprocessor",
                                       "batch_size": 2, "patch_size": [64, 64], "spacing": [1, 1],
                                       "normalization_schemes": ["ZScoreNormalization"],
                                       "use_mask_for_norm": [False], "architecture": {
                                           "network_class_name":
                                               "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                           "arch_kwargs": arch,
                                           "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}}}
    manager = PlansManager(plans)
    network = classes["tloss"].build_network_architecture(manager, manager.get_configuration("2d"), 3, 2, False)
    widths = [stage[0].convs[0].conv.out_channels for stage in network.encoder.stages]
    assert widths == list(CONFIGS["cpu"].features)
    assert network(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    monkeypatch.setattr(classes["dice_ce"].__mro__[1], "__init__", _stub_base_init)
    trainer = classes["dice_ce"](plans, "2d", 0, {})
    cpu = CONFIGS["cpu"]
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (
        cpu.iterations // cpu.iterations_per_epoch, cpu.iterations_per_epoch, 5)


def _stub_base_init(self, plans, configuration, fold, dataset_json, device=None):
    """Stands in for nnUNetTrainer.__init__ (which needs a dataset on disk): the stock schedule only."""
    self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1000, 250, 50


@pytest.mark.slow
def test_grid_view_writes_the_loss_arms_in_the_robustness_format(smoke_study):
    tmp, _ = smoke_study
    grid = tmp / "grid" / "robustness.json"
    written = memorisation.summarize(tmp / "m.json", grid)
    assert {grid, grid.with_suffix(".md"), grid.with_suffix(".png")} <= set(written)
    runs = {r["loss"]: r for r in json.loads((tmp / "m.json").read_text())["runs"]}
    records = load_runs(grid, GRID_FIELDS)  # the robustness study's reader: every field it needs is there
    assert [r["loss"] for r in records] == ["dice_ce", "tloss"]  # the recipe variant is not a grid arm
    for record in records:
        run = runs[record["loss"]]
        assert record["config"] == "memorisation-smoke" and record["dice_pooled"] == run["test_dice_final"]
        assert record["train_dice_noisy"] == run["log"][-1]["dice_noisy"]
        assert record["train_dice_clean"] == run["log"][-1]["dice_clean"]
    assert records[0]["nu_trace"] is None and records[1]["nu_trace"][-1][1] == runs["tloss"]["nu_final"]
    markdown = grid.with_suffix(".md").read_text()
    assert "--grid-out" in markdown and "`memorisation-smoke`" in markdown and "nnUNetTrainerTLoss" in markdown
    assert "### T-Loss minus nnU-Net's Dice+CE, paired by seed" in markdown
    assert grid.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_grid_view_refuses_the_nnunet_checks_results(tmp_path, capsys):
    out = tmp_path / "check.json"
    record = {key: 0.0 for key in FIELDS["nnunet"]} | {"setting": "clean", "loss": "tloss", "seed": 0, "config": "cpu",
                                                       "machine": "m", "engine": "nnunet-commands"}
    out.write_text(json.dumps({"runs": [record]}))
    code = memorisation.main(["--summarize", "--out", str(out), "--grid-out", str(tmp_path / "g.json")])
    assert code == 2 and "--grid-out" in capsys.readouterr().err and not (tmp_path / "g.json").exists()
