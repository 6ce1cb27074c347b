"""The documentation names every setting there is, and no setting that is not (each `BASTION_*` variable in README.md
and docs/ against the settings model). A sibling may be written short after a full name on the same line, as in
"`BASTION_AUDIT__JSONL__PATH`, `__MAX_BYTES`"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from bastion.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Read by the code that needs them, not by Settings: clients and the CLI's token and git helpers.
NOT_SETTINGS = {
    "BASTION_API_KEY",  # clients.py: the key for `bastion client-config`'s snippets
    "BASTION_AUTH_HEADER",
    "BASTION_TOKEN_URL",  # cli/token.py
    "BASTION_TOKEN_CLIENT_ID",
    "BASTION_TOKEN_CLIENT_SECRET",
    "BASTION_GIT_TOKEN",  # github/git_auth.py: the credential helper's hand-over
}
NAME = re.compile(r"BASTION_[A-Z0-9_]*[A-Z0-9]|(?<![A-Z0-9_])__[A-Z0-9_]*[A-Z0-9]")


def _settings(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _settings(annotation, variable + "__")
        else:
            yield variable


SETTINGS = set(_settings(Settings, "BASTION_"))
GROUPS = {variable.rsplit("__", 1)[0] for variable in SETTINGS if "__" in variable}


def _mentioned() -> dict[str, set[str]]:
    """Every variable the docs name, with where."""
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            last: str | None = None
            for match in NAME.finditer(line):
                name = match.group(0)
                if name.startswith("__"):
                    if last is None or "__" not in last:
                        continue  # `__init__` and the like, not a setting
                    name = last.rsplit("__", 1)[0] + name
                else:
                    last = name
                found.setdefault(name, set()).add(f"{doc.relative_to(ROOT)}:{number}")
    return found


def test_every_variable_the_docs_name_is_a_setting() -> None:
    unknown = {
        name: sorted(where)
        for name, where in _mentioned().items()
        if name not in SETTINGS and name not in GROUPS and name not in NOT_SETTINGS
    }
    assert unknown == {}


def test_every_setting_is_documented() -> None:
    assert sorted(SETTINGS - set(_mentioned())) == []
