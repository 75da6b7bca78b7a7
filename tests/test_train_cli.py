"""``ccnn-train`` for a newcomer: output options keep the quickstart, anything else says what runs
instead, ``--help`` documents the defaults and the built-in datasets, and a run prints its plan and
estimated time before it trains."""

from __future__ import annotations

import re

import pytest

from ccnn_hf.data import BUILTIN_DATASETS
from ccnn_hf.presets import get_preset
from ccnn_hf.training.train import run
from ccnn_hf.training.args import QUICKSTART, build_parser, parse_args, quickstart_keeps, quickstart_notice
from helpers import reset_accelerate

TINY = ["--hidden", "12", "--blocks", "2", "--kernel_hidden", "8", "--report_to", "none"]
QUICKSTART_MODEL = {"dataset": "digits", "hidden": 32, "blocks": 3, "kernel_hidden": 16, "epochs": 20.0}


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    reset_accelerate()


def _model_and_recipe(args) -> dict:
    return {k: getattr(args, k) for k in QUICKSTART_MODEL}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--report_to", "none"],
        ["--eval_resolutions", "1x,2x", "--test_every", "5", "--save_total_limit", "1"],
        ["--seed", "1", "--cpu"],
        ["--push_to_hub", "--hub_model_id", "me/quick", "--hub_private"],
    ],
)
def test_output_options_keep_the_quickstart(argv):
    args = parse_args(argv)
    assert _model_and_recipe(args) == QUICKSTART_MODEL and args.config == str(QUICKSTART)
    assert args.output_dir == "runs/quickstart" and args.overwrite  # the quickstart replaces its own folder
    assert quickstart_notice(argv) is None


def test_an_output_folder_of_ones_own_keeps_the_quickstart_but_is_never_overwritten(tmp_path):
    """`ccnn-train --output_dir X` trains the quickstart into X; the quickstart's `overwrite: true` is
    for its own runs/quickstart only, so a run already in X is refused, never silently replaced."""
    args = parse_args(["--output_dir", str(tmp_path / "mine")])
    assert _model_and_recipe(args) == QUICKSTART_MODEL
    assert args.output_dir == str(tmp_path / "mine") and not args.overwrite
    assert parse_args(["--output_dir", str(tmp_path / "mine"), "--overwrite"]).overwrite


def test_the_quickstart_resumes():
    args = parse_args(["--resume"])  # not refused as "--resume and --overwrite exclude each other"
    assert _model_and_recipe(args) == QUICKSTART_MODEL and args.resume and not args.overwrite
    assert args.output_dir == "runs/quickstart"


def test_any_other_option_drops_the_quickstart_and_says_so():
    argv = ["--epochs", "3", "--output_dir", "runs/x"]
    args = parse_args(argv)
    assert args.config is None and args.hidden is None and args.preset == "cifar10_4_140" and args.epochs == 3
    notice = quickstart_notice(argv)
    assert notice.startswith("note: not the quickstart: --epochs given without --config")
    assert f"--config {QUICKSTART}" in notice
    assert quickstart_notice(["--config", str(QUICKSTART), "--epochs", "3"]) is None  # a config says what runs
    assert _model_and_recipe(parse_args(["--config", str(QUICKSTART), "--epochs", "3"])) == {
        **QUICKSTART_MODEL,
        "epochs": 3.0,
    }


def test_help_names_the_datasets_the_defaults_and_what_keeps_the_quickstart():
    parser = build_parser()
    text = " ".join(parser.format_help().split())
    for name in BUILTIN_DATASETS:
        assert re.search(rf"[(\s]{name}[,)]", text), name
    assert "aeon:NAME" in text
    assert (
        "--epochs EPOCHS training epochs (default: the preset's, e.g. 350 for cifar10_4_140; the quickstart: 20)"
        in text
    )
    assert "(default: runs/ccnn; the quickstart: runs/quickstart)" in text
    keeps = quickstart_keeps(parser)
    assert {"output_dir", "overwrite", "resume", "report_to", "eval_resolutions", "seed", "cpu"} <= set(keeps)
    assert not {"dataset", "preset", "epochs", "max_steps", "hidden", "init_from"} & set(keeps)
    assert "output (these, --seed and --cpu keep the quickstart)" in text
    for action in parser._actions:  # every option with a default other than unset says what it is
        if action.default not in (None, False, []) and action.dest != "help":
            assert action.help and "default" in action.help, action.dest


