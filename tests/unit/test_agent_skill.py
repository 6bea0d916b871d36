"""The agent skill and the Claude Code plugin say only true things: every `ftq ...` command
and option they show is one the CLI has (read from its typer app), every ftq HTTP route they
name is one the app serves (read from its route table), every MCP tool exists, the plugin's
JSON files are valid and point at files that exist, and the skill names the Fireworks
endpoints agents must not call (read from the Fireworks client)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from service.app import create_app
from service.cli import app as cli_app
from service.fireworks.kinds import COLLECTION
from service.mcp.tools import TOOL_BY_NAME
from service.settings import Settings

AGENTS = Path(__file__).resolve().parents[2] / "docs" / "agents"
SKILL = AGENTS / "SKILL.md"
PLUGIN = AGENTS / "plugin"
DOCS = [SKILL, AGENTS / "README.md"]
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
SEPARATORS = re.compile(r"\s(?:--|&&|\|\||;|\|)\s")
ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\s+(/[^\s`'\"),]*)")
FTQ_URL = re.compile(r"\$\{?FTQ_URL\}?(/[^\s\"']*)")
TOOL_MENTION = re.compile(r"\bmcp__ftq__(\w+)")


def _code(text: str) -> list[str]:
    """The lines of fenced blocks (backslash continuations joined) and the inline spans."""
    lines: list[str] = []
    for block in FENCE.findall(text):
        lines += block.replace("\\\n", " ").splitlines()
    outside = FENCE.sub("", text)
    return lines + INLINE.findall(outside)


def commands_in(text: str) -> list[list[str]]:
    """Every `ftq ...` invocation shown in code, as tokens (comments and pipes cut off)."""
    found = []
    for line in _code(text):
        for segment in SEPARATORS.split(line.strip().removeprefix("$ ")):
            try:
                tokens = shlex.split(segment, comments=True)
            except ValueError:
                tokens = segment.split()
            if tokens and tokens[0].rsplit("/", 1)[-1] == "ftq" and len(tokens) > 1:
                found.append(["ftq", *tokens[1:]])
    return found


def routes_in(text: str) -> list[tuple[str, str]]:
    """(method, path) of every `METHOD /path` and every curl on `$FTQ_URL/...`."""
    found = [(m, p) for m, p in ROUTE.findall(text)]
    for line in _code(text):
        if "curl" not in line:
            continue
        explicit = re.search(r"-X\s+([A-Z]+)", line)
        method = explicit[1] if explicit else "POST" if re.search(r"\s(-d|--data)", line) else "GET"
        found += [(method, path) for path in FTQ_URL.findall(line)]
    return [(method, path.split("?", 1)[0].rstrip(".:")) for method, path in found]


def cli_problems(tokens: list[str]) -> list[str]:
    """What in one `ftq ...` invocation the CLI does not have."""
    command: Any = typer.main.get_command(cli_app)
    words = tokens[1:]
    path = ["ftq"]
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        name, words = words[0], words[1:]
        if name not in command.commands:
            return [f"`{' '.join([*path, name])}`: no such command"]
        command, path = command.commands[name], [*path, name]
    if hasattr(command, "commands"):
        return [f"`{' '.join(path)}` needs a subcommand"]
    options = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    flags = [w.split("=", 1)[0] for w in words if w.startswith("-")]
    return [f"`{' '.join(path)}` has no option {flag}" for flag in flags if flag not in options]


def _route_table() -> list[tuple[re.Pattern[str], set[str]]]:
    app = create_app(Settings(fireworks_base_url="simulator"))
    table = []
    for route in app.routes:
        pattern = re.escape(route.path)
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", pattern)
        table.append((re.compile(pattern), set(getattr(route, "methods", ()))))
    return table


def route_problems(mentions: list[tuple[str, str]]) -> list[str]:
    table = _route_table()
    return [
        f"{method} {path}: ftq serves no such route"
        for method, path in mentions
        if not any(pattern.fullmatch(path) and method in methods for pattern, methods in table)
    ]


def front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text.startswith("---\n"), f"{path}: no YAML front matter"
    header = text.split("---\n", 2)[1]
    data = yaml.safe_load(header)
    assert isinstance(data, dict)
    return data


def test_every_ftq_command_shown_exists() -> None:
    for doc in DOCS:
        shown = commands_in(doc.read_text())
        assert len(shown) >= 3 if doc == SKILL else shown, doc
        problems = [p for tokens in shown for p in cli_problems(tokens)]
        assert problems == [], f"{doc.name}: {problems}"


def test_every_route_named_is_served() -> None:
    for doc in DOCS:
        mentions = routes_in(doc.read_text())
        assert route_problems(mentions) == [], doc.name
    assert len(routes_in(SKILL.read_text())) >= 8


def test_the_checks_catch_what_does_not_exist() -> None:
    text = (
        "```sh\nftq sumbit job.json\nftq jobs --sate QUEUED\nftq users\n"
        'curl -s -X DELETE "$FTQ_URL/jobz/$ID"\n```\nand `GET /jobs/{id}/evnts`, `GET /queue`'
    )
    problems = [p for tokens in commands_in(text) for p in cli_problems(tokens)]
    assert problems == [
        "`ftq sumbit`: no such command",
        "`ftq jobs` has no option --sate",
        "`ftq users` needs a subcommand",
    ]
    assert route_problems(routes_in(text)) == [
        "GET /jobs/{id}/evnts: ftq serves no such route",
        "DELETE /jobz/$ID: ftq serves no such route",
    ]


def test_the_skill_tells_agents_what_they_need() -> None:
    meta = front_matter(SKILL)
    assert re.fullmatch(r"[a-z0-9-]{1,64}", meta["name"])
    assert 0 < len(meta["description"]) <= 1024
    text = SKILL.read_text()
    for collection in COLLECTION.values():  # the Fireworks endpoints never to call directly
        assert f"https://api.fireworks.ai/v1/accounts/{{account}}/{collection}" in text
        assert collection in meta["description"]
    assert "firectl" in text
    for tool in TOOL_BY_NAME:
        assert f"`{tool}`" in text, tool
    assert set(TOOL_MENTION.findall(text)) <= set(TOOL_BY_NAME)
    for kind in ("### 1. SFT", "### 2. DPO", "### 3. RFT"):
        assert kind in text
    payloads = [json.loads(b) for b in FENCE.findall(text) if b.lstrip().startswith("{")]
    assert sorted(p["kind"] for p in payloads) == ["DPO", "RFT", "SFT"]


def test_the_examples_pass_ftq_s_payload_rules() -> None:
    from service.api.validation import payload_problems  # noqa: PLC0415

    text = SKILL.read_text()
    for body in [json.loads(b) for b in FENCE.findall(text) if b.lstrip().startswith("{")]:
        assert payload_problems(body["kind"], body["fireworks_payload"]) == [], body["kind"]
        assert 1 <= body["gpu_count"] <= 1024


def _json(path: Path) -> Any:
    assert path.is_file(), f"{path} does not exist"
    return json.loads(path.read_text())


def test_the_plugin_is_valid_and_complete() -> None:
    manifest = _json(PLUGIN / ".claude-plugin" / "plugin.json")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", manifest["name"])
    skills = PLUGIN / manifest["skills"]
    skill_files = sorted(skills.glob("*/SKILL.md"))
    assert skill_files == [skills / "ftq" / "SKILL.md"]
    assert front_matter(skill_files[0])["name"] == "ftq"
    # A plugin must be self-contained, so it carries a copy: the copy is the skill.
    assert skill_files[0].read_text() == SKILL.read_text()

    servers = _json(PLUGIN / manifest["mcpServers"])["mcpServers"]
    assert list(servers) == ["ftq"]
    entry = servers["ftq"]
    invocation = [entry["command"], *entry["args"]]
    assert invocation == ["ftq", "mcp"] and cli_problems(invocation) == []
    command: Any = typer.main.get_command(cli_app).commands["mcp"]
    read = {p.envvar for p in command.params if getattr(p, "envvar", None)}
    assert set(entry["env"]) <= read and {"FTQ_URL", "SFTQ_API_KEY"} <= set(entry["env"])
    for name, value in entry["env"].items():
        assert value.startswith(f"${{{name}"), "values come from the user's environment"

    market = _json(AGENTS / ".claude-plugin" / "marketplace.json")
    (listed,) = market["plugins"]
    assert listed["name"] == manifest["name"]
    assert (AGENTS / listed["source"]).resolve() == PLUGIN


@pytest.mark.parametrize("name", sorted(TOOL_BY_NAME))
def test_each_tool_is_described_in_the_readme(name: str) -> None:
    assert f"`{name}`" in (AGENTS / "README.md").read_text()
