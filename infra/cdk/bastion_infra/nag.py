"""cdk-nag (AwsSolutions) wiring and scoped acknowledgments.

cdk-nag 3 runs as a CDK validation plugin: an unacknowledged finding makes `app.synth()` raise. Each
acknowledgment is attached to the construct it is about (not to the whole app), with the reason it is deliberate,
so a new resource with the same finding still fails synthesis.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

__all__ = ["acknowledge", "add_nag_checks"]


def add_nag_checks(app: App) -> None:
    """Run the AwsSolutions rule pack over every stack of `app` at synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept finding `rule` (e.g. `AwsSolutions-S1`, or `AwsSolutions-IAM5[Resource::*]`) on `construct` only."""
    if len(reason) < 40:
        raise ValueError(f"acknowledging {rule}: give a specific reason, not {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))
