"""The programming languages a POC may declare, with their canonical spelling."""

from __future__ import annotations

LANGUAGES: tuple[str, ...] = (
    "Assembly", "Bash", "C", "C#", "C++", "Clojure", "COBOL", "Crystal", "CSS", "Dart",
    "Elixir", "Elm", "Erlang", "F#", "Fortran", "Go", "Groovy", "Haskell", "HTML", "Java",
    "JavaScript", "Julia", "Kotlin", "Lua", "MATLAB", "Nim", "Objective-C", "OCaml", "Perl",
    "PHP", "PowerShell", "Python", "R", "Ruby", "Rust", "Scala", "Solidity", "SQL", "Swift",
    "TypeScript", "Zig",
)  # fmt: skip

_BY_KEY = {name.casefold(): name for name in LANGUAGES}


def canonical_language(name: str) -> str | None:
    """The canonical spelling of ``name`` (case-insensitive), or None if unsupported."""
    return _BY_KEY.get(name.strip().casefold())
