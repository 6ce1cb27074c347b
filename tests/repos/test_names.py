"""Every validation rule for caller-supplied repository names, refs and paths."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, cast

import pytest
from tests.repos.names_reference import (
    reference_validate_path,
    reference_validate_ref,
    reference_validate_repo_name,
)

from bastion.errors import InvalidInput
from bastion.repos.names import (
    MAX_PATH_LENGTH,
    MAX_REF_LENGTH,
    is_full_sha,
    looks_like_sha,
    validate_path,
    validate_ref,
    validate_repo_name,
)

# -- repository names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acme/widgets", "Acme/Widgets", "a/b", "group/sub/repo", "o.rg/re_po-1", "a1/b.c"])
def test_repo_name_accepts(name: str) -> None:
    assert validate_repo_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "repository name is empty"),
        ("widgets", "has no owner"),
        ("acme/widgets.git", "repository names have no .git suffix: use 'acme/widgets'"),
        ("acme/widgets.GIT", "repository names have no .git suffix: use 'acme/widgets'"),
        ("acme/widgets/", "ends with '/'"),
        ("acme/widgets.", "ends with '.'"),
        ("acme//widgets", "empty segment"),
        ("/acme/widgets", "empty segment"),
        ("acme/..", "contains a '..' segment"),
        ("../widgets", "contains a '..' segment"),
        ("acme/.", "contains a '.' segment"),
        ("acme/.hidden", "starts with '.'"),
        ("acme/-widgets", "starts with '-' (looks like an option)"),
        ("--upload-pack=x/y", "starts with '-' (looks like an option)"),
        ("acme/wid gets", "contains whitespace"),
        ("acme/widgets\x00", "control character '\\x00' (U+0000"),
        ("acme/wid\ngets", "control character"),
        ("acme/%2e%2e", "percent-encoding is not accepted"),
        ("acme%2fwidgets", "percent-encoding is not accepted"),
        ("оrg/repo", "non-ASCII character 'о' (U+043E CYRILLIC SMALL LETTER O)"),
        ("acme/widgets\u200b", "control character"),  # zero-width space (format character)
        ("acme/wid:gets", "contains ':'"),
        ("acme/wid\\gets", "contains '\\\\'"),
        ("a/" + "b" * 250, "longer than 200 characters"),
    ],
)
def test_repo_name_refuses(name: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_repo_name(name)
    assert message in caught.value.message


# -- refs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "main",
        "release/1.0",
        "refs/heads/feature/x",
        "refs/tags/v1.0",
        "v1.0-rc.1",
        "HEAD",
        "deadbee",
        "0123456789abcdef0123456789abcdef01234567",
        "DEADBEEF",
        "feature_ünicode",  # git allows non-ASCII ref names
    ],
)
def test_ref_accepts(ref: str) -> None:
    assert validate_ref(ref) == ref


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "ref is empty"),
        ("--upload-pack=x", "starts with '-' (looks like a command-line option)"),
        ("-c", "starts with '-'"),
        ("main..evil", "contains '..'"),
        ("..", "contains '..'"),
        ("main@{1}", "'@' reflog syntax"),
        ("@", "'@' reflog syntax"),
        ("main~1", "contains '~'"),
        ("main^", "contains '^'"),
        ("main^{tree}", "contains '^'"),
        ("HEAD:secret.txt", "contains ':'"),
        ("a\\b", "contains a backslash"),
        ("feat*", "contains '*'"),
        ("feat?", "contains '?'"),
        ("feat[1]", "contains '['"),
        ("feat ure", "contains whitespace"),
        ("feat\tx", "control character"),
        ("feat\x00", "control character '\\x00'"),
        ("feature/", "starts or ends with '/'"),
        ("/feature", "starts or ends with '/'"),
        ("a//b", "contains '//'"),
        ("feature.", "ends with '.'"),
        ("feature.lock", "ending with '.lock'"),
        ("refs/heads/x.lock/y", "ending with '.lock'"),
        ("refs/heads/.hidden", "component starting with '.'"),
        ("x" * (MAX_REF_LENGTH + 1), f"longer than {MAX_REF_LENGTH} characters"),
    ],
)
def test_ref_refuses(ref: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_ref(ref)
    assert message in caught.value.message


# -- paths --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("", ""),
        ("/", ""),
        (".", ""),
        ("./", ""),
        ("src/app.py", "src/app.py"),
        ("./src/app.py", "src/app.py"),
        ("src//app.py", "src/app.py"),
        ("src/./app.py", "src/app.py"),
        ("src/", "src"),
        ("docs/with space.md", "docs/with space.md"),
        (".env", ".env"),
        ("src/-dash.txt", "src/-dash.txt"),
        ("données/é.txt", "données/é.txt"),
    ],
)
def test_path_normalises(raw: str, normalised: str) -> None:
    assert validate_path(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("/etc/passwd", "is absolute; paths are relative to the repository root"),
        ("//etc/passwd", "is absolute"),
        ("../secret", "contains a '..' segment"),
        ("src/../../etc/passwd", "contains a '..' segment"),
        ("src/..", "contains a '..' segment"),
        ("%2e%2e/etc/passwd", "contains a '..' segment (or an encoded one)"),
        ("src/%2E%2e", "encoded one"),
        ("src/%2e", "encoded one"),
        ("src\x00.py", "control character '\\x00' (U+0000"),
        ("src/app.py\nother", "control character"),
        ("src/\x1b[31m", "control character"),
        ("--upload-pack=x", "starts with '-' (looks like a command-line option)"),
        ("-c", "starts with '-'"),
        ("./-rf", "starts with '-'"),
        ("src\\app.py", "contains a backslash"),
        ("a" * (MAX_PATH_LENGTH + 1), f"longer than {MAX_PATH_LENGTH} characters"),
    ],
)
def test_path_refuses(raw: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_path(raw)
    assert message in caught.value.message


# -- SHAs ---------------------------------------------------------------------------------------------------


def test_sha_helpers() -> None:
    full = "0123456789abcdef0123456789abcdef01234567"
    assert is_full_sha(full)
    assert not is_full_sha(full.upper())
    assert not is_full_sha(full[:39])
    assert not is_full_sha(full + "0")
    assert looks_like_sha("0123abc")
    assert looks_like_sha("0123ABC")
    assert looks_like_sha(full)
    assert not looks_like_sha("0123ab")  # 6 digits: too short to name a commit
    assert not looks_like_sha("main123")
    assert not looks_like_sha(full + "0")


# -- the fast paths against the rules as first written ----------------------------------------------------------

# Characters that matter to some rule (separators, dots, option dashes, encodings, reflog and revision syntax,
# whitespace, control and format characters, look-alikes), plus ordinary ones so that valid values come up often.
_TRICKY = [*"/.-_%@{}~^:\\*?[] \t\n\r\x00\x1b\x7f+,=!$&'#", "\u200b", "\u2028", "\u00a0", "é", "о", "\U0001f600"]
_ORDINARY = list("abcxyzABCXYZ0189")
_WORDS = ["lock", ".lock", "git", ".git", ".GIT", "..", "./", "/.", "%2e", "%2E", "@{", "refs/heads/", "HEAD", "//"]
_SEEDS = [
    "acme/widgets", "group/sub/repo", "o.rg/re_po-1", "a/b", "main", "release/1.0", "refs/heads/feature/x",
    "refs/tags/v1.0", "v1.0-rc.1", "deadbee", "0123456789abcdef0123456789abcdef01234567", "src/app.py",
    "docs/with space.md", ".env", "src/-dash.txt", ".github/workflows/ci.yml", "données/é.txt", "a/b/c/d.e",
]  # fmt: skip


def _generated_values(rng: random.Random, count: int) -> list[str]:
    values: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.4:  # a known value, mutated a few times
            chars = list(rng.choice(_SEEDS))
            for _ in range(rng.randint(0, 3)):
                position = rng.randint(0, len(chars))
                piece = rng.choice(_TRICKY + _ORDINARY + _WORDS)
                action = rng.random()
                if action < 0.4:
                    chars[position:position] = list(piece)
                elif action < 0.7 and chars:
                    del chars[min(position, len(chars) - 1)]
                elif chars:
                    chars[min(position, len(chars) - 1)] = piece
            values.append("".join(chars))
        elif roll < 0.9:  # built from pieces
            pieces = [rng.choice(_ORDINARY * 3 + _TRICKY + _WORDS) for _ in range(rng.randint(0, 12))]
            values.append("".join(pieces))
        else:  # around the length limits
            limit = rng.choice((200, 255, 4096))
            body = "a" * (limit + rng.randint(-3, 3))
            values.append(rng.choice(("x/", "", "-", "a/.", "")) + body[: max(0, limit + rng.randint(-4, 2))])
    return values


def _outcome(validate: Callable[[str], str], raw: Any) -> tuple[str, str]:
    try:
        return ("accepted", validate(raw))
    except InvalidInput as exc:
        return ("refused", exc.message)


@pytest.mark.parametrize(
    ("current", "reference"),
    [
        (validate_repo_name, reference_validate_repo_name),
        (validate_ref, reference_validate_ref),
        (validate_path, reference_validate_path),
    ],
    ids=["repo_name", "ref", "path"],
)
def test_same_decisions_as_the_rules_as_first_written(
    current: Callable[[str], str], reference: Callable[[str], str]
) -> None:
    """Same value or same message, for 30,000 generated inputs per function (a fixed seed, so a failure repeats)."""
    values = [*_SEEDS, "", "/", ".", "./", *_generated_values(random.Random(20261121), 30_000)]
    outcomes = {"accepted": 0, "refused": 0}
    for raw in values:
        expected = _outcome(reference, raw)
        assert _outcome(current, raw) == expected, raw
        outcomes[expected[0]] += 1
    assert min(outcomes.values()) > 2_000, outcomes  # both sides of every rule were exercised
    for odd in (None, 5, b"main", ["a/b"]):
        assert _outcome(current, cast(str, odd)) == _outcome(reference, cast(str, odd))
