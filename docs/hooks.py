"""MkDocs hooks: publish ``benchmarks/`` (its results pages, pictures and JSON) beside the guides,
so that the guides' links to ``../benchmarks/X.md`` (right when the files are read on disk)
resolve in the site too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PUBLISHED = {".md", ".png", ".json"}


def on_files(files: Files, config: Any) -> Files:
    root = Path(config["docs_dir"]).parent
    for path in sorted((root / "benchmarks").rglob("*")):
        if path.is_file() and path.suffix in PUBLISHED:
            files.append(File(str(path.relative_to(root)), str(root), config["site_dir"],
                              config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    # Guides sit at the top of docs/, where benchmarks/ is published.
    return markdown.replace("](../benchmarks/", "](benchmarks/") if "/" not in page.file.src_uri else markdown
