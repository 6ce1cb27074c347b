"""The second scanner: a small set of regular expressions for credentials betterleaks misses or only finds in context.

Each rule runs only where its literal gate (a prefix such as `gh`, `AKIA`, `://`) occurs in the text: one `str.find`
pass per gate, and a regex anchored at each occurrence, so a text with none of the gates costs a dozen `find`s and
no regex work at all. What this layer adds over betterleaks (measured on planted credentials, FACTS.md):
URLs with a password (betterleaks rates most of them low or misses them), an AWS key id or secret key on its own
(betterleaks only reports the pair), and private-key blocks without their BEGIN or END line: a block cut by a
read budget, or a patch hunk that shows one end of a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from bastion.guard.spans import SecretSpan

__all__ = ["is_key_material", "key_material_spans", "regex_spans"]

_DB_SCHEMES = frozenset(
    {
        "postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv", "redis", "rediss", "amqp", "amqps",
        "mssql", "sqlserver", "oracle", "cockroachdb", "clickhouse", "couchdb", "neo4j", "memcached", "cassandra",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Rule:
    gates: tuple[str, ...]  # the pattern is tried only where one of these literals occurs
    back: int  # how many characters before the gate the pattern starts
    pattern: re.Pattern[str]  # matched at (gate position - back), so a lookbehind still sees what comes before
    kind: str | Mapping[str, str]  # or: by the first four characters of the match
    group: int = 0  # the part of the match that is masked


# Patterns start with their gate (or `back` characters before it) and are only ever `match`ed there: a regex that
# starts with a lookbehind or a character class is tried at every position by `re` (12-22 ms per 100 KB, measured),
# one anchored at the gate's occurrences costs nothing where the gate does not occur. Each gate is one `str.find`
# pass over the text (the layer's main cost: ~0.1 ms per 10 KB for all of them together on a busy machine), so
# gates are few and short: `gh` serves the classic GitHub tokens (inside a word, like "high", the lookbehind fails at
# once).
_WORD_BEFORE = r"(?<![A-Za-z0-9_])"  # a token starts here, not inside a longer word
_WORD_AFTER = r"(?![A-Za-z0-9_])"


def _token(prefix: str, body: str) -> re.Pattern[str]:
    return re.compile(_WORD_BEFORE + prefix + body + _WORD_AFTER)


_RULES: tuple[_Rule, ...] = (
    _Rule(("AKIA", "ASIA"), 0, _token("(?:AKIA|ASIA)", "[A-Z0-9]{16}"), "aws-access-key"),
    _Rule(
        ("ecret", "ECRET"),
        1,
        re.compile(r"(?i:secret[_-]?access[_-]?key)[\"']?\s*(?::=|=>|[:=])\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
        "aws-secret-key",
        group=1,
    ),
    _Rule(
        ("gh", "github_pat_"),  # "github" has no "gh"
        0,
        _token("(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})", ""),
        {
            "ghp_": "github-pat",
            "gith": "github-fine-grained-pat",
            "gho_": "github-oauth-token",
            "ghu_": "github-app-token",
            "ghs_": "github-app-token",
            "ghr_": "github-refresh-token",
        },
    ),
    _Rule(("xox",), 0, _token("xox[abposre]-", "[A-Za-z0-9-]{10,250}"), "slack-token"),
    _Rule(("xapp-",), 0, _token("xapp-", "[0-9]-[A-Za-z0-9-]{10,250}"), "slack-token"),
    _Rule(
        ("k_live_", "k_test_", "k_prod_"), 1, _token("[sr]k_(?:live|test|prod)_", "[A-Za-z0-9]{10,247}"), "stripe-key"
    ),
    _Rule(
        ("eyJ",),
        0,
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,4096}"),
        "jwt",
    ),
)  # fmt: skip

# scheme://user:password@ (the user may be empty: redis://:pw@host). Userinfo never holds / ? # @ unescaped, so the
# password ends at the first @ and cannot run into a path or query.
_USERINFO = re.compile(r"[^\s:/?#@'\"<>`\\]{0,256}:([^\s/?#@'\"<>`\\]{1,512})@")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _url_passwords(text: str) -> Iterator[SecretSpan]:
    position = text.find("://")
    while position >= 0:
        found = _USERINFO.match(text, position + 3)
        if found is not None:
            password = found.group(1)
            # ${DB_PASSWORD}, {{ password }}, %(password)s, *****: templates and placeholders, not credentials.
            if not password.startswith(("$", "{", "%")) and not set(password) <= {"*", "x", "X", "."}:
                start = position
                while start > 0 and position - start < 32 and text[start - 1] in _SCHEME_CHARS:
                    start -= 1
                scheme = text[start:position].lower()
                kind = "database-url-password" if scheme in _DB_SCHEMES else "url-password"
                yield SecretSpan(found.start(1), found.end(1), kind)
        position = text.find("://", position + 3)


def _rule_spans(text: str, rule: _Rule) -> Iterator[SecretSpan]:
    for gate in rule.gates:
        position = text.find(gate)
        while position >= 0:
            start = position - rule.back
            found = rule.pattern.match(text, start) if start >= 0 else None
            if found is not None:
                kind = rule.kind if isinstance(rule.kind, str) else rule.kind[found.group(0)[:4]]
                yield SecretSpan(found.start(rule.group), found.end(rule.group), kind)
            position = text.find(gate, position + 1)


# -- private keys -------------------------------------------------------------------------------------------------

_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_END = re.compile(r"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
# One line of a key's body, as it appears in a file, a string literal ("...\n" + ...), or a patch (+/-/space).
_MATERIAL = re.compile(r"[\s\"'+\-]*[A-Za-z0-9+/]{16,}={0,2}(?:\\n)?[\s\"',+\\]*")
_PEM_HEADER = re.compile(r"[\s\"'+\-]*(?:Proc-Type|DEK-Info|Comment|Version): .*")
_KEY_LINE = re.compile(r"[\s\"'+\-]*[A-Za-z0-9+/]{40,}={0,2}(?:\\n)?[\s\"',+\\]*")


def is_key_material(line: str) -> bool:
    """A line that could be part of a private key's body (40+ base64 characters and nothing else): alone it is not
    a finding, but it tells a caller to look at the whole file before showing the line."""
    return _KEY_LINE.fullmatch(line) is not None


def _lines_after(text: str, position: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each line after the one holding `position` (end excludes the line break)."""
    start = text.find("\n", position)
    while start >= 0:
        start += 1
        end = text.find("\n", start)
        yield start, (len(text) if end < 0 else end)
        start = end


