"""The PostgreSQL sink on a real server: several instances meeting an empty database at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from bastion.audit.postgres import PostgresAuditSink


def test_instances_starting_together_on_an_empty_database_create_the_table_once(postgres_url: str) -> None:
    """Every server of a fleet (and the CLI) creates the table on first use; started together, their
    check-then-create sequences must not collide ("relation already exists")."""
    instances = 8
    sinks = [PostgresAuditSink(postgres_url) for _ in range(instances)]
    for sink in sinks:  # connect first, so that the threads below start their table checks together
        with sink.engine.connect():
            pass
    start = threading.Barrier(instances)

    def first_use(sink: PostgresAuditSink) -> int:
        start.wait()
        return len(list(sink.scan()))

    try:
        with ThreadPoolExecutor(instances) as pool:
            assert list(pool.map(first_use, sinks)) == [0] * instances
    finally:
        for sink in sinks:
            sink.close()
