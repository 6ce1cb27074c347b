"""Transform a SAM template the way `sam deploy` would, offline, so cfn-lint sees the resources SAM generates.

cfn-lint alone does not run the SAM transform and misses errors inside serverless resources (FACTS.md). This
rewrites local code paths to S3 URIs (what `sam package` does) and runs aws-sam-translator's transform.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader

__all__ = ["transform_sam"]


class _NoManagedPolicies(ManagedPolicyLoader):
    """The translator asks for AWS managed policy ARNs by name; offline there are none to look up."""

    def __init__(self) -> None:
        super().__init__(cast(Any, None))  # no IAM client: load() never calls it

    def load(self) -> dict[str, str]:
        return {}


def transform_sam(path: Path, region: str = "eu-west-1") -> dict[str, Any]:
    from cfnlint.decode import decode
    from samtranslator.translator.transform import transform

    template, matches = decode(str(path))
    if matches or template is None:
        raise ValueError(f"{path}: {[str(match) for match in matches]}")
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://packaged-artifacts/{Path(properties[key]).name}.zip"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        return dict(transform(template, {}, _NoManagedPolicies()))
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
