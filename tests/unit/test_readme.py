"""The README stays true to the product and to its readers: settings, streams, structure.

That every documented command works is tests/test_documented_commands.py's job.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tap_braze_series.catalog import SERIES
from tap_braze_series.streams import ENTITY_STREAMS
from tests.harness.running import discover

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = {path: path.read_text() for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
# What a user needs, in this order; the reference lives in docs/.
SECTIONS = [
    "Why this tap",
    "Two commands",
    "Connect your Braze",
    "Streams and keys",
    "Guarantees",
    "Errors",
    "Settings",
]


def about_settings_table() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "tap_braze_series.tap", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    section = out.split("## Settings", 1)[1]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_settings_table_is_the_one_about_prints():
    table = about_settings_table()
    assert len(table) > 15
    documented = (ROOT / "docs" / "settings.md").read_text()
    for line in table:
        assert line in documented, f"docs/settings.md's table is stale: {line[:80]}"
    readme_section = README.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| (\w+) \|", "\n".join(table), flags=re.M)
    own = names[names.index("api_key") : names.index("stream_maps")]  # then the SDK's
    for name in own:
        assert f"`{name}`" in readme_section, f"the README's Settings section omits {name}"


def discovered_keys(**settings: object) -> dict[str, set[str]]:
    config = {"api_url": "http://127.0.0.1:9", "api_key": "k", "start_date": "2024-01-01"}
    catalog = discover({**config, **settings})
    return {s["tap_stream_id"]: set(s["key_properties"]) for s in catalog["streams"]}


def test_every_stream_is_documented_with_its_key():
    section = README.split("\n## Streams and keys", 1)[1].split("\n## ", 1)[0]
    names = [cls.name for cls in ENTITY_STREAMS] + [spec.name for spec in SERIES]
    documented: dict[str, tuple[set[str], set[str]]] = {}  # stream -> (keys, keys with ids)
    for name, keys in re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", section, flags=re.M):
        always, _, optional = keys.partition("(+")
        documented[name] = (
            set(re.findall(r"`(\w+)`", always)),
            set(re.findall(r"`(\w+)`", optional)),
        )
    assert sorted(documented) == sorted(names)
    plain = discovered_keys()
    with_apps = discovered_keys(app_ids=["app_ios"])
    with_both = discovered_keys(app_ids=["app_ios"], series_segment_ids=["s"])
    for name, (always, optional) in documented.items():
        assert plain[name] == always, f"README's key of {name}: {always}, the tap's {plain[name]}"
        assert with_apps[name] == always | (optional - {"segment_id"}), name
        assert with_both[name] == always | optional, name


def test_ci_runs_the_readme_test_command_and_the_oldest_and_newest_python():
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines()]
    assert "make test" in README
    assert "make test" in lines
    assert "make demo" in README
    # requires-python admits what CI tests: the whole suite on 3.11, and the suite
    # without the end-to-end tests on the oldest and the newest version admitted.
    pyproject = (ROOT / "pyproject.toml").read_text()
    low, high = re.search(r'requires-python = ">=3\.(\d+),<3\.(\d+)"', pyproject).groups()
    oldest, newest = f"3.{low}", f"3.{int(high) - 1}"
    assert f"for version in {oldest} {newest}; do" in lines, (oldest, newest)
    assert 'make test-python PY="$(python_for "$version")"' in lines
    classifiers = set(re.findall(r"Python :: (3\.\d+)", pyproject))
    assert classifiers == {f"3.{n}" for n in range(int(low), int(high))}, classifiers


def test_readme_sections_come_in_the_order_a_user_needs_them():
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    found = [h for h in headings if h in SECTIONS]
    assert found == SECTIONS, headings
    assert len(README.splitlines()) <= 400, "reference material belongs in docs/"


def test_links_between_the_documents_resolve():
    for path, text in DOCS.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue  # an external address
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            assert linked.is_file(), f"{path.name}: broken link {target}"
            if anchor:
                slugs = {
                    re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                    for h in re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
                }
                assert anchor in slugs, f"{path.name}: no heading for #{anchor} in {linked.name}"


def test_docs_speak_of_the_product_only():
    for path, text in DOCS.items():
        assert "braze-api.md" not in text, path.name
        # Meltano is not on PATH after `make`: commands call it where make installed it.
        for line in re.findall(r"^\s*(meltano\s.*)$", text, flags=re.M):
            raise AssertionError(f"{path.name}: bare `meltano` command: {line}")


def column_type(schema: dict) -> str:
    kinds = [t for t in schema.get("type", []) if t != "null"]
    kind = schema.get("format", kinds[0] if kinds else "any")
    return {"date-time": "datetime"}.get(kind, kind)


def columns_reference() -> str:
    """docs/columns.md's stream list, as the tap's discovered schemas say it."""
    config = {"api_url": "http://127.0.0.1:9", "api_key": "k", "start_date": "2024-01-01"}
    catalog = discover(config)
    order = [cls.name for cls in ENTITY_STREAMS] + [spec.name for spec in SERIES]
    by_name = {s["tap_stream_id"]: s for s in catalog["streams"]}
    parts = []
    for name in order:
        properties = by_name[name]["schema"]["properties"]
        cells = ", ".join(f"`{col}` {column_type(p)}" for col, p in properties.items())
        parts.append(f"### {name}\n\n{cells}\n")
    return "\n".join(parts)


def test_the_columns_reference_is_the_tap_s_schemas():
    text = (ROOT / "docs" / "columns.md").read_text()
    listed = text.split("<!-- columns: generated from the schemas -->\n\n", 1)[1]
    expected = columns_reference()
    assert listed.strip() == expected.strip(), f"docs/columns.md should list:\n\n{expected}"
