"""The contract shipped in the repository (docs/API.md) is kept current: it names every
route of the OpenAPI document the app serves, with its method. The README links it, and
points at nothing outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

ROOT = Path(__file__).resolve().parents[2]
Client = AsyncTestClient[Litestar]


def _shape(text: str) -> str:
    return re.sub(r"\{[^}/]+\}", "{}", text)


async def test_docs_api_md_names_every_route_the_app_serves(app_client: Client) -> None:
    paths = (await app_client.get("/schema/openapi.json")).json()["paths"]
    contract = _shape((ROOT / "docs" / "API.md").read_text())
    missing = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if not re.search(rf"{method.upper()} {re.escape(_shape(path))}[`\s,?]", contract)
    ]
    assert not missing, f"docs/API.md does not describe {missing}"


def test_readme_links_the_contract_in_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "](docs/API.md)" in readme and "](bench/README.md)" in readme
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
            assert (ROOT / target).resolve().is_relative_to(ROOT), target
    assert "../shared" not in readme
    assert "source .venv/bin/activate" in readme and ".venv/bin/ftq" in readme
