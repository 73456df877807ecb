"""The CLI is thin: each subcommand's options become one frozen dataclass, ``--version`` answers,
and every error is one ``deepfer: error:`` line (never ``deepfer: error: deepfer: ...``)."""

from __future__ import annotations

import dataclasses

import pytest

from deepfer import cli
from deepfer.version import __version__

COMMANDS = {
    ("data", "info", "jaffe", "x"): cli.DataInfoOptions,
    ("train", "--epochs", "3", "--teacher", "a", "b"): cli.TrainOptions,
    ("evaluate", "--weights", "w", "--dataset", "d", "--data", "p", "--protocol", "official"): cli.EvaluateOptions,
    ("predict", "photo.jpg"): cli.PredictOptions,
    ("export", "--out", "m.onnx"): cli.ExportOptions,
    ("explain", "photo.jpg", "--out", "o"): cli.ExplainOptions,
    ("models", "--json"): cli.ModelsOptions,
    ("serve", "--port", "9", "--max-upload-mb", "2"): cli.ServeSettings,
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
    opts = cli.serve_settings(args) if argv[0] == "serve" else cli._options(COMMANDS[argv], args)
    assert type(opts) is COMMANDS[argv]
    assert dataclasses.is_dataclass(opts) and type(opts).__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.__setattr__(dataclasses.fields(opts)[0].name, None)
    if isinstance(opts, cli.TrainOptions):
        assert opts.epochs == 3 and opts.teacher == ("a", "b") and opts.config is None
    if isinstance(opts, cli.ServeSettings):
        assert opts.port == 9 and opts.host == "127.0.0.1" and opts.max_upload_bytes == 2 * 1024 * 1024
