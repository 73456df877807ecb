"""The ``deepfer`` command: parse options into a frozen dataclass, call the library, print.

Every :class:`~deepfer.errors.DeepferError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from deepfer.errors import DeepferError


@dataclass(frozen=True)
class DataInfoOptions:
    dataset: str
    path: str
    protocol: str | None = None
    size: int = 48
    labels: str = "majority"
    fer2013_csv: str | None = None
    seed: int = 0
    json: bool = False
    no_cache: bool = False


def data_info(opts: DataInfoOptions) -> int:
    from deepfer.data import describe, load_dataset, split

    extra = {}
    if opts.dataset == "ferplus":
        extra = {"labels": opts.labels, "fer2013_csv": opts.fer2013_csv}
    data = load_dataset(opts.dataset, opts.path, size=opts.size, use_cache=not opts.no_cache, **extra)
    info = describe(data, split(data, opts.protocol, opts.seed) if opts.protocol else None)
    if opts.json:
        print(json.dumps(info))
    else:
        print(_format_info(info))
    return 0


def _format_info(info: dict) -> str:
    classes = info["classes"]
    width = max(len(c) for c in [*classes, "split"]) + 1
    lines = [f"{info['dataset']}: {info['images']} images of {info['image_size'][0]}x"
             f"{info['image_size'][1]} from {info['source']}"]
    if info.get("subjects"):
        lines.append(f"subjects: {info['subjects']}")
    if "protocol" in info:
        lines.append(f"protocol {info['protocol']}: {info['description']}")
    names = list(info["splits"])
    head = "class".ljust(width) + "".join(n.rjust(12) for n in names)
    lines += ["", head]
    for c in classes:
        lines.append(c.ljust(width) + "".join(str(info["splits"][n][c]).rjust(12) for n in names))
    lines.append("total".ljust(width) + "".join(str(sum(info["splits"][n].values())).rjust(12) for n in names))
    for f in info.get("folds", []):
        sizes = ", ".join(f"{p} {sum(c.values())}" for p, c in f["splits"].items())
        lines.append(f"{f['name']}: {sizes}; test subjects {', '.join(f['test_subjects'][:12])}"
                     + (" ..." if len(f["test_subjects"]) > 12 else ""))
    if "dropped" in info:
        lines.append(f"images found {info['images_found']}, dropped by label mode "
                     f"{info['label_mode']!r}: {info['dropped']}")
    d = info["duplicates"]
    lines.append(
        f"\nduplicates: {d['groups']} groups of pixel-identical images ({d['images_in_groups']} "
        f"images), {d['groups_across_train_test']} across train/test, "
        f"{d['groups_with_conflicting_labels']} with conflicting labels"
    )
    for w in info.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfer", description="Facial expression recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True)
    info = data.add_parser("info", help="counts per split and class, subjects, duplicates")
    info.add_argument("dataset", help="fer2013, ferplus, ckplus, jaffe or ferg")
    info.add_argument("path", help="dataset file, folder, .zip or .tar.gz")
    info.add_argument("--protocol", help="named split, e.g. official, subject-10fold, loso")
    info.add_argument("--size", type=int, default=48, help="image side after resizing")
    info.add_argument("--labels", choices=["majority", "soft"], default="majority", help="FER+ label mode")
    info.add_argument("--fer2013-csv", help="FER+: take pixels from this fer2013.csv")
    info.add_argument("--seed", type=int, default=0)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-cache", action="store_true", help="decode again, ignoring the cache")
    info.set_defaults(run=lambda a: data_info(_options(DataInfoOptions, a)))
    return parser


def _options(cls: type, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in vars(args).items() if k in fields})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except DeepferError as exc:
        print(f"deepfer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepfer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
