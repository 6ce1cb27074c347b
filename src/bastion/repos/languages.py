"""File name -> programming language, by exact file name first, then extension (a small linguist-like table)."""

from __future__ import annotations

__all__ = ["language_of"]

_BY_FILENAME = {
    "Makefile": "Makefile",
    "GNUmakefile": "Makefile",
    "makefile": "Makefile",
    "Dockerfile": "Dockerfile",
    "Containerfile": "Dockerfile",
    "CMakeLists.txt": "CMake",
    "Rakefile": "Ruby",
    "Gemfile": "Ruby",
    "Jenkinsfile": "Groovy",
    "Vagrantfile": "Ruby",
    "BUILD": "Starlark",
    "BUILD.bazel": "Starlark",
    "WORKSPACE": "Starlark",
    "go.mod": "Go Module",
    "meson.build": "Meson",
}

_BY_EXTENSION = {
    "py": "Python", "pyi": "Python", "pyx": "Cython", "ipynb": "Jupyter Notebook",
    "js": "JavaScript", "mjs": "JavaScript", "cjs": "JavaScript", "jsx": "JavaScript",
    "ts": "TypeScript", "tsx": "TypeScript", "mts": "TypeScript", "cts": "TypeScript",
    "go": "Go", "rs": "Rust", "java": "Java", "kt": "Kotlin", "kts": "Kotlin", "scala": "Scala",
    "groovy": "Groovy", "gradle": "Groovy", "clj": "Clojure", "cljs": "Clojure",
    "c": "C", "h": "C", "cc": "C++", "cpp": "C++", "cxx": "C++", "hh": "C++", "hpp": "C++", "hxx": "C++",
    "m": "Objective-C", "mm": "Objective-C++", "swift": "Swift", "cs": "C#", "fs": "F#", "vb": "Visual Basic",
    "rb": "Ruby", "php": "PHP", "pl": "Perl", "pm": "Perl", "lua": "Lua", "r": "R", "jl": "Julia",
    "dart": "Dart", "ex": "Elixir", "exs": "Elixir", "erl": "Erlang", "hrl": "Erlang", "hs": "Haskell",
    "ml": "OCaml", "mli": "OCaml", "elm": "Elm", "zig": "Zig", "nim": "Nim", "v": "V", "sol": "Solidity",
    "sh": "Shell", "bash": "Shell", "zsh": "Shell", "fish": "Shell", "ps1": "PowerShell", "psm1": "PowerShell",
    "bat": "Batchfile", "cmd": "Batchfile",
    "html": "HTML", "htm": "HTML", "css": "CSS", "scss": "SCSS", "sass": "Sass", "less": "Less",
    "vue": "Vue", "svelte": "Svelte", "astro": "Astro",
    "sql": "SQL", "graphql": "GraphQL", "gql": "GraphQL", "proto": "Protocol Buffer",
    "tf": "HCL", "hcl": "HCL", "nix": "Nix", "cmake": "CMake", "mk": "Makefile",
    "md": "Markdown", "markdown": "Markdown", "rst": "reStructuredText", "tex": "TeX", "adoc": "AsciiDoc",
    "json": "JSON", "yaml": "YAML", "yml": "YAML", "toml": "TOML", "xml": "XML", "ini": "INI", "cfg": "INI",
    "csv": "CSV",
}  # fmt: skip


def language_of(path: str) -> str | None:
    """The language of a file by its name, or None when unknown (binary assets, data without a known type)."""
    file_name = path.rsplit("/", 1)[-1]
    known = _BY_FILENAME.get(file_name)
    if known is not None:
        return known
    if file_name.startswith("Dockerfile."):
        return "Dockerfile"
    stem, dot, extension = file_name.rpartition(".")
    if not dot or not stem:
        return None
    return _BY_EXTENSION.get(extension.lower())
