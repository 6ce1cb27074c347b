"""A local stand-in for GitHub's App endpoints on 127.0.0.1: the App JWT is verified as GitHub does it (RS256 with
the App's public key, `iss` = App id, at most 10 minutes between `iat` and `exp`, `iat` not in the future), and
installation tokens are issued, remembered and revocable.

Endpoints (GitHub REST API 2022-11-28 shapes): `GET /app`, `GET /app/installations`, `GET /orgs/{org}/installation`,
`GET /users/{user}/installation`, `POST /app/installations/{id}/access_tokens`. Every answer carries `x-ratelimit-*`
headers.

Built to be extended: `add_route(method, regex, handler)` adds endpoints (a handler gets the stub, the regex match,
the request and the verified credential, and returns a `Reply`); `valid_tokens` is a plain set of the tokens that
are currently good, so another stand-in (a REST API stub, a git server) can accept exactly the tokens issued here
(pass your own set in); `scripted` answers (outages, rate limits) are served first; `requests` records every call.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["GitHubAppStub", "IssuedToken", "Recorded", "Reply", "Scripted", "github_app_stub", "make_app_key"]

_JWT_MAX_LIFETIME = 600


def make_app_key() -> rsa.RSAPrivateKey:
    """A fresh App key (2048-bit RSA, as GitHub generates)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict[str, str])


@dataclass
class Scripted:
    """Served instead of the real answer, `times` times, for requests whose method and path match."""

    method: str
    path: str  # a regex, searched in the path
    reply: Reply
    times: int = 1


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    credential: str  # "jwt", "token", "none" or "rejected:<reason>"


@dataclass
class IssuedToken:
    token: str
    installation_id: int
    expires_at: float


@dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[["GitHubAppStub", "re.Match[str]", _Request], Reply]


class GitHubAppStub:
    """State of the running stand-in; tests change it between requests (under `lock` if a request may be running)."""

    def __init__(
        self,
        app_id: str,
        public_key: rsa.RSAPublicKey,
        *,
        installations: dict[str, int] | None = None,
        token_lifetime: float = 3600.0,
        valid_tokens: set[str] | None = None,
        base_path: str = "",
    ) -> None:
        self.app_id = app_id
        self.base_path = base_path.rstrip("/")  # GitHub Enterprise Server serves the API under /api/v3
        self.public_keys = [public_key]  # GitHub accepts JWTs signed by any of the App's current keys
        self.installations = {org.lower(): number for org, number in (installations or {}).items()}
        self.user_installations: dict[str, int] = {}
        self.token_lifetime = token_lifetime
        self.valid_tokens = valid_tokens if valid_tokens is not None else set[str]()
        self.issued: list[IssuedToken] = []
        self.queued_tokens: list[str] = []  # issued first, in order (a test can prepare a git server for them)
        self.requests: list[Recorded] = []
        self.jwt_claims: list[dict[str, Any]] = []
        self.scripted: list[Scripted] = []
        self.rate_limit = 5000
        self.rate_remaining = 5000
        self.url = ""
        self.lock = threading.Lock()
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self.add_route("GET", r"/app", _app, auth="jwt")
        self.add_route("GET", r"/app/installations", _list_installations, auth="jwt")
        self.add_route("GET", r"/orgs/(?P<owner>[^/]+)/installation", _owner_installation, auth="jwt")
        self.add_route("GET", r"/users/(?P<owner>[^/]+)/installation", _owner_installation, auth="jwt")
        self.add_route("POST", r"/app/installations/(?P<id>\d+)/access_tokens", _access_token, auth="jwt")

    # -- extension points ------------------------------------------------------------------------------------------

    def add_route(self, method: str, pattern: str, handler: Handler, *, auth: str = "token") -> None:
        """Serve `method` on paths fully matching `pattern`. `auth`: "jwt" (App JWT), "token" (an issued
        installation token or anything in `valid_tokens`) or "none". Later routes win over earlier ones."""
        self._routes.insert(0, (method.upper(), re.compile(pattern), handler, auth))

    # -- what tests do ---------------------------------------------------------------------------------------------

    def revoke(self, token: str) -> None:
        with self.lock:
            self.valid_tokens.discard(token)

    def rotate_key(self, new_public_key: rsa.RSAPublicKey) -> None:
        """The old key was deleted on GitHub: only JWTs signed by the new one are accepted from now on."""
        with self.lock:
            self.public_keys = [new_public_key]

    def minted(self, org: str | None = None) -> list[IssuedToken]:
        with self.lock:
            if org is None:
                return list(self.issued)
            number = self.installations.get(org.lower())
            return [item for item in self.issued if item.installation_id == number]

    def calls(self, pattern: str = "") -> list[Recorded]:
        with self.lock:
            return [item for item in self.requests if re.search(pattern, f"{item.method} {item.path}")]

    # -- serving ---------------------------------------------------------------------------------------------------

    def handle(self, request: _Request) -> Reply:
        if self.base_path:
            if not request.path.startswith(self.base_path + "/"):
                return Reply(404, {"message": "Not Found"})
            request.path = request.path.removeprefix(self.base_path)
        with self.lock:
            for scripted in self.scripted:
                if scripted.times > 0 and scripted.method == request.method and re.search(scripted.path, request.path):
                    scripted.times -= 1
                    self.requests.append(Recorded(request.method, request.path, "scripted"))
                    return scripted.reply
            for method, pattern, handler, auth in self._routes:
                match = pattern.fullmatch(request.path)
                if method != request.method or match is None:
                    continue
                credential = self._check(auth, request.headers.get("authorization", ""))
                self.requests.append(Recorded(request.method, request.path, credential))
                if credential.startswith("rejected"):
                    return Reply(401, {"message": credential.partition(":")[2], "documentation_url": "https://docs"})
                return handler(self, match, request)
            self.requests.append(Recorded(request.method, request.path, "none"))
            return Reply(404, {"message": "Not Found"})

    def _check(self, auth: str, header: str) -> str:
        if auth == "none":
            return "none"
        scheme, _, credential = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not credential:
            return "rejected:Requires authentication"
        if auth == "token":
            return "token" if credential in self.valid_tokens else "rejected:Bad credentials"
        return self._check_jwt(credential)

    def _check_jwt(self, token: str) -> str:
        try:
            if jwt.get_unverified_header(token).get("alg") != "RS256":
                return "rejected:'alg' must be RS256"
        except jwt.PyJWTError:
            return "rejected:A JSON web token could not be decoded"
        for key in self.public_keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]}, leeway=0
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                return f"rejected:{exc}"
            if claims["iss"] != self.app_id or not isinstance(claims["iss"], str):
                return "rejected:'Issuer' claim ('iss') must be the App id as a string"
            if int(claims["exp"]) - int(claims["iat"]) > _JWT_MAX_LIFETIME:
                return "rejected:'Expiration time' claim ('exp') is too far in the future"
            self.jwt_claims.append(claims)
            return "jwt"
        return "rejected:A JSON web token could not be decoded"

    def headers(self) -> dict[str, str]:
        self.rate_remaining = max(0, self.rate_remaining - 1)
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(self.rate_remaining),
            "x-ratelimit-used": str(self.rate_limit - self.rate_remaining),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _installation_json(stub: GitHubAppStub, owner: str, number: int) -> dict[str, Any]:
    kind = "User" if owner in stub.user_installations else "Organization"
    return {
        "id": number,
        "account": {"login": owner, "type": kind},
        "app_id": int(stub.app_id),
        "target_type": kind,
        "repository_selection": "selected",
        "permissions": {"contents": "read", "metadata": "read"},
    }


