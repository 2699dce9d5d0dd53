"""The documentation stays true to the code: every command, option, endpoint, config key and
catalog column is documented, the examples are valid, and the site builds offline without a
warning.

Each check reads the code's own view of itself (click's command tree, the OpenAPI document of a
real app, ``biosegment.toml`` and the config dataclasses, a freshly migrated ``catalog.db``) and
compares it with the Markdown in ``docs/``, in both directions where that makes sense, so a new
command without docs fails here, and so does a doc of a command that no longer exists.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from biosegment.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_REFERENCE = DOCS / "reference" / "cli.md"
API_REFERENCE = DOCS / "reference" / "api.md"
CATALOG_REFERENCE = DOCS / "reference" / "catalog.md"
CATALOG_DIAGRAM = DOCS / "diagrams" / "catalog.mmd"
CONFIG_PAGE = DOCS / "admin-guide" / "configuration.md"
CONFIG_FILE = ROOT / "biosegment.toml"


# -- helpers ----------------------------------------------------------------------------------


def sections(markdown: str) -> dict[str, str]:
    """Heading text -> the text under it, up to the next heading of the same or a higher level."""
    found: dict[str, str] = {}
    headings = [
        (m.start(), m.end(), len(m.group(1)), m.group(2).strip())
        for m in re.finditer(r"^(#{1,6})\s+(.+)$", markdown, re.M)
    ]
    for i, (_, end, level, title) in enumerate(headings):
        stop = len(markdown)
        for start2, _, level2, _ in headings[i + 1 :]:
            if level2 <= level:
                stop = start2
                break
        found[title] = markdown[end:stop]
    return found


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return [
        (m.group(1).strip(), m.group(2))
        for m in re.finditer(r"^ *```([^\n`]*)\n(.*?)^ *```\s*$", markdown, re.M | re.S)
    ]


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, path + (name,))


COMMANDS = list(walk(main))


def heading_for(path: tuple[str, ...]) -> str:
    return " ".join(("biosegment", *path))


# -- the command line -------------------------------------------------------------------------


def test_the_helpers_find_what_they_should():
    text = "# A\nintro\n## B\n`--x`\n### C\ninner\n## D\nlast\n"
    assert sections(text)["B"] == "\n`--x`\n### C\ninner\n"
    assert sections(text)["D"] == "\nlast\n"
    assert fenced_blocks("```console\nbiosegment status\n```\n") == [
        ("console", "biosegment status\n")
    ]


@pytest.mark.parametrize("path, command", COMMANDS, ids=[heading_for(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_in_the_cli_reference(path, command):
    documented = sections(CLI_REFERENCE.read_text(encoding="utf-8"))
    title = heading_for(path)
    assert title in documented, f"docs/reference/cli.md has no section '{title}'"
    text = documented[title]
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
        assert any(f"`{name}`" in text or f"`{name} " in text for name in names), (
            f"option {names[0]} of '{title}' is not in its section of docs/reference/cli.md"
        )


def test_the_cli_reference_documents_no_command_that_does_not_exist():
    existing = {heading_for(path) for path, _ in COMMANDS}
    documented = {
        title
        for title in sections(CLI_REFERENCE.read_text(encoding="utf-8"))
        if title.startswith("biosegment")
    }
    assert documented <= existing, f"documented but gone: {sorted(documented - existing)}"


# -- the HTTP API -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict:
    from biosegment.config import load_config
    from biosegment.datafolder import init_data_folder
    from biosegment.webui import create_app

    root = tmp_path_factory.mktemp("openapi") / "data"
    init_data_folder(root)
    config = load_config(data_dir=root, env={}, cwd=root)
    client = create_app(config).test_client()
    reply = client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    return reply.get_json()


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, operation)
        for path, by_method in document["paths"].items()
        for method, operation in by_method.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_api_operation_has_a_summary(openapi):
    missing = [
        f"{method} {path}"
        for method, path, op in operations(openapi)
        if not (op.get("summary") or "").strip()
    ]
    assert len(operations(openapi)) >= 20
    assert not missing, f"operations without a summary (the view's docstring): {missing}"


def test_every_api_operation_is_in_the_api_reference(openapi):
    text = API_REFERENCE.read_text(encoding="utf-8")
    missing = [
        f"{method} {path}"
        for method, path, _ in operations(openapi)
        if f"`{method} {path}`" not in text
    ]
    assert not missing, f"not in docs/reference/api.md: {missing}"


def test_the_api_reference_documents_no_endpoint_that_does_not_exist(openapi):
    existing = {f"{method} {path}" for method, path, _ in operations(openapi)}
    existing.add("GET /api/v1/openapi.json")
    documented = set(
        re.findall(
            r"`((?:GET|POST|PUT|PATCH|DELETE) /api/v1/[^`]*)`",
            API_REFERENCE.read_text(encoding="utf-8"),
        )
    )
    assert documented <= existing, f"documented but gone: {sorted(documented - existing)}"


# -- configuration ----------------------------------------------------------------------------


def flat_keys(table: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_keys(value, f"{name}."))
        else:
            out[name] = value
    return out


def documented_config() -> dict[str, object]:
    """`key` -> the default written in the configuration page's table, parsed as TOML."""
    rows = re.findall(
        r"^\|\s*`([a-z_.]+)`\s*\|\s*`([^`]*)`\s*\|", CONFIG_PAGE.read_text(encoding="utf-8"), re.M
    )
    return {key: tomllib.loads(f"value = {default}")["value"] for key, default in rows}


