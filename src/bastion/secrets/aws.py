"""Secrets from AWS Secrets Manager. `GetSecretValue` returns the AWSCURRENT version, decrypted with whichever
KMS key the secret uses (the AWS managed key or a customer key: the caller needs `kms:Decrypt` on it, through
Secrets Manager); so a rotation is simply a new VersionId. boto3 is blocking: every call runs in a thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from bastion.aws.clients import aws_client
from bastion.errors import Unavailable
from bastion.secrets.base import Secret, SecretNotFound

__all__ = ["AwsSecretsProvider"]

# Error codes that mean "no such secret (any more)", as opposed to "cannot answer now".
_MISSING = ("ResourceNotFoundException",)
_HINTS = {
    "AccessDeniedException": "the task role needs secretsmanager:GetSecretValue on it",
    "DecryptionFailure": "the task role needs kms:Decrypt on the secret's KMS key (via Secrets Manager)",
    "InvalidRequestException": "is it scheduled for deletion?",
}


class AwsSecretsProvider:
    """`get_secret_value` by name or ARN. `client` is for tests; by default one is built on first use."""

    def __init__(self, region: str | None = None, endpoint_url: str | None = None, *, client: Any = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._client = client
        self._client_lock = threading.Lock()

    def describe(self) -> str:
        where = self.endpoint_url or self.region or "the default region"
        return f"AWS Secrets Manager ({where})"

    @property
    def client(self) -> Any:
        # Built once, lazily (tens of milliseconds); boto3 clients are thread-safe, building them is not.
        with self._client_lock:
            if self._client is None:
                self._client = aws_client(
                    "secretsmanager",
                    region=self.region,
                    endpoint_url=self.endpoint_url,
                    attempts=2,
                    connect_timeout=3,
                    read_timeout=5,
                    user_agent="mcp-bastion-secrets",
                )
            return self._client

    async def fetch(self, name: str) -> Secret:
        return await asyncio.to_thread(self.read, name)

    def read(self, name: str) -> Secret:
        """`fetch` for callers outside the event loop (start-up, the CLI): blocks."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_secret_value(SecretId=name)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
            if code in _MISSING:
                raise SecretNotFound(f"secret {name!r} does not exist in {self.describe()}") from None
            hint = _HINTS.get(code)
            message = str(exc.response.get("Error", {}).get("Message", "")) or code
            raise Unavailable(
                f"cannot read secret {name!r} from {self.describe()}: {code}: {message}"
                + (f" ({hint})" if hint else "")
            ) from None
        except BotoCoreError as exc:
            raise Unavailable(f"cannot reach {self.describe()} for secret {name!r}: {exc}") from None
        text = response.get("SecretString")
        if text is None:
            binary = response.get("SecretBinary")
            try:
                text = bytes(binary).decode("utf-8") if binary is not None else None
            except UnicodeDecodeError:
                text = None
        if text is None or not str(text).strip():
            raise SecretNotFound(f"secret {name!r} in {self.describe()} has no text value")
        return Secret.from_text(name, str(text).strip(), response.get("VersionId"))
