"""The CLI is thin: each subcommand's options become one frozen dataclass, ``--version`` answers,
and every error is one ``deepfer: error:`` line (never ``deepfer: error: deepfer: ...``)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from deepfer import cli
from deepfer.options import DETECTOR_CHOICES, from_namespace
from deepfer.version import __version__

COMMANDS = {
    ("data", "info", "jaffe", "x"): cli.DataInfoOptions,
    ("train", "--epochs", "3", "--teacher", "a", "b"): cli.TrainOptions,
    ("evaluate", "--weights", "w", "--dataset", "d", "--data", "p", "--protocol", "official"): cli.EvaluateOptions,
    ("predict", "photo.jpg"): cli.PredictOptions,
    ("export", "--out", "m.onnx"): cli.ExportOptions,
    ("explain", "photo.jpg", "--out", "o"): cli.ExplainOptions,
    ("models", "--json"): cli.ModelsOptions,
    ("serve", "--port", "9", "--max-upload-mb", "2", "--max-megapixels", "64"): cli.ServeSettings,
}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"deepfer {__version__}\n"


@pytest.mark.parametrize("argv", [["predict", "--bogus", "x"], [], ["evaluate", "--weights", "w"],
                                  ["predict", "x", "--every", "two"]])
def test_usage_errors_are_one_prefixed_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepfer: error: ") and err.count("\n") == 1
    assert "error: deepfer" not in err and "--help)" in err


@pytest.mark.parametrize("argv", list(COMMANDS), ids=lambda a: a[0])
def test_every_subcommand_parses_into_its_frozen_options(argv: tuple[str, ...]) -> None:
    args = cli.build_parser().parse_args(list(argv))
    opts = from_namespace(COMMANDS[argv], args)
    assert type(opts) is COMMANDS[argv]
    assert dataclasses.is_dataclass(opts) and type(opts).__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.__setattr__(dataclasses.fields(opts)[0].name, None)
    if isinstance(opts, cli.TrainOptions):
        assert opts.epochs == 3 and opts.teacher == ("a", "b") and opts.config is None
    if isinstance(opts, cli.ServeSettings):
        assert opts.port == 9 and opts.host == "127.0.0.1" and opts.max_upload_bytes == 2 * 1024 * 1024
        assert opts.max_pixels == 64_000_000


def test_every_option_is_declared_once_in_its_dataclass() -> None:
    """Each subcommand's flags are its options dataclass's fields (nothing declared beside them),
    and the detector's flags are one group that predict and serve share, with their own defaults."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for cmd in cli.COMMANDS:
        *group, name = cmd.name.split()
        sub = subparsers.choices[group[0]] if group else subparsers
        if group:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name] if group else subparsers.choices[name]
        dests = {a.dest for a in p._actions} - {"help"}
        flagged = {f.name for f in dataclasses.fields(cmd.options) if "cli" in f.metadata}
        if issubclass(cmd.options, cli.DetectorOptions):  # the shared group's flags, its defaults redeclared
            flagged |= {f.name for f in dataclasses.fields(cli.DetectorOptions)}
        assert dests == flagged, cmd.name
    predict = from_namespace(cli.PredictOptions, parser.parse_args(["predict", "x.jpg"]))
    serve = from_namespace(cli.ServeSettings, parser.parse_args(["serve"]))
    assert (predict.detect_step, serve.detect_step) == (1.1, 1.2)


def test_detector_choices_match_the_registry() -> None:
    from deepfer.vision import list_detectors

    assert list(DETECTOR_CHOICES) == ["auto", *list_detectors()] or set(DETECTOR_CHOICES) == {"auto",
                                                                                              *list_detectors()}


def test_library_errors_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """The library's ParameterError names its parameter; the CLI says which flag set it."""
    assert cli.main(["serve", "--detect-step", "1"]) == 2
    assert capsys.readouterr().err == "deepfer: error: --detect-step must be in (1, 2], got 1.0\n"
