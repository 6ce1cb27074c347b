"""Glob semantics for repositories, refs and paths, including seed 000's two matcher bugs."""

from __future__ import annotations

import pytest

from bastion.policy.globs import (
    GlobError,
    PathGlobSet,
    RepoGlobSet,
    compile_path_glob,
    compile_ref_glob,
    compile_repo_glob,
)


def repo_matches(pattern: str, repo: str) -> bool:
    return compile_repo_glob(pattern).matches(repo)


def ref_matches(pattern: str, ref: str) -> bool:
    return compile_ref_glob(pattern).matches(ref)


def path_matches(pattern: str, path: str, *, case_sensitive: bool = True) -> bool:
    return compile_path_glob(pattern).matches(path, case_sensitive=case_sensitive)


# -- seed 000 regressions -----------------------------------------------------------------------------------------


def test_seed_bug_only_first_star_replaced_and_nothing_escaped() -> None:
    # seed 000: pattern.replace('*', '.*') -> only the first `*` became a wildcard, and `.` stayed a regex dot
    assert repo_matches("acme/*-svc-*", "acme/pay-svc-eu")
    assert not repo_matches("acme/*-svc-*", "acme/pay-svc")
    assert repo_matches("acme/a.b", "acme/a.b")
    assert not repo_matches("acme/a.b", "acme/aXb")


def test_seed_bug_repo_name_cut_at_first_dot() -> None:
    # seed 000 extracted the repository name up to the first `.`, so a rule for org/my matched org/my.secret-repo
    assert repo_matches("org/my", "org/my")
    assert not repo_matches("org/my", "org/my.secret-repo")
    assert not repo_matches("org/my", "org/my-x")
    assert not repo_matches("org/my", "org/myx")


# -- repositories -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "repo", "expected"),
    [
        ("acme/*", "acme/api", True),
        ("acme/*", "acme/a/b", False),  # `*` stays within one segment
        ("acme/*", "acme-x/api", False),
        ("acme/*", "other/acme", False),
        ("*/api", "acme/api", True),
        ("*/api", "acme/api-v2", False),
        ("acme/svc-*-api", "acme/svc-pay-api", True),
        ("acme/svc-*-api", "acme/svc-pay-api-v2", False),
        ("acme/?pi", "acme/api", True),
        ("acme/?pi", "acme/aapi", False),
        ("acme/**", "acme/api", True),
        ("acme/**", "acme/group/sub/api", True),  # nested GitLab-style namespaces
        ("**/api", "acme/api", True),
        ("**/api", "acme/group/api", True),
        ("**/api", "acme/group/api2", False),
        ("acme/**/api", "acme/api", True),  # `**` may be zero segments
        ("acme/**/api", "acme/x/y/api", True),
        ("acme/**/api", "other/x/api", False),
        ("**", "anything/at/all", True),
        ("group/sub/repo", "group/sub/repo", True),
        ("group/sub/repo", "group/sub", False),
    ],
)
def test_repo_glob_segments(pattern: str, repo: str, expected: bool) -> None:
    assert repo_matches(pattern, repo) is expected


def test_repo_glob_is_case_insensitive() -> None:
    assert repo_matches("Acme/API", "acme/api")
    assert repo_matches("acme/api-*", "ACME/API-V2")


@pytest.mark.parametrize(
    "pattern", ["acme/c++", "acme/(x)", "acme/[ab]", "acme/a$", "acme/^a", "acme/a{2}", "acme/a|b"]
)
def test_repo_glob_regex_metacharacters_are_literal(pattern: str) -> None:
    literal = pattern.split("/")[1]
    assert repo_matches(pattern, f"acme/{literal}")
    assert not repo_matches(pattern, "acme/a")
    assert not repo_matches(pattern, "acme/aa")
    assert not repo_matches(pattern, "acme/b")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("acme/a**b", "'**' must be a whole segment"),
        ("acme", "has one segment"),
        ("*", "did you mean '*/*'?"),
        ("acme//x", "empty segment"),
        ("/acme/x", "empty segment"),
        ("acme/x/", "empty segment"),
        ("", "empty repository pattern"),
        (" acme/x", "leading or trailing whitespace"),
        ("acme/../x", "'.' or '..' segment"),
    ],
)
def test_repo_glob_errors(pattern: str, message: str) -> None:
    with pytest.raises(GlobError, match=message.replace("*", r"\*").replace("?", r"\?").replace("(", r"\(")):
        compile_repo_glob(pattern)


def test_repo_glob_set_matches_any_member() -> None:
    globs = RepoGlobSet([compile_repo_glob("acme/api"), compile_repo_glob("tools/*")])
    assert globs.matches("acme/api")
    assert globs.matches("TOOLS/lint")
    assert not globs.matches("acme/api.secret")
    assert globs.patterns == ("acme/api", "tools/*")
    assert not RepoGlobSet([]).matches("acme/api")