def test_every_key_of_biosegment_toml_is_in_the_admin_guide_with_its_default():
    in_file = flat_keys(tomllib.loads(CONFIG_FILE.read_text(encoding="utf-8")))
    documented = documented_config()
    missing = sorted(set(in_file) - set(documented))
    assert not missing, f"keys of biosegment.toml missing from {CONFIG_PAGE.name}: {missing}"
    wrong = {k: (documented[k], v) for k, v in in_file.items() if documented[k] != v}
    assert not wrong, f"documented default differs from biosegment.toml: {wrong}"
    gone = sorted(set(documented) - set(in_file))
    assert not gone, f"documented keys that biosegment.toml lacks: {gone}"


def test_biosegment_toml_holds_every_key_the_code_reads_with_its_real_default():
    from biosegment.config import Config, config_from_mapping

    defaults = config_from_mapping({})
    in_code = {"data_dir"}
    for section in dataclasses.fields(Config):
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value):
            in_code |= {f"{section.name}.{field.name}" for field in dataclasses.fields(value)}
    in_file = flat_keys(tomllib.loads(CONFIG_FILE.read_text(encoding="utf-8")))
    assert set(in_file) == in_code, (
        f"only in the code: {sorted(in_code - set(in_file))}; "
        f"only in biosegment.toml: {sorted(set(in_file) - in_code)}"
    )
    for key in in_code - {"data_dir"}:
        section, name = key.split(".")
        assert getattr(getattr(defaults, section), name) == in_file[key], key


# -- the catalog ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog_schema(tmp_path_factory) -> dict[str, list[str]]:
    from biosegment.catalog import open_catalog

    root = tmp_path_factory.mktemp("catalog")
    open_catalog(root).close()
    database = next(root.rglob("catalog.db"))
    with sqlite3.connect(database) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: [row[1] for row in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}


def test_every_catalog_table_and_column_is_in_the_catalog_reference(catalog_schema):
    documented = sections(CATALOG_REFERENCE.read_text(encoding="utf-8"))
    assert len(catalog_schema) >= 8
    for table, columns in catalog_schema.items():
        assert table in documented, f"docs/reference/catalog.md has no section '{table}'"
        rows = set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", documented[table], re.M))
        assert set(columns) == rows, (
            f"{table}: undocumented {sorted(set(columns) - rows)}, "
            f"gone {sorted(rows - set(columns))}"
        )


def test_every_catalog_table_is_in_the_diagram(catalog_schema):
    entities = set(
        re.findall(r"^\s*([a-z_]+)\s*\{", CATALOG_DIAGRAM.read_text(encoding="utf-8"), re.M)
    )
    assert entities == set(catalog_schema), (
        f"missing from the diagram: {sorted(set(catalog_schema) - entities)}; "
        f"not a table: {sorted(entities - set(catalog_schema))}"
    )


# -- docstrings -------------------------------------------------------------------------------


def package_modules() -> list[Path]:
    return sorted((ROOT / "biosegment").rglob("*.py"))


@pytest.mark.parametrize(
    "path", package_modules(), ids=[p.relative_to(ROOT).as_posix() for p in package_modules()]
)
def test_every_module_says_its_job_in_its_first_paragraph(path):
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring, f"{path.relative_to(ROOT)} has no module docstring"
    first = docstring.split("\n\n")[0].strip()
    assert len(first.split()) >= 4, f"{path.relative_to(ROOT)}: '{first}' says too little"


