"""What the content guard costs per text: betterleaks, the regex layer, both merged, masking, and a cached answer.

Texts are real Python source cut to 4 KB, 10 KB and 110 KB: the standard library's asyncio package (ordinary code)
and this repository's own source (a security product: "token", "secret", "key" and "password" on every page,
which is what makes betterleaks' generic rules work hardest), each also with five generated credentials (a GitHub
token, an AWS key pair, a Slack token and a private key) put in. CPU time of the whole process
(`time.process_time`: the Go engine may use threads of its own), the median of repeated runs.
Usage: `.venv/bin/python bench/content_guard.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import string
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.guard.patterns import regex_spans
from bastion.guard.redact import redact
from bastion.guard.secrets import ScanCache, _betterleaks_spans, find_secrets  # pyright: ignore[reportPrivateUsage]

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"4 KB": 4 * 1024, "10 KB": 10 * 1024, "110 KB": 110 * 1024}


def _source(size: int, corpus: Path) -> str:
    text = "".join(path.read_text() for path in sorted(corpus.rglob("*.py")))
    while len(text) < size:
        text += text
    return text[:size]


def _with_credentials(text: str) -> str:
    rng = random.Random(7)
    alnum = string.ascii_letters + string.digits
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    planted = [
        "GITHUB_TOKEN = 'ghp_" + "".join(rng.choice(alnum) for _ in range(36)) + "'",
        "AWS_ACCESS_KEY_ID = 'AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16)) + "'",
        "AWS_SECRET_ACCESS_KEY = '" + "".join(rng.choice(alnum + "+/") for _ in range(40)) + "'",
        "SLACK = 'xoxb-"
        + "".join(rng.choice(string.digits) for _ in range(12))
        + "-1234567890123-abcdefghijklmnopqrstuvwx'",
        key.decode().strip(),
    ]
    lines = text.splitlines()
    step = max(1, len(lines) // (len(planted) + 1))
    for index, item in enumerate(planted, start=1):
        lines.insert(min(index * step, len(lines)), item)
    return "\n".join(lines)[: len(text) + 2000]


def _cpu_ms(action: Callable[[], object], repeat: int) -> float:
    samples: list[float] = []
    for _ in range(repeat):
        started = time.process_time()
        action()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description="What the content guard costs per text.")
    parser.add_argument("--repeat", type=int, default=200, help="Runs per measurement (the median is shown).")
    args = parser.parse_args()
    find_secrets("warm up the engine")
    header = ("betterleaks", "regex layer", "both+merge", "mask", "cache hit")
    print(f"{'text (ms CPU)':32}" + "".join(f"{name:>13}" for name in header))
    for corpus_name, corpus in (("asyncio", Path(asyncio.__file__).parent), ("bastion", ROOT / "src" / "bastion")):
        for label, size in SIZES.items():
            clean = _source(size, corpus)
            for variant, text in (("clean", clean), ("5 credentials", _with_credentials(clean))):
                spans = find_secrets(text)
                cache = ScanCache()
                key = ("blob", "x", len(text))
                cache.put(key, spans)
                repeat = args.repeat if size < 100_000 else max(20, args.repeat // 5)
                row = (
                    _cpu_ms(lambda t=text: _betterleaks_spans(t), repeat),
                    _cpu_ms(lambda t=text: regex_spans(t), repeat),
                    _cpu_ms(lambda t=text: find_secrets(t), repeat),
                    _cpu_ms(lambda t=text, s=spans: redact(t, s), repeat),
                    _cpu_ms(lambda c=cache, k=key: c.get(k), repeat),
                )
                print(f"{corpus_name + ' ' + label + ' ' + variant:32}" + "".join(f"{value:13.4f}" for value in row))
                assert (len(spans) >= 5) == (variant != "clean"), f"{label} {variant}: {len(spans)} findings"


if __name__ == "__main__":
    main()