def _app(stub: GitHubAppStub, match: re.Match[str], request: _Request) -> Reply:
    return Reply(200, {"id": int(stub.app_id), "slug": "mcp-bastion-test", "name": "mcp-bastion test"})


def _list_installations(stub: GitHubAppStub, match: re.Match[str], request: _Request) -> Reply:
    every = {**stub.installations, **stub.user_installations}
    return Reply(200, [_installation_json(stub, owner, number) for owner, number in sorted(every.items())])


def _owner_installation(stub: GitHubAppStub, match: re.Match[str], request: _Request) -> Reply:
    owner = match["owner"].lower()
    table = stub.user_installations if request.path.startswith("/users/") else stub.installations
    number = table.get(owner)
    if number is None:
        return Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
    return Reply(200, _installation_json(stub, owner, number))


def _access_token(stub: GitHubAppStub, match: re.Match[str], request: _Request) -> Reply:
    number = int(match["id"])
    if number not in {*stub.installations.values(), *stub.user_installations.values()}:
        return Reply(404, {"message": "Not Found"})
    value = stub.queued_tokens.pop(0) if stub.queued_tokens else f"ghs_{secrets.token_urlsafe(27)}"
    issued = IssuedToken(value, number, time.time() + stub.token_lifetime)
    stub.issued.append(issued)
    stub.valid_tokens.add(issued.token)
    return Reply(
        201,
        {
            "token": issued.token,
            "expires_at": _iso(issued.expires_at),
            "permissions": {"contents": "read", "metadata": "read"},
            "repository_selection": "selected",
        },
    )


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        stub = cast(_StubServer, self.server).stub
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        reply = stub.handle(_Request(self.command, parts.path.rstrip("/") or "/", parts.query, headers, body))
        payload = json.dumps(reply.body).encode() if reply.body is not None else b""
        self.send_response(reply.status)
        with stub.lock:
            extra = stub.headers()
        for key, value in {**extra, "content-type": "application/json; charset=utf-8", **reply.headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stub: GitHubAppStub) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.stub = stub


@contextlib.contextmanager
def github_app_stub(
    app_id: str,
    public_key: rsa.RSAPublicKey,
    *,
    installations: dict[str, int] | None = None,
    token_lifetime: float = 3600.0,
    valid_tokens: set[str] | None = None,
    base_path: str = "",
) -> Generator[GitHubAppStub]:
    """Serve the stand-in for the block; `stub.url` is its API root (`http://127.0.0.1:PORT[base_path]`)."""
    stub = GitHubAppStub(
        app_id,
        public_key,
        installations=installations,
        token_lifetime=token_lifetime,
        valid_tokens=valid_tokens,
        base_path=base_path,
    )
    server = _StubServer(stub)
    host, port = server.server_address[:2]
    stub.url = f"http://{host!s}:{port}{stub.base_path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
