"""boto3 clients as every AWS caller here builds them: short timeouts, botocore's standard retry mode with a
bounded number of attempts, and an optional user-agent suffix naming the caller in CloudTrail.

boto3 is imported on first use (it takes tens of milliseconds), so a server that never talks to AWS never pays.
"""

from __future__ import annotations

from typing import Any

__all__ = ["aws_client"]


def aws_client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    attempts: int,
    connect_timeout: float,
    read_timeout: float,
    user_agent: str | None = None,
) -> Any:
    """A new client for `service` in its own boto3 session (building clients is not thread-safe on a shared
    session; using one is)."""
    from boto3.session import Session
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=user_agent,
    )
    return Session().client(service, region_name=region, endpoint_url=endpoint_url, config=config)
