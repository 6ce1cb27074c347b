"""The regex layer on its own: what it finds without betterleaks, and private keys cut at either end."""

from __future__ import annotations

import pytest
from tests.security.planted import Planted, make_credentials

from bastion.guard.patterns import is_key_material, key_material_spans, regex_spans
from bastion.guard.spans import merge_spans


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_credentials()


def _shown(text: str) -> list[tuple[str, str]]:
    return [(span.kind, text[span.start : span.end]) for span in merge_spans(regex_spans(text))]


@pytest.mark.parametrize(
    ("name", "template"),
    [
        ("aws_key_id", "aws_access_key_id = {}"),
        ("aws_secret", "aws_secret_access_key = {}"),
        ("aws_secret", '"SecretAccessKey": "{}",'),
        ("aws_secret", "export AWS_SECRET_ACCESS_KEY='{}'"),
        ("github_pat", "token: {}"),
        ("github_fine", "pat={}"),
        ("github_oauth", "{}"),
        ("slack", "SLACK={}"),
        ("stripe", "Stripe.api_key = '{}'"),
        ("jwt", "Authorization: Bearer {}"),
    ],
)
def test_each_rule_finds_its_kind_alone(planted: Planted, name: str, template: str) -> None:
    credential = planted[name]
    text = "before\n" + template.format(credential.value) + "\nafter\n"
    assert _shown(text) == [(credential.kind, credential.value)]


def test_urls_with_passwords(planted: Planted) -> None:
    password = planted["db_password"].value
    cases = {
        f"postgres://app:{password}@db.example:5432/app": "database-url-password",
        f"mongodb+srv://app:{password}@cluster0.example/db": "database-url-password",
        f"jdbc:mysql://root:{password}@127.0.0.1/db": "database-url-password",
        f"redis://:{password}@cache:6379/0": "database-url-password",
        f"https://deploy:{password}@git.example.com/org/repo.git": "url-password",
    }
    for url, kind in cases.items():
        assert _shown(f'url = "{url}"\n') == [(kind, password)], url


@pytest.mark.parametrize(
    "text",
    [
        "postgres://app:${DB_PASSWORD}@db/app",
        "postgres://app:{{ password }}@db/app",
        "mysql://root:%(password)s@db/app",
        "redis://:*****@cache/0",
        "http://example.com:8080/path?user=a@b.example",  # a port, not a password; @ only in the query
        "see https://example.com/a:b@c",  # `:` and `@` after a path: not userinfo
        "mailto:someone@example.com",
    ],
)
def test_placeholders_and_plain_urls_are_left_alone(text: str) -> None:
    assert _shown(text) == []


def test_tokens_inside_longer_words_are_not_tokens(planted: Planted) -> None:
    body = planted["github_pat"].value.removeprefix("ghp_")
    assert _shown(f"xghp_{body}") == []
    assert _shown(f"ghp_{body}extra_suffix") == []
    assert _shown("ghp_short") == []


def test_a_complete_private_key_block(planted: Planted) -> None:
    key = planted["private_key"].value
    text = f"intro line\n{key}\noutro line\n"
    assert _shown(text) == [("private-key", key)]


def test_a_key_cut_off_after_its_begin_line(planted: Planted) -> None:
    """A read budget (or a hunk) ends inside the key: everything from BEGIN through the key material is masked."""
    lines = planted["private_key"].value.splitlines()
    text = "intro\n" + "\n".join(lines[:6])  # BEGIN and five lines of the body, no END
    [(kind, shown)] = _shown(text)
    assert (kind, shown) == ("private-key", "\n".join(lines[:6]))
    # The key material ends at the first line that is not key material.
    text = "intro\n" + "\n".join(lines[:6]) + "\n\ndef after():\n    pass\n"
    assert _shown(text) == [("private-key", "\n".join(lines[:6]))]


def test_a_key_cut_before_its_end_line(planted: Planted) -> None:
    """A text that starts inside a key (a hunk of its last lines) up to the END line."""
    lines = planted["private_key"].value.splitlines()
    text = "def before():\n    pass\n" + "\n".join(lines[-5:]) + "\nafter\n"
    assert _shown(text) == [("private-key", "\n".join(lines[-5:]))]


def test_key_blocks_in_patches_and_string_literals(planted: Planted) -> None:
    lines = planted["private_key"].value.splitlines()
    patch = "@@ -0,0 +1,4 @@\n" + "\n".join("+" + line for line in lines) + "\n"
    [(kind, shown)] = _shown(patch)
    assert kind == "private-key"
    assert shown.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert shown.endswith("-----END RSA PRIVATE KEY-----")
    one_line = '{"key": "' + "\\n".join(lines) + '\\n"}'
    assert _shown(one_line) == [("private-key", "\\n".join(lines))]
    cut_json = '{"key": "' + "\\n".join(lines[:4])  # a one-line JSON key cut off: the rest of the line goes
    assert _shown(cut_json) == [("private-key", "\\n".join(lines[:4]))]
    quoted = "KEY = (\n" + "\n".join(f'    "{line}\\n"' for line in lines[:5]) + "\n)\n"
    [(kind, shown)] = _shown(quoted)
    assert shown.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert shown.endswith(f'"{lines[4]}\\n"')


def test_two_blocks_and_an_unterminated_one_between(planted: Planted) -> None:
    lines = planted["private_key"].value.splitlines()
    key = "\n".join(lines)
    cut = "\n".join(lines[:3])
    text = f"{key}\nmiddle text here\n{cut}\nplain words follow\n{key}\n"
    assert [shown for _, shown in _shown(text)] == [key, cut, key]


def test_key_material_lines(planted: Planted) -> None:
    body = planted["private_key"].value.splitlines()[3]
    assert is_key_material(body)
    assert is_key_material(f'    "{body}\\n" +')
    assert is_key_material("+" + body)
    assert not is_key_material("short+line")
    assert not is_key_material(f"value = {body}")
    text = f"def f():\n{body}\n{body}\n    return 1\n"
    assert [text[span.start : span.end] for span in key_material_spans(text)] == [body, body]
