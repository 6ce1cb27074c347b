#!/usr/bin/env python3
"""CDK entry point (run by the CDK CLI from this directory): `cdk deploy -c variant=service ...`.

Settings come from cdk.json's context and `-c key=value`; docs/deploy-aws.md lists them.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from bastion_infra.stacks import build_stacks

app = cdk.App()
build_stacks(app, repo_root=Path(__file__).resolve().parents[2])
app.synth()
