"""`bastion token`: an access token from the identity provider with the OAuth client-credentials grant.

For machine callers (CI jobs, agents without a person to log in) and for trying OIDC by hand. Prints only the
token on stdout so it composes: `export TOKEN=$(bastion token ...)`. The client secret is read from a file or
the environment, never from the command line (where `ps` and shell history would show it), and never printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx2
import typer

from bastion import __version__
from bastion.auth.jwks import require_secure_url
from bastion.cli.common import console, err_console, fail, settings_from
from bastion.clients import CLIENTS, ClientName, render_client_config
from bastion.errors import ConfigError

__all__ = ["SECRET_ENV", "TokenError", "fetch_token", "register"]

SECRET_ENV = "BASTION_TOKEN_CLIENT_SECRET"  # noqa: S105 - the name of a variable, not a secret


class TokenError(Exception):
    """The token endpoint could not be reached or refused; the message is safe to print (no secret in it)."""


def fetch_token(
    token_url: str,
    client_id: str,
    client_secret: str,
    *,
    scopes: list[str],
    resource: str | None,
    auth_method: str = "basic",
    timeout_seconds: float = 10,
) -> dict[str, Any]:
    """POST the client-credentials grant (RFC 6749 §4.4) and return the token response."""
    form: dict[str, str] = {"grant_type": "client_credentials"}
    if scopes:
        form["scope"] = " ".join(scopes)
    if resource:
        form["resource"] = resource  # RFC 8707; Entra ID v2 rejects it (use a scope ending in /.default there)
    auth: httpx2.BasicAuth | None = None
    if auth_method == "basic":
        auth = httpx2.BasicAuth(client_id, client_secret)
    else:
        form.update(client_id=client_id, client_secret=client_secret)
    headers = {"Accept": "application/json", "User-Agent": f"mcp-bastion/{__version__}"}
    try:
        response = httpx2.post(
            token_url, data=form, auth=auth, headers=headers, timeout=timeout_seconds, follow_redirects=False
        )
    except httpx2.HTTPError as exc:
        raise TokenError(f"cannot reach the token endpoint {token_url}: {exc}") from None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        detail = ""
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            description = body.get("error_description")
            detail = f": {body['error']}" + (f" ({description})" if isinstance(description, str) else "")
        raise TokenError(f"the token endpoint answered HTTP {response.status_code}{detail}")
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise TokenError("the token endpoint's answer holds no access_token")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(f"the token endpoint issued a {token_type!r} token; only Bearer tokens work here")
    return body


def _secret(secret_file: Path | None) -> str:
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as exc:
            raise fail(f"cannot read the client secret file {secret_file}: {exc.strerror}", code=2) from exc
        if not secret:
            raise fail(f"the client secret file {secret_file} is empty", code=2)
        return secret
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise fail(f"no client secret: pass --client-secret-file FILE or set {SECRET_ENV}", code=2)
    return secret


def token(
    ctx: typer.Context,
    token_url: Annotated[
        str, typer.Option("--token-url", envvar="BASTION_TOKEN_URL", help="The identity provider's token endpoint.")
    ],
    client_id: Annotated[
        str, typer.Option("--client-id", envvar="BASTION_TOKEN_CLIENT_ID", help="The OAuth client (app) id.")
    ],
    client_secret_file: Annotated[
        Path | None,
        typer.Option("--client-secret-file", help=f"File holding the client secret (else ${SECRET_ENV})."),
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Scope to request (repeatable), e.g. bastion/read.")
    ] = None,
    resource: Annotated[
        str | None,
        typer.Option("--resource", help="RFC 8707 resource to bind the token to (this server's MCP URL)."),
    ] = None,
    auth_method: Annotated[
        str,
        typer.Option(
            "--auth-method", help="How the client authenticates: basic (HTTP Basic) or post (in the form body)."
        ),
    ] = "basic",
    print_config: Annotated[
        str | None,
        typer.Option("--print-config", help=f"Print a client configuration using the token: {', '.join(CLIENTS)}."),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="MCP endpoint for --print-config. Default: the configured URL.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Server name shown in the client.")] = "bastion",
    header_json: Annotated[
        bool,
        typer.Option("--header-json", help='Print {"Authorization": "Bearer ..."} (for a headersHelper command).'),
    ] = False,
) -> None:
    """Get an access token with the OAuth client-credentials grant and print it (only the token, on stdout)."""
    if print_config is not None and print_config not in CLIENTS:
        raise fail(f"unknown client '{print_config}': choose one of {', '.join(CLIENTS)}", code=2)
    if auth_method not in ("basic", "post"):
        raise fail(f"--auth-method must be basic or post, not '{auth_method}'", code=2)
    try:
        require_secure_url(token_url, "the token URL")
    except ConfigError as exc:
        raise fail(exc, code=2) from exc
    secret = _secret(client_secret_file)
    try:
        answer = fetch_token(
            token_url, client_id, secret, scopes=scope or [], resource=resource, auth_method=auth_method
        )
    except TokenError as exc:
        raise fail(str(exc)) from exc
    access_token: str = answer["access_token"]
    expires_in = answer.get("expires_in")
    lifetime = f" (it expires in {expires_in} s; run this command again for a new one)" if expires_in else ""
    if print_config is not None:
        client: ClientName = print_config  # type: ignore[assignment]  # checked against CLIENTS above
        endpoint = url or settings_from(ctx).resource_url
        snippet = render_client_config(
            client, endpoint, key=access_token, key_file=None, name=name, embed_key=True, credential="access token"
        )
        console.print(snippet, highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"note: this configuration contains an access token{lifetime}", highlight=False)
        return
    if header_json:
        typer.echo(json.dumps({"Authorization": f"Bearer {access_token}"}))
        return
    typer.echo(access_token)
    if lifetime:
        err_console.print(f"note: access token issued{lifetime}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("token")(token)
