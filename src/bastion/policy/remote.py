"""The policy from AWS: an SSM parameter (`ssm:<name>`) or an S3 object (`s3://bucket/key`), set by
`BASTION_POLICY__URL`; interchangeable with `PolicyFile` behind the `PolicySource` protocol.

Fetched once at start (a server that cannot read its policy refuses to start: there is no last good one yet),
then re-checked every `check_interval` seconds, in a background thread started by `current()` so no request ever
waits on AWS: the parameter's Version, or the object's ETag (`If-None-Match`: an unchanged object costs a 304
and no transfer). A new version is parsed and swapped in atomically. An unreachable store or a broken new
version keeps the last good policy serving; the problem is logged once and exposed as `last_error` (/ready).
Credentials and region come from the environment as for any AWS SDK client (task role, AWS_REGION;
AWS_ENDPOINT_URL for a local stand-in); boto3 is imported only when a remote policy is configured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from bastion.aws.clients import aws_client
from bastion.config import Settings
from bastion.errors import ConfigError, Unavailable
from bastion.policy.engine import Policy
from bastion.policy.loader import PolicyFile, parse_policy, read_policy_text

__all__ = [
    "FetchedPolicy",
    "PolicyFetcher",
    "PolicySource",
    "RemotePolicy",
    "S3PolicyObject",
    "SsmPolicyParameter",
    "fetcher_for_url",
    "open_policy_source",
    "read_configured_policy",
]

log = logging.getLogger(__name__)


class PolicySource(Protocol):
    """Where the current policy comes from (`PolicyFile`, `RemotePolicy`): cheap `current()`, never raising once
    started; `last_error` says why a newer policy is not in use (None when all is well)."""

    last_error: str | None
    loaded_at: float  # wall-clock seconds of the last successful load

    def current(self) -> Policy: ...


@dataclass(frozen=True, slots=True)
class FetchedPolicy:
    text: str
    version: str  # SSM parameter version or S3 ETag


class PolicyFetcher(Protocol):
    """Reads the policy text from one place. Blocking (it runs in a thread)."""

    location: str

    def fetch(self, known_version: str | None) -> FetchedPolicy | None:
        """The text and its version; None when the version is still `known_version`. Raises Unavailable."""
        ...


def _client(service: str) -> Any:
    return aws_client(service, attempts=2, connect_timeout=3, read_timeout=10)


def _error_code(exc: Exception) -> str:
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class SsmPolicyParameter:
    """`ssm:<name>`: GetParameter with decryption (a SecureString works too); the version is the parameter's."""

    def __init__(self, name: str, *, client: Any = None) -> None:
        self.name = name
        self.location = f"ssm:{name}"
        self._client = client

    def fetch(self, known_version: str | None) -> FetchedPolicy | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._client is None:
                self._client = _client("ssm")  # raises NoRegionError (a BotoCoreError) without a region
            parameter = self._client.get_parameter(Name=self.name, WithDecryption=True)["Parameter"]
        except ClientError as exc:
            raise Unavailable(f"cannot read the policy parameter {self.location}: {_error_code(exc)}: {exc}") from None
        except BotoCoreError as exc:
            raise Unavailable(f"cannot reach SSM for the policy {self.location}: {exc}") from None
        version = str(parameter.get("Version", ""))
        if known_version is not None and version == known_version:
            return None
        return FetchedPolicy(str(parameter.get("Value", "")), version)


class S3PolicyObject:
    """`s3://bucket/key`: GetObject with If-None-Match, so an unchanged object is a 304 without a body."""

    def __init__(self, bucket: str, key: str, *, client: Any = None) -> None:
        self.bucket, self.key = bucket, key
        self.location = f"s3://{bucket}/{key}"
        self._client = client

    def fetch(self, known_version: str | None) -> FetchedPolicy | None:
        from botocore.exceptions import BotoCoreError, ClientError

        conditions = {"IfNoneMatch": known_version} if known_version else {}
        try:
            if self._client is None:
                self._client = _client("s3")  # raises NoRegionError (a BotoCoreError) without a region
            response = self._client.get_object(Bucket=self.bucket, Key=self.key, **conditions)
            body = response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in ("304", "NotModified"):
                return None
            raise Unavailable(f"cannot read the policy object {self.location}: {_error_code(exc)}: {exc}") from None
        except BotoCoreError as exc:
            raise Unavailable(f"cannot reach S3 for the policy {self.location}: {exc}") from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Unavailable(f"the policy object {self.location} is not UTF-8 text") from None
        return FetchedPolicy(text, str(response.get("ETag", "")))


