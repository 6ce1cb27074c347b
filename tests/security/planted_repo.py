"""Two repositories with planted credentials (tests/security/planted.py) in every place the content guard must see
through, served over real smart HTTP, mirrored by the real sync code and served by the whole app on 127.0.0.1.

`planted/app` (policy: mask): one of each kind in a settings file; a private key over many lines; a key name and
its value on a minified line where a search clip would separate them, and tokens a clip would cut; a text file
with a NUL past the binary sniff; a binary file with a token inside; a second commit that rotates a token, changes
one line in the middle of the key (a hunk with neither BEGIN nor END), changes a file below a credential that git
then shows as the hunk's function context, adds a copy of the key, and names two tokens in its message.

`planted/strict` (policy: strict): a file with credentials next to clean ones, and a commit that adds another.

Line numbers and offsets are computed here from the content, never typed by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from tests.security.planted import Planted
from tests.support.git_http import serve_git_http
from tests.support.gitrepo import WorkRepo, git, make_bare_remote
from tests.support.served import ServedBastion, issue_key
from tests.support.server import serve_app

from bastion.app import create_app
from bastion.config import Settings
from bastion.repos.sync import add_repository

__all__ = ["APP", "POLICY", "STRICT", "ClipLine", "Deployment", "Layout", "deploy_planted"]

APP = {"owner": "planted", "repo": "app"}
STRICT = {"owner": "planted", "repo": "strict"}
SUBJECT = "auditor"
POLICY = """\
version: 1
rules:
  - name: planted-read
    repositories: ["planted/app"]
    subjects: {groups: [eng]}
    operations: [read, search, diff, analyze]

  - name: strict-read
    repositories: ["planted/strict"]
    subjects: {groups: [eng]}
    operations: [read, search, diff]
    redaction: strict
"""
# search_code clips a long line to 300 characters, starting 100 before the match (repos/search.py).
_CLIP_BEFORE = 100
_CLIP_WIDTH = 300
_FILLER = "a.b(c);d=e+f;"  # minified code: no spaces, nothing a cut-edge heuristic could hold on to


def _when(day: int) -> datetime:
    return datetime(2026, 1, day, 12, 0, tzinfo=UTC)


def _filler(length: int) -> str:
    return (_FILLER * (length // len(_FILLER) + 1))[:length]


@dataclass(frozen=True)
class ClipLine:
    """A long line, the word to search for on it, and the window a search hit shows of it."""

    word: str
    line: str

    @property
    def window(self) -> tuple[int, int]:
        start = self.line.index(self.word) - _CLIP_BEFORE
        return start, start + _CLIP_WIDTH


@dataclass
class Layout:
    """What was planted where: file contents and the lines credentials sit on."""

    settings_py: str = ""
    settings_lines: dict[str, int] = field(default_factory=dict[str, int])  # credential name -> line
    signing_txt: str = ""
    key_first_line: int = 0
    key_last_line: int = 0
    budget_txt: str = ""
    many_txt: str = ""
    clip_context: ClipLine | None = None  # a key name outside the window, its value inside
    clip_edges: ClipLine | None = None  # tokens cut by both ends of the window
    strict_app_py: str = ""
    strict_lines: dict[str, int] = field(default_factory=dict[str, int])
    sha: dict[str, str] = field(default_factory=dict[str, str])


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def _settings(planted: Planted) -> tuple[str, dict[str, int]]:
    assignments = {
        "aws_key_id": 'AWS_ACCESS_KEY_ID = "{}"',
        "aws_secret": 'AWS_SECRET_ACCESS_KEY = "{}"',
        "github_pat": 'GITHUB_TOKEN = "{}"',
        "github_fine": 'GITHUB_FINE_GRAINED = "{}"',
        "github_oauth": 'OAUTH_TOKEN = "{}"',
        "slack": 'SLACK_BOT_TOKEN = "{}"',
        "stripe": 'STRIPE_KEY = "{}"',
        "jwt": 'SERVICE_JWT = "{}"',
        "db_password": 'DATABASE_URL = "postgres://billing:{}@db.internal.example:5432/billing"',
    }
    lines = ['"""Settings for the billing service."""', ""]
    lines.extend(template.format(planted[name].value) for name, template in assignments.items())
    lines.extend(["", "TIMEOUT = 30", ""])
    text = "\n".join(lines)
    return text, {name: _line_of(text, planted[name].value) for name in assignments}


def _payments(planted: Planted, changed: bool) -> str:
    """A credential on the last unindented line above a change: git shows it as the hunk's function context."""
    options = [f"    option_{n} = {n}" for n in range(1, 16)]
    if changed:
        options[11] = "    option_12 = 'changed'"
    return "\n".join([f'PAYMENTS_SECRET = "{planted["stripe"].value}"', *options]) + "\n"


