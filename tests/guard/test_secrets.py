"""The scanner: betterleaks plus the regex layer, on credentials generated at test time (tests/security/planted.py)."""

from __future__ import annotations

import itertools

import pytest
from tests.security.planted import Planted, make_credentials

from bastion.errors import Unavailable
from bastion.guard import secrets as secrets_module
from bastion.guard.secrets import ScanCache, find_secrets, find_secrets_cached, kind_for
from bastion.guard.spans import SecretSpan


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_credentials()


def _config(planted: Planted) -> str:
    return "\n".join(
        [
            "# settings for the billing service",
            f"AWS_ACCESS_KEY_ID={planted['aws_key_id'].value}",
            f"AWS_SECRET_ACCESS_KEY={planted['aws_secret'].value}",
            f'GITHUB_TOKEN = "{planted["github_pat"].value}"',
            f"fine_grained: {planted['github_fine'].value}",
            f"oauth = '{planted['github_oauth'].value}'",
            f"SLACK_BOT_TOKEN={planted['slack'].value}",
            f'stripe.api_key = "{planted["stripe"].value}"',
            f"GITLAB_TOKEN={planted['gitlab'].value}",
            f"Authorization: Bearer {planted['jwt'].value}",
            f"DATABASE_URL=postgres://billing:{planted['db_password'].value}@db.internal.example:5432/billing",
            planted["private_key"].value,
            "def main():",
            "    return 0",
            "",
        ]
    )


def _found(text: str, spans: tuple[SecretSpan, ...]) -> dict[str, str]:
    return {text[span.start : span.end]: span.kind for span in spans}


def test_every_planted_kind_is_found_exactly(planted: Planted) -> None:
    text = _config(planted)
    spans = find_secrets(text)
    found = _found(text, spans)
    for name, credential in planted.by_name.items():
        if name == "github_pat_new":
            continue  # not in this text
        assert found.get(credential.value) == credential.kind, f"{name} ({credential.kind}); found {found.values()}"
    # Nothing else: the comment, the key names and the code around the credentials are left alone.
    assert len(spans) == len(planted.by_name) - 1, sorted(found.values())


def test_spans_are_sorted_and_disjoint(planted: Planted) -> None:
    spans = find_secrets(_config(planted) * 2)
    assert list(spans) == sorted(spans)
    assert all(left.end <= right.start for left, right in itertools.pairwise(spans))


def test_offsets_are_characters_not_bytes(planted: Planted) -> None:
    """betterleaks reports byte columns; the spans must be character offsets even after multi-byte text."""
    token = planted["github_pat"].value
    text = f"ünïcödé 😀 prefix = '{token}'\nzweite Zeile ✓ {token}\n"
    spans = find_secrets(text)
    assert [text[span.start : span.end] for span in spans] == [token, token]


def test_a_nul_byte_does_not_end_the_scan(planted: Planted) -> None:
    """The engine takes a C string: a NUL (possible past the binary sniff) must not hide what follows."""
    token = planted["github_oauth"].value
    text = "header\x00\x00 binary-ish\n" + "x" * 10 + f" token={token}\n"
    assert _found(text, find_secrets(text)) == {token: "github-oauth-token"}


def test_a_value_found_once_is_masked_everywhere_it_occurs(planted: Planted) -> None:
    """A token betterleaks reports in one context (an assignment) is also masked where it appears bare."""
    secret = planted["aws_secret"].value
    key_id = planted["aws_key_id"].value
    text = f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n# backup copy: {secret}\n"
    spans = find_secrets(text)
    assert [text[span.start : span.end] for span in spans].count(secret) == 2


def test_a_value_only_the_regex_layer_finds_is_masked_everywhere_too(planted: Planted) -> None:
    """A URL's password is found by the regex layer alone; repeated bare (a comment, a second variable) it has no
    URL around it, and must not come back in clear there."""
    password = planted["db_password"].value
    assert len(password) >= 8
    text = f"DATABASE_URL=postgres://billing:{password}@db.internal.example/billing\nold_pw: {password}\n"
    assert [text[span.start : span.end] for span in find_secrets(text)] == [password, password]
    text += f"not_{password}_either\n"  # a whole token only: not inside a longer word
    assert [span.start for span in find_secrets(text)] == [text.index(password), text.index(f" {password}") + 1]


