"""The redactor on large texts: what masking a stored result costs the store's writer thread.

Every text from outside passes through ``Redactor.redact`` before it is stored
(``mecha.store.redacting``); a result may be up to ``max_result`` (1 MB). Prints the time
per megabyte for: ordinary text (no token shape's clue in it: the pattern is skipped),
text holding a clue (``Bearer`` in prose: the pattern scans it), and text holding tokens.
Each with ``--values`` (5) known secret values.

Run: ``.venv/bin/python bench/redaction.py``. Target: < 15 ms a megabyte for ordinary text.
"""

from __future__ import annotations

import argparse
import random
import time

from mecha.redaction import Redactor

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "this",
    "is",
    "a",
    "review",
    "of",
    "the",
    "change",
    "setting",
    "gigabyte",
    "sky",
    "bass",
    "yes",
    "Alpha",
    "Beta",
    "def",
    "get_value(self):",
    "return",
    "self._x",
    "#",
    "comment",
]


def text(size: int, extra: str = "") -> str:
    rng = random.Random(1)
    words = [*WORDS, extra] if extra else WORDS
    return " ".join(rng.choice(words) for _ in range(size // 4))[:size]


def per_megabyte(redactor: Redactor, body: str, runs: int) -> float:
    redactor.redact(body)
    began = time.perf_counter()
    for _ in range(runs):
        redactor.redact(body)
    return (time.perf_counter() - began) / runs * 1000 / (len(body) / 1_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes of text")
    parser.add_argument("--values", type=int, default=5, help="known secret values")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    redactor = Redactor(f"known-secret-value-{n:04d}" for n in range(args.values))
    cases = {
        "ordinary text": text(args.size),
        "text with a clue (Bearer)": text(args.size, "Bearer"),
        "text with tokens (ghp_…)": text(args.size, "ghp_" + "a" * 36),
    }
    print(f"{args.size} bytes, {args.values} known values, {args.runs} runs each")
    for name, body in cases.items():
        print(f"{name:28} {per_megabyte(redactor, body, args.runs):7.1f} ms per MB")


if __name__ == "__main__":
    main()