# -- refs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "ref", "expected"),
    [
        ("main", "refs/heads/main", True),
        ("main", "refs/tags/main", True),  # short names match branches and tags
        ("main", "refs/heads/mainline", False),
        ("main", "refs/remotes/origin/main", False),
        ("release/*", "refs/heads/release/1.0", True),
        ("release/*", "refs/heads/release/1.0/hotfix", False),
        ("release/**", "refs/heads/release/1.0/hotfix", True),
        ("v*", "refs/tags/v1.2.3", True),
        ("v1.?", "refs/tags/v1.2", True),
        ("v1.?", "refs/tags/v1x2", False),  # the dot is literal
        ("refs/tags/v*", "refs/tags/v1", True),
        ("refs/tags/v*", "refs/heads/v1", False),  # a full pattern names its namespace
        ("refs/heads/**", "refs/heads/a/b", True),
        ("*", "refs/heads/main", True),
        ("*", "refs/heads/feature/x", False),  # `*` stays within one segment here too
        ("**", "refs/heads/feature/x", True),
        ("**", "refs/tags/v1", True),
    ],
)
def test_ref_glob(pattern: str, ref: str, expected: bool) -> None:
    assert ref_matches(pattern, ref) is expected


@pytest.mark.parametrize("pattern", ["*", "**", "refs/**", "refs/*/*", "*/*/head", "refs/*/1/head", "**/head"])
def test_pull_request_refs_need_an_explicit_namespace(pattern: str) -> None:
    assert not ref_matches(pattern, "refs/pull/1/head")
    assert not ref_matches(pattern, "refs/notes/commits")


def test_explicit_namespace_matches_pull_refs() -> None:
    assert ref_matches("refs/pull/*/head", "refs/pull/17/head")
    assert ref_matches("refs/pull/**", "refs/pull/17/merge")
    assert not ref_matches("refs/pull/*/head", "refs/pull/17/merge")


def test_ref_glob_is_case_sensitive() -> None:
    assert not ref_matches("main", "refs/heads/Main")
    assert not ref_matches("Release/*", "refs/heads/release/1")


def test_ref_glob_errors() -> None:
    with pytest.raises(GlobError, match="whole segment"):
        compile_ref_glob("release/v**")
    with pytest.raises(GlobError, match="empty segment"):
        compile_ref_glob("refs/")


# -- paths --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        (".env", ".env", True),
        (".env", "a/b/.env", True),  # a basename pattern matches at any depth
        (".env", "a/.env/x", True),  # ... and covers what is inside a directory of that name
        (".env", "a/b/.envrc", False),
        (".env", "a/b/x.env", False),
        ("*.pem", "x/y.pem", True),
        ("*.pem", "y.pem.txt", False),
        ("*.pem", "pem", False),
        ("secrets/**", "secrets", True),  # the directory itself
        ("secrets/**", "secrets/a/b", True),
        ("secrets/**", "app/secrets/a", False),  # a pattern with `/` is anchored at the root
        ("secrets", "secrets/a/b", True),  # an ancestor directory matches
        ("secrets", "app/secrets/a", True),  # basename form: any depth
        ("/secrets", "app/secrets/a", False),  # leading slash anchors
        ("/secrets", "secrets/a", True),
        ("secrets/", "app/secrets/a", True),  # trailing slash does not anchor (gitignore)
        ("config/prod.yaml", "config/prod.yaml", True),
        ("config/prod.yaml", "config/prodXyaml", False),
        ("config/prod.yaml", "app/config/prod.yaml", False),
        ("**/.aws/credentials", ".aws/credentials", True),
        ("**/.aws/credentials", "home/u/.aws/credentials", True),
        ("**/.aws/credentials", "home/u/.aws/config", False),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/a_test.py", False),
        ("**", "any/thing", True),
        ("a+b(c)[d]", "x/a+b(c)[d]", True),
        ("a+b(c)[d]", "x/aab(c)d", False),
    ],
)
def test_path_glob(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(pattern, path) is expected


def test_path_glob_case_folding_is_chosen_by_the_caller() -> None:
    assert path_matches(".env", "app/.ENV", case_sensitive=False)
    assert not path_matches(".env", "app/.ENV", case_sensitive=True)


def test_path_glob_set_reports_the_first_matching_pattern() -> None:
    globs = PathGlobSet([compile_path_glob("*.key"), compile_path_glob("secrets/**")], case_sensitive=False)
    hit = globs.first_match("SECRETS/Prod.KEY")
    assert hit is not None
    assert hit.pattern == "*.key"
    assert globs.first_match("src/main.py") is None
    assert not PathGlobSet([], case_sensitive=True)
    assert PathGlobSet([], case_sensitive=True).first_match("a") is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("!keep.txt", "negation"),
        ("a**", "whole segment"),
        ("a//b", "empty segment"),
        ("//a", "empty segment"),
        ("/", "empty path pattern"),
        ("../x", "'.' or '..' segment"),
    ],
)
def test_path_glob_errors(pattern: str, message: str) -> None:
    with pytest.raises(GlobError, match=message.replace(".", r"\.")):
        compile_path_glob(pattern)


def test_path_glob_set_agrees_with_its_members() -> None:
    patterns = [".env", "*.pem", "secrets/**", "/build", "a/*/c", "**/.aws/credentials", "x?z", "docs/", "**"]
    paths = ["a/b/c", "a/c", ".env/x", "k/secrets/a", "secrets", "build/x", "src/build", "xyz/1", "q/docs/r", "p.pem"]
    for count in range(1, len(patterns)):
        members = [compile_path_glob(pattern) for pattern in patterns[:count]]
        for case_sensitive in (True, False):
            globs = PathGlobSet(members, case_sensitive=case_sensitive)
            for path in paths + [path.upper() for path in paths]:
                expected = next((m for m in members if m.matches(path, case_sensitive=case_sensitive)), None)
                assert globs.first_match(path) is expected, (patterns[:count], path, case_sensitive)