def test_a_run_prints_its_plan_and_estimated_time_before_training(tmp_path, capsys):
    run(
        ["--dataset", "digits", *TINY, "--max_steps", "16", "--eval_resolutions", "1x"]
        + ["--output_dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    # the options that drop the quickstart, not the output ones (--eval_resolutions, --output_dir, --report_to)
    assert "note: not the quickstart: --blocks --dataset --hidden --kernel_hidden --max_steps given" in out
    assert "model: cifar10_4_140 (hidden 12, blocks 2, kernel_hidden 8), 2,450 parameters" in out
    assert "plan: 16 optimiser steps of batch 64 (0.727 epochs of 22 steps; --max_steps)" in out
    estimate = re.search(
        r"estimate: training takes ~(\d+) s for 16 steps \(([\d.e-]+) s per step over steps 4-13;", out
    )
    assert estimate and 0 < float(estimate.group(2)) < 60, out
    assert out.index("plan:") < out.index("estimate:") < out.index("accuracy")


class _Plan(Exception):
    """Stops a run at its plan."""


def _stop_at_plan(trainer) -> None:
    raise _Plan(trainer._plan())


def test_the_plan_of_the_presets_recipe_says_how_to_shorten_it(tmp_path, monkeypatch):
    import ccnn_hf.training.train as train

    monkeypatch.setattr(train.Trainer, "train", _stop_at_plan)
    with pytest.raises(_Plan) as plan:
        run(["--dataset", "digits", *TINY, "--output_dir", str(tmp_path)])
    assert str(plan.value) == (
        "plan: 7,700 optimiser steps of batch 64 (350 epochs of 22 steps; the preset's 350 epochs: --epochs, "
        "--max_steps or --time_limit shorten it); the estimated time follows once the first steps are timed"
    )


def test_every_readme_training_command_has_a_budget_and_states_its_time(tmp_path, monkeypatch):
    """No README command trains a preset's whole official recipe (hours to a day on a CPU) unannounced:
    each sets --epochs, --max_steps or --time_limit itself or through its config (the quickstart's, the
    README's run.yaml), and states its measured time beside it, or marks its data as the reader's own."""
    from test_readme import bash_commands, readme_blocks

    monkeypatch.chdir(tmp_path)
    lines = []
    for language, code in readme_blocks():
        if language == "yaml":  # run.yaml, as the README's readers write it
            (tmp_path / re.match(r"#\s*(\S+\.ya?ml)", code).group(1)).write_text(code, encoding="utf-8")
        elif language == "bash":
            lines += [line for line in code.splitlines() if line.startswith(("ccnn-train", "accelerate launch"))]
    assert len(lines) >= 12
    for line in lines:
        words = bash_commands(line)[0]
        args = parse_args(words[words.index("ccnn_hf.training.train") + 1 :] if words[0] == "accelerate" else words[1:])
        assert args.epochs or args.max_steps or args.time_limit, line
        comment = line.partition(" #")[2]
        assert re.search(r"~\d+(\.\d+)? (s|min|h)\b", comment) or "placeholder" in comment, line


def test_causal_is_a_model_override_on_the_command_line_and_in_config_files(tmp_path):
    assert parse_args(["--preset", "smnist_4_140", "--causal", "false"]).causal is False
    assert parse_args(["--preset", "smnist_4_140", "--causal", "True"]).causal is True
    config = tmp_path / "centred.yaml"
    config.write_text("preset: smnist_4_140\ncausal: false\n")
    assert parse_args(["--config", str(config)]).causal is False
    with pytest.raises(SystemExit):
        parse_args(["--preset", "smnist_4_140", "--causal", "maybe"])


def test_causal_false_trains_and_saves_a_centred_sequence_model(tmp_path):
    import json

    out = tmp_path / "run"
    argv = ["--preset", "smnist_4_140", "--dataset", "digits_seq", *TINY, "--max_steps", "1", "--output_dir", str(out)]
    assert get_preset("smnist_4_140").model["causal"] is True  # what the flag overrides
    run([*argv, "--causal", "false"])
    assert json.loads((out / "config.json").read_text())["causal"] is False


def test_a_builtin_config_is_read_by_its_name_unless_a_file_of_that_name_exists(tmp_path, monkeypatch):
    args = parse_args(["--config", "timeseries", "--dataset", "aeon:GunPoint", "--patience", "9"])
    assert (args.preset, args.causal, args.augment, args.val_split, args.max_steps) == (
        "smnist_4_140",
        False,
        True,
        0.2,
        1000,
    )
    assert args.patience == 9  # the command line wins
    assert "timeseries" in build_parser().format_help()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "timeseries").write_text('{"max_steps": 7}')  # the reader's own file of that name
    assert parse_args(["--config", "timeseries"]).max_steps == 7


def test_a_negating_flag_on_the_command_line_wins_over_the_config(tmp_path):
    """``--config timeseries`` turns augmentation on; ``--no_augment`` on the same command line turns
    it off (the command line wins) instead of failing as if both flags had been typed."""
    args = parse_args(["--config", "timeseries", "--dataset", "aeon:GunPoint", "--no_augment"])
    assert (args.augment, args.no_augment) == (False, True)
    config = tmp_path / "plain.yaml"
    config.write_text("preset: smnist_4_140\nno_augment: true\n")
    args = parse_args(["--config", str(config), "--augment"])
    assert (args.augment, args.no_augment) == (True, False)
    with pytest.raises(SystemExit):  # both on the command line: still refused
        parse_args(["--augment", "--no_augment"])


def test_a_flag_typed_with_its_default_value_still_wins_over_the_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("preset: smnist_4_140\nclip_seconds: 2.0\nbatch_size: 8\n")
    args = parse_args(["--config", str(config), "--clip_seconds", "1.0"])  # 1.0 is the flag's default
    assert (args.clip_seconds, args.batch_size) == (1.0, 8)


def test_a_run_recorded_before_sine_band_resumes_only_with_its_band(tmp_path):
    """A run folder written before ``--sine_band`` existed trained with ``"equal"``: resuming it
    without the flag would build another model, so it is refused with the run's value named, and
    ``--sine_band equal`` resumes it. A run recorded with the flag left out (the new default) resumes as it was."""
    from ccnn_hf.training.errors import UserError
    from ccnn_hf.training.output import _options, check_resume_options, recorded_options

    command = ["--output_dir", str(tmp_path), "--dataset", "digits"]
    options = _options(parse_args(command))  # what a run's marker records
    old = {k: v for k, v in options.items() if k != "sine_band"}
    assert recorded_options({"options": old})["sine_band"] == "equal"
    assert recorded_options({"options": options})["sine_band"] is None
    with pytest.raises(UserError, match=r"--sine_band None \(the run has 'equal'\)"):
        check_resume_options({"options": old}, parse_args(command))
    check_resume_options({"options": old}, parse_args([*command, "--sine_band", "equal"]))
    check_resume_options({"options": options}, parse_args(command))
