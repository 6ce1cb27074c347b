"""bastion.aws.clients: the settings every AWS client here is built with."""

from __future__ import annotations

from bastion.aws.clients import aws_client


def test_a_client_carries_the_given_timeouts_retries_endpoint_and_user_agent() -> None:
    client = aws_client(
        "logs",
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        attempts=2,
        connect_timeout=3,
        read_timeout=7,
        user_agent="mcp-bastion-test",
    )
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 7)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert config.user_agent_extra == "mcp-bastion-test"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
