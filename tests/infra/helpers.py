"""Small readers for synthesized CloudFormation templates."""

from __future__ import annotations

from typing import Any

__all__ = ["allows", "audit_hmac_key_secret", "env_of", "iam_statements", "only", "resources"]


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for one CloudFormation type."""
    return {key: value for key, value in template["Resources"].items() if value["Type"] == resource_type}


def only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """An ECS container definition's or a Lambda function's environment as a dict."""
    if "Environment" in container and isinstance(container["Environment"], list):
        return {item["Name"]: item["Value"] for item in container["Environment"]}
    return dict(container["Environment"]["Variables"])


def iam_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(owner logical id, statement) for every inline and attached policy statement in the template."""
    found: list[tuple[str, dict[str, Any]]] = []
    for key, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy":
            found += [(key, statement) for statement in properties["PolicyDocument"]["Statement"]]
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                found += [(key, statement) for statement in policy["PolicyDocument"]["Statement"]]
    return found


def allows(statements: list[dict[str, Any]], action: str, resource: Any) -> bool:
    """Whether one of `statements` allows `action` on exactly `resource` (a literal or a Ref / Fn::GetAtt)."""
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement.get("Effect") == "Allow" and action in actions and resource in targets:
            return True
    return False


def audit_hmac_key_secret(template: dict[str, Any]) -> str:
    """Logical id of the secret sealing the audit chain, checked to hold a generated key and to outlive the stack."""
    found = {
        key: secret
        for key, secret in resources(template, "AWS::SecretsManager::Secret").items()
        if "audit hash chain" in secret["Properties"].get("Description", "")
    }
    assert len(found) == 1, f"expected one audit HMAC key secret, found {sorted(found)}"
    key, secret = next(iter(found.items()))
    # A bare generated string (no GenerateStringKey: the key is the whole secret string), 64 letters and digits.
    assert secret["Properties"]["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    # Records sealed with the key verify only with it: deleting or replacing the stack must not delete it.
    assert (secret.get("DeletionPolicy"), secret.get("UpdateReplacePolicy")) == ("Retain", "Retain")
    return key