def _clip_context(planted: Planted) -> ClipLine:
    """`"aws_secret_access_key":"<value>"` with the key name cut off by the window and the value inside it."""
    word = "CLIPMARK_CONTEXT"
    head = _filler(900) + '"aws_secret_access_key":"'
    value_at = len(head)
    # The window starts 100 characters before the word; put the value 95 characters before it.
    between = _filler(95 - len(planted["aws_secret"].value) - 2)
    line = head + planted["aws_secret"].value + '",' + between + word + _filler(900)
    clip = ClipLine(word, line)
    assert clip.window[0] < value_at < clip.window[0] + 10  # the premise: the value starts just inside the window
    return clip


def _clip_edges(planted: Planted) -> ClipLine:
    """A Slack token the window's start cuts (its last 26 characters show) and a GitHub token its end cuts (its
    first 15 show)."""
    word = "CLIPMARK_EDGES"
    slack, pat = planted["slack"].value, planted["github_pat"].value
    before = _filler(900) + 't="' + slack + '";' + _filler(_CLIP_BEFORE - 2 - 26)
    after = _filler(185 - len(word) - 3) + 'p="' + pat + '";' + _filler(900)
    clip = ClipLine(word, before + word + after)
    start, end = clip.window
    assert clip.line.index(slack) < start < clip.line.index(slack) + len(slack) - 20  # cut by the window's start
    assert start < clip.line.index(pat) < end < clip.line.index(pat) + len(pat) - 10  # cut by its end
    return clip


def _budget_text(planted: Planted) -> str:
    """Tokens and a key at known offsets, for reads whose byte budget ends inside them."""
    parts = [_filler(60) + "\n" for _ in range(10)]
    parts.append(f"token = {planted['github_oauth'].value}\n")
    parts.extend(_filler(60) + "\n" for _ in range(5))
    parts.append(f"url = postgres://svc:{planted['db_password'].value}@db/app\n")
    parts.extend(_filler(60) + "\n" for _ in range(5))
    parts.append(planted["private_key"].value + "\n")
    parts.extend(_filler(60) + "\n" for _ in range(5))
    return "".join(parts)


def _many_text(planted: Planted) -> str:
    """Hundreds of tokens, then a key and a token: masking shrinks the text by more than a budgeted read's slack,
    so a budget near the end of the read returns everything up to where the read cut the key or the token."""
    parts = [f"t{index} = {credential.value}\n" for index, credential in enumerate(planted.many)]
    parts.append(planted["private_key"].value + "\n")
    parts.append(f"tail_token = {planted['github_oauth'].value}\n")
    parts.extend(_filler(60) + "\n" for _ in range(30))
    return "".join(parts)


