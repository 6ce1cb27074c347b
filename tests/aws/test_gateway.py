"""Reading API Gateway's request context: source IPs and authorizer claims in each payload format, and mapping the
claims to a Principal with the OIDC claim settings."""

from __future__ import annotations

import pytest
from tests.aws.events import event, modern_headers

from bastion.aws.gateway import (
    GatewayClaims,
    GatewayIdentity,
    gateway_groups,
    identity_from_event,
    source_ip_from_event,
)
from bastion.config import OidcSettings
from bastion.errors import InsufficientScope, Unauthenticated

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"


@pytest.mark.parametrize("kind", ["rest", "http", "url"])
def test_source_ip_in_every_payload_format(kind: str) -> None:
    assert source_ip_from_event(event(kind, b"{}", modern_headers(None), source_ip="192.0.2.44")) == "192.0.2.44"


def test_no_request_context_means_no_address_and_no_identity() -> None:
    assert source_ip_from_event({"body": "{}"}) is None
    assert (
        identity_from_event({"requestContext": {"authorizer": {"principalId": "x", "integrationLatency": 3}}}) is None
    )
    assert (
        identity_from_event({"requestContext": {"authorizer": {"iam": {"userArn": "arn:aws:iam::1:user/u"}}}}) is None
    )


def test_rest_cognito_claims_and_http_jwt_claims() -> None:
    claims = {"sub": "u1", "cognito:groups": ["a", "b"]}
    rest = identity_from_event(event("rest", b"{}", modern_headers(None), claims=claims))
    http = identity_from_event(event("http", b"{}", modern_headers(None), claims=claims, scopes=["s1", "s2"]))
    assert rest == GatewayIdentity({"sub": "u1", "cognito:groups": "a,b"}, None, "cognito")
    assert http == GatewayIdentity({"sub": "u1", "cognito:groups": "[a b]"}, ("s1", "s2"), "jwt")


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        ("[admins dev-team]", {"admins", "dev-team"}),
        ("admins,dev-team", {"admins", "dev-team"}),
        ("admins", {"admins"}),
        (["admins", 7, "dev"], {"admins", "dev"}),
        ("[]", set()),
        ("", set()),
        (None, set()),
    ],
)
def test_groups_as_the_gateway_flattens_them(value: object, groups: set[str]) -> None:
    assert gateway_groups(value) == frozenset(groups)


def _mapper(**settings: object) -> GatewayClaims:
    return GatewayClaims(OidcSettings(issuer=ISSUER, groups_claim="cognito:groups", **settings))  # type: ignore[arg-type]


def test_claims_become_a_principal() -> None:
    identity = GatewayIdentity(
        {
            "sub": "u1",
            "iss": ISSUER,
            "token_use": "access",
            "cognito:groups": "eng,ops",
            "client_id": "c1",
            "jti": "j1",
        },
        None,
        "cognito",
    )
    principal = _mapper()(identity)
    assert (principal.subject, principal.groups, principal.auth_method) == (
        "u1",
        frozenset({"eng", "ops"}),
        "gateway-cognito",
    )
    assert (principal.credential_id, principal.client) == ("jti:j1", "c1")


def test_subject_claim_setting_is_used() -> None:
    identity = GatewayIdentity({"sub": "u1", "email": "u1@example.com", "iss": ISSUER}, None, "jwt")
    assert _mapper(subject_claim="email")(identity).subject == "u1@example.com"
    with pytest.raises(Unauthenticated, match="no usable 'username' claim"):
        _mapper(subject_claim="username")(identity)


def test_scopes_from_the_jwt_authorizer_list_or_the_scope_claim() -> None:
    mapper = _mapper(required_scopes=["mcp/read"])
    assert mapper(GatewayIdentity({"sub": "u", "iss": ISSUER}, ("mcp/read",), "jwt")).subject == "u"
    assert (
        mapper(GatewayIdentity({"sub": "u", "iss": ISSUER, "scope": "openid mcp/read"}, None, "cognito")).subject == "u"
    )
    with pytest.raises(InsufficientScope) as caught:
        mapper(GatewayIdentity({"sub": "u", "iss": ISSUER, "scope": "openid"}, None, "cognito"))
    assert (caught.value.http_status, caught.value.subject, caught.value.required) == (403, "u", ["mcp/read"])


def test_a_foreign_issuer_or_an_id_token_is_refused() -> None:
    with pytest.raises(Unauthenticated, match=r"accepted a token from 'https://other\.example'"):
        _mapper()(GatewayIdentity({"sub": "u", "iss": "https://other.example"}, None, "jwt"))
    with pytest.raises(Unauthenticated, match="'id' token, not an access token"):
        _mapper()(GatewayIdentity({"sub": "u", "iss": ISSUER, "token_use": "id"}, None, "cognito"))
    with pytest.raises(Unauthenticated, match="not in a form this server reads"):
        _mapper()({"sub": "u"})
