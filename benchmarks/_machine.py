"""What the benchmark scripts share: the machine they ran on, and how they write a report."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_report(out: str | Path, meta: dict[str, Any], results: Any,
                 write_markdown: Callable[[Any, dict[str, Any], Path], None]) -> None:
    """Write ``out`` (markdown, by ``write_markdown(results, meta, path)``) and its ``.json`` twin."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    write_markdown(results, meta, out)
    print(f"wrote {out} and {out.with_suffix('.json')}")