def documented_api() -> list[tuple[str, object]]:
    """The public functions of the engine and of the volume reader contract."""
    import biosegment.engine as engine
    from biosegment.volumes import base, opening

    found = []
    for name in engine.__all__:
        value = getattr(engine, name)
        if inspect.isfunction(value):
            found.append((f"engine.{name}", value))
        elif inspect.isclass(value):
            for attr, member in vars(value).items():
                if inspect.isfunction(member) and not attr.startswith("_"):
                    found.append((f"engine.{name}.{attr}", member))
    for attr in ("read_slice", "read_block", "level", "close"):
        found.append((f"volumes.VolumeReader.{attr}", getattr(base.VolumeReader, attr)))
    for func in (
        base.normalise,
        opening.open_volume,
        opening.probe_volume,
        opening.detect_file_type,
    ):
        found.append((f"volumes.{func.__name__}", func))
    return found


@pytest.mark.parametrize("name, function", documented_api(), ids=[n for n, _ in documented_api()])
def test_engine_and_volume_contract_document_parameters_and_returns(name, function):
    doc = function.__doc__ or ""
    assert doc.strip(), f"{name} has no docstring"
    signature = inspect.signature(function)
    for parameter in signature.parameters.values():
        if parameter.name in ("self", "cls"):
            continue
        assert re.search(rf":param {parameter.name}:", doc) or re.search(
            rf":param [a-z_, ]*\b{parameter.name}\b[a-z_, ]*:", doc
        ), f"{name}: parameter {parameter.name!r} has no ':param {parameter.name}:'"
    if signature.return_annotation not in (None, "None", inspect.Signature.empty):
        assert ":returns:" in doc, f"{name}: no ':returns:'"


def test_every_part_of_the_package_is_in_the_architecture_page():
    text = (DOCS / "developer-guide" / "architecture.md").read_text(encoding="utf-8")
    parts = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "biosegment").iterdir()
        if not p.name.startswith("_")
        and (p.suffix == ".py" or p.is_dir())
        and p.name != "__pycache__"
    }
    assert len(parts) > 10
    missing = sorted(p for p in parts if f"`biosegment.{p}`" not in text)
    assert not missing, f"not in docs/developer-guide/architecture.md: {missing}"


# -- examples and commands in the pages -------------------------------------------------------


def test_the_setup_json_example_in_the_user_guide_is_valid(tmp_path):
    from biosegment.catalog.setup_file import check_setup_data

    text = (DOCS / "user-guide" / "data-folder.md").read_text(encoding="utf-8")
    examples = [
        json.loads(body)
        for info, body in fenced_blocks(text)
        if info == "json" and "EM_location" in body
    ]
    assert examples, "the user guide should show a setup.json"
    for example in examples:
        document, problems = check_setup_data(tmp_path, example)
        assert not problems, [str(p) for p in problems]
        assert document is not None and document.datasets


# Things that only some shells understand: POSIX shells (cmd.exe and PowerShell do not), or one
# of cmd.exe and PowerShell. Commands in `console` blocks must run in all of them.
SHELL_ONLY = {
    r"\$\(|`": "command substitution",
    r"(^|\s)\||\|\|": "a pipe",
    r"&&|;": "command chaining",
    r"(^|\s)[<>]|2>": "redirection",
    r"\\$": "line continuation",
    r"(^|\s)~[/\\]|\$HOME|%\w+%|\$\w+": "a variable or ~",
    r"^(export|source|sudo|set|cd|ls|cat|cp|mv|rm|mkdir|grep|head|tail)\s": "a shell command",
    r"'": "single quotes (cmd.exe does not treat them as quotes)",
    r"\\": "a backslash path (write paths with /)",
}
PORTABLE_PROGRAMS = ("biosegment ", "tensorboard ", "curl ")
USER_PAGES = [
    DOCS / "getting-started.md",
    *sorted((DOCS / "user-guide").glob("*.md")),
    *sorted((DOCS / "admin-guide").glob("*.md")),
]


def shell_problems(line: str) -> list[str]:
    found = [what for pattern, what in SHELL_ONLY.items() if re.search(pattern, line)]
    unquoted = re.sub(r'"[^"]*"', '""', line)
    if re.search(r"[*?]", unquoted):
        found.append("an unquoted wildcard")
    if not line.startswith(PORTABLE_PROGRAMS):
        found.append("a program that is not on every system")
    return found


def test_the_shell_check_catches_shell_only_lines():
    assert shell_problems("biosegment --data data status") == []
    assert shell_problems('biosegment --data data segment "my data" --model m') == []
    assert shell_problems('biosegment audit --action "job.*"') == []
    assert shell_problems("biosegment models export m --format onnx") == []
    for line in (
        "biosegment jobs | head",
        "export BIOSEGMENT_DATA=x",
        "biosegment --data ~/d run",
        "biosegment status > out.txt",
        "biosegment info 'a b'",
        "biosegment --data data\\sub run",
        "biosegment audit --action job.*",
        "ls data",
        "biosegment status && biosegment jobs",
    ):
        assert shell_problems(line), line