def _lines_before(text: str, position: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each line before the one holding `position`, nearest first."""
    end = text.rfind("\n", 0, position)
    while end >= 0:
        start = text.rfind("\n", 0, end) + 1
        yield start, end
        end = start - 1


def _body_line(text: str, start: int, end: int, after_header: bool) -> bool:
    if _MATERIAL.fullmatch(text, start, end) or _PEM_HEADER.fullmatch(text, start, end):
        return True
    return after_header and not text[start:end].strip()  # the blank line after Proc-Type/DEK-Info headers


def _extend_forward(text: str, position: int) -> int:
    """The end of the key body that follows a BEGIN line with no END: the rest of that line (a one-line JSON key
    keeps going there) and every following line that looks like key material."""
    line_end = text.find("\n", position)
    end = len(text) if line_end < 0 else line_end
    after_header = False
    for start, stop in _lines_after(text, position):
        if not _body_line(text, start, stop, after_header):
            break
        after_header = _PEM_HEADER.fullmatch(text, start, stop) is not None
        end = stop
    return end


def _extend_backward(text: str, position: int) -> int:
    """The start of the key body before an END line with no BEGIN (a text that starts inside a key)."""
    start = text.rfind("\n", 0, position) + 1
    for line_start, line_end in _lines_before(text, position):
        if not _body_line(text, line_start, line_end, after_header=False):
            break
        start = line_start
    return start


def _private_keys(text: str) -> list[SecretSpan]:
    """BEGIN..END blocks, a BEGIN with no END before the next BEGIN (cut off), an END with no BEGIN (cut in)."""
    begins = list(_BEGIN.finditer(text))
    ends = list(_END.finditer(text))
    spans: list[SecretSpan] = []
    next_end = 0
    for index, begin in enumerate(begins):
        if spans and begin.start() < spans[-1].end:
            continue  # a BEGIN line inside the block found just before
        while next_end < len(ends) and ends[next_end].start() < begin.end():
            spans.append(
                SecretSpan(_extend_backward(text, ends[next_end].start()), ends[next_end].end(), "private-key")
            )
            next_end += 1
        limit = begins[index + 1].start() if index + 1 < len(begins) else len(text)
        if next_end < len(ends) and ends[next_end].start() < limit:
            spans.append(SecretSpan(begin.start(), ends[next_end].end(), "private-key"))
            next_end += 1
        else:
            spans.append(SecretSpan(begin.start(), _extend_forward(text, begin.end()), "private-key"))
    spans.extend(SecretSpan(_extend_backward(text, end.start()), end.end(), "private-key") for end in ends[next_end:])
    return spans


def key_material_spans(text: str) -> list[SecretSpan]:
    """Every line that looks like key material, masked whole: the fallback when a patch or search hit shows part of
    a key body and the file it came from could not be read to know for sure."""
    spans: list[SecretSpan] = []
    position = 0
    for line in text.split("\n"):
        if is_key_material(line):
            spans.append(SecretSpan(position, position + len(line), "private-key"))
        position += len(line) + 1
    return spans


def regex_spans(text: str) -> list[SecretSpan]:
    """Every credential the regular-expression layer finds in `text` (not merged)."""
    spans: list[SecretSpan] = []
    for rule in _RULES:
        spans.extend(_rule_spans(text, rule))
    spans.extend(_url_passwords(text))
    if "PRIVATE KEY" in text:
        spans.extend(_private_keys(text))
    return spans