def _build_app(work: WorkRepo, planted: Planted, layout: Layout) -> None:
    layout.settings_py, layout.settings_lines = _settings(planted)
    key = planted["private_key"].value
    layout.signing_txt = f"# release signing key\n{key}\n# rotate yearly\n"
    layout.key_first_line = 2
    layout.key_last_line = 1 + len(key.splitlines())
    layout.budget_txt = _budget_text(planted)
    layout.many_txt = _many_text(planted)
    layout.clip_context, layout.clip_edges = _clip_context(planted), _clip_edges(planted)
    work.write("README.md", "# Billing service\n\nNothing secret here.\n")
    work.write("config/settings.py", layout.settings_py)
    work.write("config/payments.py", _payments(planted, changed=False))
    work.write("deploy/keys/signing.txt", layout.signing_txt)
    work.write("data/budget.txt", layout.budget_txt)
    work.write("data/many.txt", layout.many_txt)
    work.write("data/bundle.min.js", layout.clip_context.line + "\n" + layout.clip_edges.line + "\n")
    late = "x" * 8500 + "\x00" + "\n" + f"late_token = {planted['gitlab'].value}\n"
    work.write("data/late_nul.txt", late)  # text to the binary sniff (first 8000 bytes), a NUL after it
    # Lines a search engine and the guard could read differently: a CR before the newline, a byte-order mark,
    # bytes that are not UTF-8.
    gitlab = planted["gitlab"].value
    work.write("win/crlf.ini", f'GL_TOKEN = "{gitlab}"\r\nname = crlf\r\n')
    work.write("win/bom.cfg", b'\xef\xbb\xbfGL = "' + gitlab.encode() + b'"\n')
    work.write("win/latin1.cfg", b'GL_\xe9 = "' + gitlab.encode() + b'"\n')
    work.symlink("deploy/current-token", f"../tokens/{planted['github_oauth'].value}")  # a link's target is text too
    work.write("assets/tokens.bin", b"\x00\x01BIN" + planted["slack"].value.encode() + b"\x00" * 64)
    layout.sha["v1"] = work.commit("Billing service settings", when=_when(1))
    work.tag("v1")

    rotated = layout.settings_py.replace(planted["github_pat"].value, planted["github_pat_new"].value)
    work.write("config/settings.py", rotated)
    work.write("config/payments.py", _payments(planted, changed=True))
    key_lines = key.splitlines()
    key_lines[12] = key_lines[12][::-1]  # one line in the middle of the key changes
    work.write("deploy/keys/signing.txt", "# release signing key\n" + "\n".join(key_lines) + "\n# rotate yearly\n")
    work.write("deploy/keys/backup.txt", f"# backup of the signing key\n{key}\n")
    message = (
        "Rotate the GitHub token\n\n"
        f"The old token {planted['github_pat'].value} was revoked.\n"
        f"The deploy bot now posts with {planted['slack'].value}.\n"
    )
    layout.sha["main"] = work.commit(message, when=_when(2))


def _build_strict(work: WorkRepo, planted: Planted, layout: Layout) -> None:
    work.write("README.md", "# Strict\n\nsearchable word: ledger\n")
    layout.strict_app_py = (
        f"# ledger settings\nGITHUB_TOKEN = \"{planted['github_pat'].value}\"\nLEDGER_NAME = 'main'\n"
    )
    work.write("config/app.py", layout.strict_app_py)
    work.write("docs/guide.md", "The ledger guide.\n")
    layout.sha["strict:v1"] = work.commit("Ledger settings", when=_when(1))
    updated = layout.strict_app_py + f'WEBHOOK_KEY = "{planted["stripe"].value}"\n'
    layout.strict_app_py = updated
    layout.strict_lines = {name: _line_of(updated, planted[name].value) for name in ("github_pat", "stripe")}
    work.write("config/app.py", updated)
    work.write("docs/guide.md", "The ledger guide, second edition.\n")
    layout.sha["strict:main"] = work.commit(f"Add the ledger webhook key {planted['stripe'].value}", when=_when(2))


@dataclass
class Deployment(ServedBastion):
    settings: Settings
    app: Starlette
    url: str
    key: str
    planted: Planted
    layout: Layout


@contextlib.contextmanager
def deploy_planted(base: Path, planted: Planted, *, redact_secrets: bool = True) -> Generator[Deployment]:
    """Build both repositories, serve them over smart HTTP, mirror them, write the policy, issue a key and run the
    app until the block ends."""
    served = base / "served"
    layout = Layout()
    for name, build in (("planted/app", _build_app), ("planted/strict", _build_strict)):
        remote = make_bare_remote(served, name)
        work = WorkRepo(base / "work" / name, remote)
        build(work, planted, layout)
        work.push("main")
        git(work.path, "push", "--quiet", "origin", "--tags")
    settings = Settings.model_validate(
        {
            "data_dir": base / "data",
            "guard": {"redact_secrets": redact_secrets},
            "rate_limit": {
                "default": "100000/minute",
                "protocol": "100000/minute",
                "tools": {"search_code": "100000/minute", "analyze_repository": "100000/minute"},
            },
        }
    )
    settings.data_dir.mkdir(parents=True)
    with serve_git_http(served) as git_url:

        async def mirror_all() -> None:
            for name in ("planted/app", "planted/strict"):
                await add_repository(settings, f"{git_url}/{name}.git", name=name)

        asyncio.run(mirror_all())
        settings.policy_file.write_text(POLICY)
        key = issue_key(settings, SUBJECT, groups=("eng",), description="content guard")
        app = create_app(settings)
        with serve_app(app) as url:
            yield Deployment(settings, app, url, key, planted, layout)
