"""Write the sample outputs shown in README.md and docs/*.md by running the commands they show.

Each sample sits between ``<!-- sample: NAME -->`` and ``<!-- /sample -->``; this script runs
NAME's command in the repository root and puts its output there, so that no sample goes stale.

    python docs/gen_samples.py           # rewrite the samples in place (make docs-samples)
    python docs/gen_samples.py --check   # exit 1, with a diff, if any sample differs from a fresh run

``--check`` (run by tests/test_docs.py) compares numbers within a small tolerance: the last digit
of a probability may differ between CPUs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = "src/deepfer/assets/astronaut.png"
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"(<!-- sample: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /sample -->)", re.S)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")

PYTHON_QUICKSTART = f"""\
from deepfer import Recognizer

rec = Recognizer()                                   # the default detector and weights
faces = rec.predict("{PHOTO}")   # a path, PIL image or numpy array
face = faces[0]
print(face.label, round(face.score, 3), face.box)
print(face.quality)
table = rec.predict_table("{PHOTO}")  # folders and videos too: a pandas DataFrame
print(table[["path", "face", "label", "score", "happy"]])
"""


def _run(command: str) -> str:
    """Output of a shell command as a user types it: ``deepfer`` and ``python`` are this Python,
    the package is this checkout's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
           "COLUMNS": "120"}
    shell = re.sub(r"(?<![\w/.-])python(?= -)", sys.executable, command)
    shell = re.sub(r"^deepfer(?= )", f"{sys.executable} -m deepfer.cli", shell)
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(f"{command!r} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def console(command: str) -> Callable[[], str]:
    return lambda: f"```console\n$ {command}\n{_run(command).rstrip()}\n```\n"


def python_quickstart() -> str:
    out = _run(f"python - <<'EOF'\n{PYTHON_QUICKSTART}EOF")
    shown = "".join(f"{line}\n" for line in PYTHON_QUICKSTART.splitlines())
    return f"```python\n{shown}```\n\nprints\n\n```text\n{out.rstrip()}\n```\n"


def weights_table() -> str:
    """The shipped weights (``deepfer models --json``) with their test accuracy from
    benchmarks/RESULTS.json (written by ``make results``)."""
    listing = json.loads(_run("deepfer models --json"))
    results = json.loads((ROOT / "benchmarks" / "RESULTS.json").read_text())
    lines = ["| weights | network | trained on (protocol) | classes | test accuracy |",
             "| --- | --- | --- | --- | --- |"]
    for w in listing["weights"]:
        r = results.get(w["name"], {})
        acc = f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else "-"
        name = f"`{w['name']}`" + (" (default)" if w["name"] == listing.get("default") else "")
        leaky = "" if r.get("subject_independent", True) else ", leaky"
        lines.append(f"| {name} | `{w['architecture']}` | {w['dataset']} (`{w['protocol']}`{leaky}) | "
                     f"{len(w['labels'])} | {acc} |")
    return "\n".join(lines) + "\n"


SAMPLES: dict[str, Callable[[], str]] = {
    "table": console(f"deepfer predict {PHOTO}"),
    "json": console(f"deepfer predict {PHOTO} --format json"),
    "json-indented": console(f"deepfer predict {PHOTO} --format json | python -m json.tool"),
    "csv": console(f"deepfer predict {PHOTO} --format csv"),
    "models": console("deepfer models"),
    "python": python_quickstart,
    "weights": weights_table,
}


def render(text: str, cache: dict[str, str]) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in SAMPLES:
            raise SystemExit(f"unknown sample {name!r}; known: {', '.join(SAMPLES)}")
        if name not in cache:
            cache[name] = SAMPLES[name]()
        return f"{m[1]}{cache[name]}{m[4]}"

    return MARKER.sub(fill, text)


def same(a: str, b: str) -> bool:
    """Equal text, numbers equal to within 1e-3 (relative) or 2e-6 (absolute)."""
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    return all(abs(float(x) - float(y)) <= max(2e-6, 1e-3 * abs(float(y)))
               for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a sample is stale")
    args = parser.parse_args(argv)
    cache: dict[str, str] = {}
    stale = []
    for path in FILES:
        text = path.read_text()
        fresh = render(text, cache)
        if args.check:
            if not same(text, fresh):
                stale.append(path)
                sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), fresh.splitlines(True),
                                                           str(path), "fresh"))
        elif fresh != text:
            path.write_text(fresh)
            print(f"wrote {_name(path)}")
    if stale:
        print(f"stale samples in {', '.join(_name(p) for p in stale)}: run python docs/gen_samples.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
