"""Code search: ripgrep on the default branch's worktree, git grep at other commits; allow_path filtering,
truncation at max_results, option-like queries, regexes, globs, long lines."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from tests.repos.conftest import REPO, Mirrored
from tests.repos.globs_reference import glob_to_regex
from tests.support.gitrepo import git

from bastion.config import Settings
from bastion.errors import InvalidInput
from bastion.repos.globs import glob_matcher
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry, worktree_root
from bastion.repos.search import MAX_LINE_CHARS, ripgrep_executable
from bastion.repos.sync import add_repository
from bastion.repos.types import SearchQuery, SearchResult

pytestmark = pytest.mark.anyio


def _everything(path: str) -> bool:
    return True


def _no_env(path: str) -> bool:
    return path.rsplit("/", 1)[-1] != ".env"


async def _search(
    backend: MirrorBackend, commit: str, query: SearchQuery, allow: object = _everything, time_limit: float = 30
) -> SearchResult:
    return await backend.search(REPO, commit, query, timeout=time_limit, allow_path=allow)  # type: ignore[arg-type]


def _pairs(result: SearchResult) -> list[tuple[str, int]]:
    return [(hit.path, hit.line_number) for hit in result.hits]


HEAD_NEEDLES = [
    (".env", 1),
    (".hidden/config.txt", 1),
    ("README.md", 3),
    ("scripts/run.sh", 2),
    ("src/app.py", 2),
    ("src/app.py", 3),
    ("web/app.min.js", 1),
]
V1_NEEDLES = [(".env", 1), ("README.md", 3), ("scripts/run.sh", 2), ("src/app.py", 2), ("web/app.min.js", 1)]


def test_ripgrep_is_available() -> None:
    assert ripgrep_executable() is not None  # the `ripgrep` wheel puts rg into the virtualenv


async def test_default_branch_uses_ripgrep(backend: MirrorBackend, mirrored: Mirrored) -> None:
    result = await _search(backend, mirrored.commits["c5"], SearchQuery("needle"))
    assert result.engine == "ripgrep"
    assert _pairs(result) == HEAD_NEEDLES
    assert not result.truncated
    assert result.hits[4].line == '    print("hello needle")'


async def test_other_commit_uses_git_grep(backend: MirrorBackend, mirrored: Mirrored) -> None:
    result = await _search(backend, mirrored.commits["c2"], SearchQuery("needle"))
    assert result.engine == "git-grep"
    assert _pairs(result) == V1_NEEDLES
    feature = await _search(backend, mirrored.commits["f1"], SearchQuery("needle"))
    assert ("src/feature.py", 1) in _pairs(feature)
    assert next(hit.line for hit in feature.hits if hit.path == "src/feature.py") == "FEATURE = 'needle in feature'"


@pytest.mark.parametrize("label", ["c5", "c2"])
async def test_allow_path_filters_before_counting(backend: MirrorBackend, mirrored: Mirrored, label: str) -> None:
    """A file the caller may not see neither appears nor uses up max_results."""
    expected = [pair for pair in (HEAD_NEEDLES if label == "c5" else V1_NEEDLES) if pair[0] != ".env"]
    result = await _search(backend, mirrored.commits[label], SearchQuery("needle"), _no_env)
    assert _pairs(result) == expected
    assert not result.truncated
    limited = await _search(backend, mirrored.commits[label], SearchQuery("needle", max_results=2), _no_env)
    assert _pairs(limited) == expected[:2]
    assert limited.truncated


@pytest.mark.parametrize("label", ["c5", "c2"])
async def test_max_results_exact_is_not_truncated(backend: MirrorBackend, mirrored: Mirrored, label: str) -> None:
    expected = HEAD_NEEDLES if label == "c5" else V1_NEEDLES
    exact = await _search(backend, mirrored.commits[label], SearchQuery("needle", max_results=len(expected)))
    assert (_pairs(exact), exact.truncated) == (expected, False)
    one_less = await _search(backend, mirrored.commits[label], SearchQuery("needle", max_results=len(expected) - 1))
    assert (_pairs(one_less), one_less.truncated) == (expected[:-1], True)


@pytest.mark.parametrize("label", ["c5", "c2"])
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("--upload-pack", [("scripts/run.sh", "echo needle --upload-pack")]),
        ("-e", []),
        ("--pre=sh", []),
        ("-c", []),
        ("--files", []),
    ],
)
async def test_option_like_queries_are_patterns(
    backend: MirrorBackend, mirrored: Mirrored, label: str, pattern: str, expected: list[tuple[str, str]]
) -> None:
    result = await _search(backend, mirrored.commits[label], SearchQuery(pattern))
    assert [(hit.path, hit.line) for hit in result.hits] == expected
    assert not result.truncated


@pytest.mark.parametrize("label", ["c5", "c2"])
async def test_case_sensitivity(backend: MirrorBackend, mirrored: Mirrored, label: str) -> None:
    commit = mirrored.commits[label]
    insensitive = await _search(backend, commit, SearchQuery("NEEDLE"))
    assert _pairs(insensitive) == (HEAD_NEEDLES if label == "c5" else V1_NEEDLES)
    sensitive = await _search(backend, commit, SearchQuery("NEEDLE", case_sensitive=True))
    assert sensitive.hits == ()


@pytest.mark.parametrize("label", ["c5", "c2"])
async def test_regex_and_fixed_strings(backend: MirrorBackend, mirrored: Mirrored, label: str) -> None:
    commit = mirrored.commits[label]
    regex = await _search(backend, commit, SearchQuery(r"hel+o\s+ne+dle", regex=True))
    assert _pairs(regex) == [("src/app.py", 2)]
    literal = await _search(backend, commit, SearchQuery(r"hel+o\s+ne+dle"))
    assert literal.hits == ()  # not a regex unless asked
    with pytest.raises(InvalidInput, match="invalid regular expression"):
        await _search(backend, commit, SearchQuery("needle(", regex=True))


@pytest.mark.parametrize("label", ["c5", "c2"])
async def test_path_glob(backend: MirrorBackend, mirrored: Mirrored, label: str) -> None:
    commit = mirrored.commits[label]
    python = await _search(backend, commit, SearchQuery("needle", path_glob="*.py"))
    assert _pairs(python) == ([("src/app.py", 2), ("src/app.py", 3)] if label == "c5" else [("src/app.py", 2)])
    anchored = await _search(backend, commit, SearchQuery("return", path_glob="src/*.py"))
    assert anchored.hits == ()  # src/util/helpers.py is one level deeper
    deep = await _search(backend, commit, SearchQuery("return", path_glob="src/**/*.py"))
    assert _pairs(deep) == [("src/util/helpers.py", 2)]
    with pytest.raises(InvalidInput, match="no leading '!'"):
        await _search(backend, commit, SearchQuery("needle", path_glob="!*.py"))


@pytest.mark.parametrize("label", ["c5", "c2"])
async def test_long_lines_are_clipped_around_the_match(backend: MirrorBackend, mirrored: Mirrored, label: str) -> None:
    result = await _search(backend, mirrored.commits[label], SearchQuery("needle()", path_glob="*.js"))
    [hit] = result.hits
    assert hit.path == "web/app.min.js"
    assert "needle()" in hit.line
    assert len(hit.line) <= MAX_LINE_CHARS + 2
    assert hit.line.startswith("…")
    assert hit.line.endswith("…")


async def test_symlinks_are_plain_files_in_the_worktree(backend: MirrorBackend, mirrored: Mirrored) -> None:
    root = worktree_root(mirrored.settings.data_dir, REPO)
    link = root / "current" / "link-to-readme"
    assert link.is_file()
    assert not link.is_symlink()
    assert link.read_text() == "README.md"
    found = await _search(backend, mirrored.commits["c5"], SearchQuery("README.md", case_sensitive=True))
    assert [(hit.path, hit.line) for hit in found.hits] == [("link-to-readme", "README.md")]


async def test_time_budget_returns_partial_results(backend: MirrorBackend, mirrored: Mirrored) -> None:
    for label in ("c5", "c2"):
        result = await _search(backend, mirrored.commits[label], SearchQuery("needle"), time_limit=1e-9)
        assert result.truncated  # the budget ran out before the search finished


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "search pattern is empty"),
        ("a\nb", "cannot contain NUL or line breaks"),
        ("a\x00b", "cannot contain NUL or line breaks"),
        ("x" * 1001, "longer than 1000 characters"),
    ],
)
async def test_bad_patterns(backend: MirrorBackend, mirrored: Mirrored, pattern: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await _search(backend, mirrored.commits["c5"], SearchQuery(pattern))


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("*.py", ["a.py", "src/a.py", "src/deep/a.py"], ["a.pyc", "py", "src/a.py.txt"]),
        ("src/*.py", ["src/a.py"], ["src/deep/a.py", "a.py", "other/src/a.py"]),
        ("/src/*.py", ["src/a.py"], ["x/src/a.py"]),
        ("src/**/*.py", ["src/a.py", "src/x/y/a.py"], ["lib/a.py"]),
        ("**/test_*.py", ["test_a.py", "x/test_a.py"], ["x/a_test.py"]),
        ("docs", ["docs", "docs/a.md", "x/docs/a.md"], ["docs2/a.md"]),
        ("a?c.txt", ["abc.txt"], ["a/c.txt", "ac.txt"]),
        ("[ab].txt", ["a.txt", "b.txt"], ["c.txt"]),
        ("[!ab].txt", ["c.txt"], ["a.txt"]),
        ("a+b(c).txt", ["a+b(c).txt"], ["aab(c).txt", "abc.txt"]),  # regex characters are literal
        ("*.*.js", ["app.min.js"], ["app.js"]),  # every '*' is a wildcard, not just the first
    ],
)
def test_glob_semantics(glob: str, matches: list[str], misses: list[str]) -> None:
    matcher = glob_matcher(glob)
    assert [path for path in matches if not matcher(path)] == []
    assert [path for path in misses if matcher(path)] == []


def test_the_glob_matcher_agrees_with_its_regex_specification() -> None:
    """The matcher simulates the glob instead of running a backtracking regex; on random globs and paths over a
    small alphabet (stars, classes, slashes, regex characters) it answers exactly as `glob_to_regex` says."""
    chooser = random.Random(20261121)
    compared = 0
    for _ in range(3000):
        glob = "".join(chooser.choice("ab/.*?[]!Z") for _ in range(chooser.randint(1, 9)))
        try:
            specification = re.compile(glob_to_regex(glob), re.DOTALL)
        except re.error:
            continue  # a class the regex cannot express, e.g. [b-a]: the matcher refuses it (below)
        matcher = glob_matcher(glob)
        for _ in range(20):
            path = "".join(chooser.choice("ab/.Z") for _ in range(chooser.randint(0, 10)))
            assert matcher(path) == (specification.match(path) is not None), (glob, path)
            compared += 1
    assert compared > 30_000


@pytest.mark.timeout(30)  # a hang detector: a backtracking matcher needs hours for these, the simulation < 1 s
def test_a_glob_of_many_stars_does_not_backtrack() -> None:
    long_name = "a" * 4000
    assert not glob_matcher("*" * 199 + "Z")(long_name)
    assert not glob_matcher("*a" * 99 + "Z")(long_name[:300])
    assert glob_matcher("?*" * 99)(long_name[:300])


def test_an_invalid_character_class_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"^path_glob has an invalid character class '\[z-a\]'"):
        glob_matcher("src/[z-a].py")


@pytest.mark.timeout(60)  # the pattern used to be re-run in Python, which reads [[:punct:]] otherwise and backtracks
async def test_a_long_line_is_clipped_where_git_says_the_match_is(backend: MirrorBackend, mirrored: Mirrored) -> None:
    """git grep reports the match's column; the caller's pattern is never run again in Python (to Python,
    `[[:punct:]]` is a set followed by `]`, which never matches here: `(x+)+` would backtrack over 3,000 x's)."""
    query = SearchQuery("(x+)+';needle[[:punct:]]", regex=True, path_glob="*.js")
    [hit] = (await _search(backend, mirrored.commits["c2"], query)).hits
    assert hit.path == "web/app.min.js"
    assert hit.line.startswith("var a='xxx")  # the match starts at the first x, 7 characters in
    assert hit.line.endswith("…")
    assert len(hit.line) <= MAX_LINE_CHARS + 1


async def test_a_file_name_with_a_newline_does_not_pass_for_its_tail(tmp_path: Path) -> None:
    """git grep ends each hit with a newline, and a file name may hold one too: `secrets/prod\\nnotes.txt` must not
    be judged, and shown, as `notes.txt` (policy denies `secrets/**`)."""
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    (work / "README.md").write_text("nothing here\n")
    git(work, "add", "README.md")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "one")
    git(work, "checkout", "--quiet", "-b", "feature")  # not the default branch: searched with git grep
    (work / "secrets").mkdir()
    (work / "secrets" / "prod\nnotes.txt").write_text("db_password_marker=TOPSECRET-123\n")
    git(work, "add", "secrets")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "two")
    git(work, "checkout", "--quiet", "main")
    settings = Settings(data_dir=tmp_path / "data")
    await add_repository(settings, work.resolve().as_uri(), name="acme/odd")
    feature = git(work, "rev-parse", "feature")
    seen: list[str] = []

    def no_secrets(path: str) -> bool:
        seen.append(path)
        return not path.startswith("secrets/")

    async with MirrorBackend(settings, registry=Registry(settings.data_dir, check_interval=0)) as odd:
        result = await odd.search("acme/odd", feature, SearchQuery("TOPSECRET"), timeout=30, allow_path=no_secrets)
    assert result.engine == "git-grep"
    assert result.hits == ()
    assert "notes.txt" not in seen  # the tail was never taken for a path (such a file's hits are left out)
