"""Options declared once: a dataclass field's metadata makes its command-line argument."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from deepfer.errors import ParameterError
from deepfer.options import DetectorOptions, add_options, flag_of, from_namespace, option, positive


@dataclass(frozen=True)
class _Opts:
    name: str = option(help="a name", positional=True)
    size: int = option(48, "image side", type=positive)
    upload: int = option(1024, "in KiB", flag="--upload-kb", type=float, cli_default=1.0,
                         to_value=lambda kb: int(kb * 1024))
    tags: tuple[str, ...] = option((), "tags", nargs="*")
    quiet: bool = option(False, "say less")
    hidden: int = 3  # no option: the command line does not offer it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_options(parser, _Opts)
    return parser


def test_fields_become_arguments_and_back() -> None:
    opts = from_namespace(_Opts, _parser().parse_args(["x", "--size", "64", "--upload-kb", "2", "--tags", "a", "b",
                                                       "--quiet"]))
    assert opts == _Opts("x", 64, 2048, ("a", "b"), True)
    assert from_namespace(_Opts, _parser().parse_args(["y"])) == _Opts("y")
    assert [flag_of(f) for f in _Opts.__dataclass_fields__.values() if "cli" in f.metadata][1:3] == [
        "--size", "--upload-kb"]
    with pytest.raises(SystemExit):
        _parser().parse_args(["x", "--hidden", "4"])


def test_detector_options_resolve_into_one_spec_and_errors_name_the_option() -> None:
    spec = DetectorOptions(detector="haar", detect_width=0, detect_step=1.2).spec()
    assert (spec.name, spec.work_width, spec.step) == ("haar", None, 1.2)
    with pytest.raises(ParameterError, match="detect_width must be >= 0") as err:
        DetectorOptions(detect_width=-5).spec()
    assert err.value.param == "detect_width"
