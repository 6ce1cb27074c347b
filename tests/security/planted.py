"""Planted credentials: realistic-looking, random, made at test time.

Nothing here is a literal credential: every value is generated when a test runs (so GitHub's secret scanning has
nothing to flag in this repository, and betterleaks' list of well-known example keys cannot hide a miss), and
each one says which part of it may show in an answer (a well-known prefix such as `ghp_`) and which must never
show, not even as an 8-character fragment.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from functools import cached_property

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["FRAGMENT", "Credential", "Planted", "fragments_in", "make_credentials"]

FRAGMENT = 8  # no run of this many characters of a credential's secret part may appear in an answer

_ALNUM = string.ascii_letters + string.digits
_BASE32 = string.ascii_uppercase + "234567"


@dataclass(frozen=True)
class Credential:
    """`value` as written in a file; `public` the prefix that may show (the rest is secret). For a private key
    the public parts are the BEGIN and END lines."""

    kind: str  # the marker kind the guard must use: [REDACTED:<kind>]
    value: str
    public: str = ""

    @property
    def secret_lines(self) -> list[str]:
        body = self.value.removeprefix(self.public)
        return [line for line in body.splitlines() if line and not line.startswith("-----")]

    @cached_property
    def fragments(self) -> frozenset[str]:
        return frozenset(
            line[start : start + FRAGMENT] for line in self.secret_lines for start in range(len(line) - FRAGMENT + 1)
        )


@dataclass
class Planted:
    """One set of credentials, one of each kind (plus a second GitHub token to rotate to), and `many` more GitHub
    tokens for texts that need a lot of them."""

    seed: int
    by_name: dict[str, Credential] = field(default_factory=dict[str, Credential])
    many: list[Credential] = field(default_factory=list[Credential])

    def __getitem__(self, name: str) -> Credential:
        return self.by_name[name]

    def leaks(self, text: str) -> list[str]:
        """Which credentials (by name; `many[i]` for the others) have a secret fragment in `text`."""
        grams = {text[start : start + FRAGMENT] for start in range(len(text) - FRAGMENT + 1)}
        named = [(name, credential) for name, credential in self.by_name.items()]
        named.extend((f"many[{index}]", credential) for index, credential in enumerate(self.many))
        return [name for name, credential in named if credential.fragments & grams]


def fragments_in(credential: Credential, text: str) -> list[str]:
    """The credential's secret fragments that occur in `text`."""
    return sorted(fragment for fragment in credential.fragments if fragment in text)


def _chars(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def _private_key(rng: random.Random) -> str:
    del rng  # the key comes from the OS's randomness: cryptography takes no seed
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem.decode().strip()


def _jwt(rng: random.Random) -> Credential:
    claims = {"jti": _chars(rng, _ALNUM, 16), "sub": f"svc-{_chars(rng, string.digits, 6)}", "iat": 1767225600}
    token = jwt.encode(claims, _chars(rng, _ALNUM, 32), algorithm="HS256")
    header = token.split(".", 1)[0] + "."
    return Credential("jwt", token, public=header)  # the header is the same for every HS256 token


def make_credentials(seed: int | None = None, *, many: int = 0) -> Planted:
    """One credential of each kind the guard must mask, and `many` GitHub tokens. `seed` (random when None) makes
    the set repeatable, the private key aside (the OS's randomness makes it)."""
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    planted = Planted(seed)
    found = planted.by_name
    found["aws_key_id"] = Credential("aws-access-key", "AKIA" + _chars(rng, _BASE32, 16), public="AKIA")
    found["aws_secret"] = Credential("aws-secret-key", _chars(rng, _ALNUM + "+/", 40))
    found["github_pat"] = Credential("github-pat", "ghp_" + _chars(rng, _ALNUM, 36), public="ghp_")
    found["github_pat_new"] = Credential("github-pat", "ghp_" + _chars(rng, _ALNUM, 36), public="ghp_")
    found["github_fine"] = Credential(
        "github-fine-grained-pat",
        "github_pat_" + _chars(rng, _ALNUM, 22) + "_" + _chars(rng, _ALNUM, 59),
        public="github_pat_",
    )
    found["github_oauth"] = Credential("github-oauth-token", "gho_" + _chars(rng, _ALNUM, 36), public="gho_")
    found["slack"] = Credential(
        "slack-token",
        f"xoxb-{_chars(rng, string.digits, 12)}-{_chars(rng, string.digits, 13)}-{_chars(rng, _ALNUM, 24)}",
        public="xoxb-",
    )
    found["stripe"] = Credential("stripe-key", "sk_live_" + _chars(rng, _ALNUM, 24), public="sk_live_")
    # Found by betterleaks alone (the regex layer has no GitLab rule): shows that layer at work.
    found["gitlab"] = Credential("gitlab-pat", "glpat-" + _chars(rng, _ALNUM, 20), public="glpat-")
    found["jwt"] = _jwt(rng)
    found["db_password"] = Credential("database-url-password", _chars(rng, _ALNUM, 20))
    pem = _private_key(rng)
    found["private_key"] = Credential("private-key", pem)
    planted.many = [Credential("github-pat", "ghp_" + _chars(rng, _ALNUM, 36), public="ghp_") for _ in range(many)]
    return planted