def test_an_ordinary_word_that_a_url_holds_as_its_password_is_masked_only_there() -> None:
    """The regex layer masks any URL password; spread to every occurrence, `password` or `localhost` would be masked
    all over ordinary code (found by review). Only values that look generated are, and only as whole tokens."""
    text = (
        "url = 'postgres://admin:password@localhost/db'\n"
        "def check_password(password): return password_hash(password)\n"
        "cache = 'redis://:localhost@localhost:6379'\n"
    )
    found = [(text[span.start : span.end], span.start) for span in find_secrets(text)]
    assert found == [("password", text.index("password")), ("localhost", text.index(":localhost@") + 1)]


def test_low_confidence_noise_is_not_masked() -> None:
    text = 'id = "a8ca07e4-61ec-4399-99f4-19853801bcd5"\npassword = "password"\nrequest_id = "abc123def456"\n'
    assert find_secrets(text) == ()


def test_ordinary_code_has_no_findings() -> None:
    text = (
        "import os\n\n"
        "def connect(url: str = os.environ['DATABASE_URL']) -> None:\n"
        "    '''Connect to postgres://user:${DB_PASSWORD}@localhost/app or http://example.com/path.'''\n"
        "    token = os.environ.get('GITHUB_TOKEN', '')\n"
        "    print('ghp_ prefix tokens are GitHub PATs; AKIA starts an AWS key id')\n"
    )
    assert find_secrets(text) == ()


@pytest.mark.parametrize(
    ("rule_id", "kind"),
    [
        ("aws-access-token", "aws-access-key"),
        ("aws-secret-access-key", "aws-secret-key"),
        ("github-pat", "github-pat"),
        ("github-oauth", "github-oauth-token"),
        ("slack-bot-token", "slack-token"),
        ("slack-user-token", "slack-token"),
        ("stripe-access-token", "stripe-key"),
        ("private-key", "private-key"),
        ("jwt", "jwt"),
        ("generic-credential-uri", "url-password"),
        ("gitlab-pat", "gitlab-pat"),
        ("Odd Rule!", "oddrule"),
        ("", "secret"),
    ],
)
def test_kinds(rule_id: str, kind: str) -> None:
    assert kind_for(rule_id) == kind


@pytest.mark.anyio
async def test_the_cache_answers_by_key_and_stays_bounded(planted: Planted) -> None:
    cache = ScanCache(max_entries=2)
    text = f"token = {planted['github_pat'].value}\n"
    first = await find_secrets_cached(text, ("blob", "a", len(text)), cache)
    assert [span.kind for span in first] == ["github-pat"]
    # Same key: the cached answer, whatever the text (keys identify content; a blob oid never changes content).
    assert await find_secrets_cached("nothing here", ("blob", "a", len(text)), cache) == first
    await find_secrets_cached("b", ("blob", "b", 1), cache)
    await find_secrets_cached("c", ("blob", "c", 1), cache)
    assert len(cache) == 2
    assert cache.get(("blob", "a", len(text))) is None  # the least recently used went first
    assert await find_secrets_cached(text, None, cache) == first  # no key: scanned, not stored
    assert len(cache) == 2


@pytest.mark.anyio
async def test_large_texts_are_scanned_off_the_event_loop(planted: Planted, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold the scan runs in a worker thread (the answer is the same)."""
    monkeypatch.setattr(secrets_module, "_THREAD_SCAN_CHARS", 100)
    text = "x = 1\n" * 50 + f"key = {planted['stripe'].value}\n"
    spans = await find_secrets_cached(text, None, ScanCache())
    assert _found(text, spans) == {planted["stripe"].value: "stripe-key"}


def test_a_scanner_failure_refuses_rather_than_returning_unscanned_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(content: str, config_path: str | None = None) -> list[object]:
        raise secrets_module.betterleaks.BetterleaksError("engine crashed")

    monkeypatch.setattr(secrets_module.betterleaks, "scan_string", broken)
    with pytest.raises(Unavailable, match="could not scan this content, so none of it is returned"):
        find_secrets("anything")
