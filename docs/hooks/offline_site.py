"""MkDocs hook that keeps BioSegment's documentation site free of the network.

Two things a stock MkDocs theme would fetch at view time are produced at build time instead:

- every mermaid source in ``docs/diagrams/*.mmd`` is rendered to ``diagrams/<name>.svg`` with
  mermaidx (mermaid.js running in an embedded QuickJS interpreter: no browser, no Node.js, no
  CDN), so pages show the diagrams as plain images;
- code blocks are coloured by Pygments when the Markdown is converted, and the stylesheet for
  those colours is written as ``css/pygments.css``.

Rendered diagrams are cached under ``build/docs-cache/`` by the hash of their source and the
renderer's version, so a rebuild only renders what changed. A diagram that does not render
stops the build with the mermaid error and the file's name.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.offline_site")

DIAGRAM_FOLDER = "diagrams"
PYGMENTS_CSS = "css/pygments.css"


def _cache_dir(config) -> Path:
    # mkdocs.yml sits at the repository root; build/ is ignored by git and cleaned by make clean.
    return Path(config.config_file_path).resolve().parent / "build" / "docs-cache"


def render_diagram(source: str, *, cache: Path | None = None) -> str:
    """Return the SVG text of one mermaid diagram, from ``cache`` when it is already there."""
    import mermaidx

    digest = hashlib.sha256(f"{mermaidx.__version__}\n{source}".encode()).hexdigest()[:24]
    cached = None if cache is None else cache / f"{digest}.svg"
    if cached is not None and cached.is_file():
        return cached.read_text(encoding="utf-8")
    svg = mermaidx.render(source).svg()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(".part")
        temporary.write_text(svg, encoding="utf-8")
        temporary.replace(cached)
    return svg


def on_files(files: Files, config) -> Files:
    cache = _cache_dir(config)
    for file in list(files):
        src = Path(file.src_uri)
        if src.parent.as_posix() != DIAGRAM_FOLDER or src.suffix != ".mmd":
            continue
        source = Path(file.abs_src_path).read_text(encoding="utf-8")
        try:
            svg = render_diagram(source, cache=cache)
        except Exception as exc:  # mermaid's own message says which line is wrong
            raise PluginError(f"docs/{file.src_uri}: mermaid could not render it: {exc}") from exc
        files.append(File.generated(config, f"{DIAGRAM_FOLDER}/{src.stem}.svg", content=svg))
        log.debug("rendered %s", file.src_uri)
    files.append(File.generated(config, PYGMENTS_CSS, content=_pygments_css()))
    return files


def _pygments_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="friendly").get_style_defs(".codehilite")