@pytest.mark.parametrize(
    "page", USER_PAGES, ids=[p.relative_to(DOCS).as_posix() for p in USER_PAGES]
)
def test_commands_for_users_work_in_every_shell(page):
    text = page.read_text(encoding="utf-8")
    for info, body in fenced_blocks(text):
        if info in ("sh", "bash", "shell", "zsh") and page.parent.name == "user-guide":
            pytest.fail(
                f"{page.name}: a {info} block in the user guide; use a console block "
                "with commands that every shell runs"
            )
        if info != "console":
            continue
        for line in body.splitlines():
            if line.strip():
                problems = shell_problems(line.strip())
                assert not problems, f"{page.name}: {line.strip()!r}: {', '.join(problems)}"


def test_file_names_in_docs_are_portable():
    names = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*")]
    for name in names:
        assert not re.search(r'[:*?"<>|\\ ]', name), f"docs/{name}: not a portable file name"
    lowered = [n.lower() for n in names]
    assert len(set(lowered)) == len(lowered), "two docs files differ only in case"


# -- the built site ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site_dir, result.stdout + result.stderr


def test_the_site_builds_without_a_warning(site):
    _, log = site
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "\n".join(warnings)


def test_every_diagram_is_rendered_and_shown(site):
    site_dir, _ = site
    sources = sorted((DOCS / "diagrams").glob("*.mmd"))
    assert {p.stem for p in sources} >= {"components", "user-flow", "catalog", "data-flow"}
    pages = "\n".join(p.read_text(encoding="utf-8") for p in site_dir.rglob("*.html"))
    for source in sources:
        svg = site_dir / "diagrams" / f"{source.stem}.svg"
        assert svg.is_file(), f"{source.name} was not rendered"
        text = svg.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<svg") and "<g" in text, f"{svg.name} is not a drawing"
        assert f"diagrams/{source.stem}.svg" in pages, f"no page shows {source.stem}"


def test_screenshots_from_the_browser_tests_are_shown(site):
    site_dir, _ = site
    for name in ("dashboard", "viewer", "jobs"):
        assert (site_dir / "screenshots" / f"{name}.png").is_file()
        assert f"screenshots/{name}.png" in (site_dir / "getting-started.html").read_text(
            encoding="utf-8"
        )


#: The most one committed picture may weigh (``make screenshots`` quantizes to fit).
SCREENSHOT_MAX_BYTES = 300 * 1024


def test_the_pictures_in_the_docs_exist_are_used_and_stay_small():
    pictures = sorted((DOCS / "screenshots").glob("*.png"))
    assert pictures, "docs/screenshots holds no picture"
    shown: set[Path] = set()
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", text):
            picture = (page.parent / target).resolve()
            assert picture.is_file(), f"{page.relative_to(ROOT)} shows {target}, which is missing"
            shown.add(picture)
    for picture in pictures:
        assert picture.resolve() in shown, f"{picture.name} is committed but no page shows it"
        size = picture.stat().st_size
        assert size <= SCREENSHOT_MAX_BYTES, f"{picture.name} weighs {size} bytes"


# A resource a page loads by itself (script, style sheet, image, font, frame), as opposed to a
# link a reader may follow.
REMOTE_LOAD = re.compile(
    r"""<(?:script|img|iframe|source|embed)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//""",
    re.I,
)


def test_the_remote_load_pattern_finds_remote_resources():
    assert REMOTE_LOAD.search('<script src="https://cdn.example.org/x.js"></script>')
    assert REMOTE_LOAD.search("<link rel=stylesheet href='//cdn.example.org/a.css'>")
    assert REMOTE_LOAD.search("body{background:url(https://example.org/a.png)}")
    assert not REMOTE_LOAD.search('<a href="https://www.mkdocs.org/">MkDocs</a>')
    assert not REMOTE_LOAD.search('<script src="js/theme.js"></script>')


def test_the_site_loads_nothing_from_the_network(site):
    site_dir, _ = site
    offenders = []
    for path in site_dir.rglob("*"):
        if path.suffix in (".html", ".css", ".js", ".svg") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for match in REMOTE_LOAD.finditer(text):
                offenders.append(
                    f"{path.relative_to(site_dir)}: {text[match.start() : match.end() + 40]}"
                )
    assert not offenders, "\n".join(offenders[:20])