def fetcher_for_url(url: str) -> PolicyFetcher:
    """`ssm:<name>` or `s3://bucket/key`; ConfigError for anything else."""
    if url.startswith("ssm:"):
        name = url.removeprefix("ssm:")
        if not name or any(char.isspace() for char in name):
            raise ConfigError(f"policy.url {url!r}: give a parameter name, e.g. ssm:/mcp-bastion/prod/policy")
        return SsmPolicyParameter(name)
    parts = urlsplit(url)
    if parts.scheme == "s3" and parts.netloc and parts.path.strip("/"):
        return S3PolicyObject(parts.netloc, parts.path.lstrip("/"))
    raise ConfigError(f"policy.url {url!r} is neither ssm:<parameter-name> nor s3://<bucket>/<key>")


class RemotePolicy:
    """The policy from a `PolicyFetcher`, re-checked in the background every `check_interval` seconds."""

    def __init__(
        self, fetcher: PolicyFetcher, check_interval: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fetcher = fetcher
        self.check_interval = check_interval
        self.last_error: str | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        try:
            fetched = fetcher.fetch(None)
        except Unavailable as exc:
            raise ConfigError(f"cannot load the policy at start: {exc.message}") from None
        assert fetched is not None
        self._policy = parse_policy(fetched.text, self._source(fetched))  # ConfigError names every problem
        self.version: str | None = fetched.version
        self._failed_version: str | None = None
        self.loaded_at = time.time()
        self._checked_at = clock()
        log.info(
            "policy loaded from %s (version %s, %d rules)", fetcher.location, fetched.version, len(self._policy.rules)
        )

    def _source(self, fetched: FetchedPolicy) -> str:
        return f"{self.fetcher.location}@{fetched.version}"

    def current(self) -> Policy:
        """The last good policy; starts a background re-check when one is due (never waits for it)."""
        if self._clock() - self._checked_at >= self.check_interval:
            with self._lock:
                if self._refreshing is None and self._clock() - self._checked_at >= self.check_interval:
                    self._refreshing = threading.Thread(target=self._refresh_in_background, daemon=True)
                    self._refreshing.start()
        return self._policy

    def wait_for_refresh(self, timeout: float = 30.0) -> None:
        """Until a background re-check started by `current()` has finished (tests, `doctor`)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except Exception:  # a bug here must not kill the server; the next check tries again
            log.exception("policy re-check of %s failed", self.fetcher.location)
        finally:
            with self._lock:
                self._refreshing = None

    def refresh(self) -> bool:
        """Re-check now (blocking). True when a new policy was loaded."""
        try:
            fetched = self.fetcher.fetch(self.version)
        except Unavailable as exc:
            self._fail(f"{exc.message}; keeping the policy loaded at {_when(self.loaded_at)}")
            return False
        finally:
            self._checked_at = self._clock()
        if fetched is None:  # unchanged
            self.last_error = None
            return False
        if fetched.version == self._failed_version:
            return False  # the same broken version: already reported
        try:
            policy = parse_policy(fetched.text, self._source(fetched))
        except ConfigError as exc:
            self._failed_version = fetched.version
            self._fail(f"version {fetched.version} is invalid, still serving version {self.version}: {exc.message}")
            return False
        self._policy, self.version, self._failed_version = policy, fetched.version, None
        self.loaded_at, self.last_error = time.time(), None
        log.info(
            "policy reloaded from %s (version %s, %d rules)", self.fetcher.location, fetched.version, len(policy.rules)
        )
        return True

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.error("policy reload from %s failed: %s", self.fetcher.location, message)
        self.last_error = message


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def open_policy_source(settings: Settings) -> PolicySource:
    """`policy.url` when set (SSM / S3), else the policy file."""
    if settings.policy.url:
        return RemotePolicy(fetcher_for_url(settings.policy.url), settings.policy.reload_check_seconds)
    return PolicyFile(settings.policy_file, settings.policy.reload_check_seconds)


def read_configured_policy(settings: Settings) -> tuple[str, str]:
    """The text of the policy the server would load now (`policy.url`, else the policy file) and where it came
    from (`ssm:<name>@<version>`, `s3://bucket/key@<etag>`, or the path), for `policy check/lint` and `doctor`.
    Raises ConfigError (missing file, malformed URL) or Unavailable (the store cannot be read)."""
    if settings.policy.url:
        fetcher = fetcher_for_url(settings.policy.url)
        fetched = fetcher.fetch(None)
        assert fetched is not None  # no known version was given
        return fetched.text, f"{fetcher.location}@{fetched.version}"
    return read_policy_text(settings.policy_file), str(settings.policy_file)
