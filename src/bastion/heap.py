"""Keep the garbage collector's full collections short in a long-running server.

What a process builds before it serves (imported modules, settings, the policy, the SDK's tool tables, pydantic's
validators) lives as long as the process, some 100,000 objects. CPython's full collection walks every tracked
object, so each one paused requests for 30-80 ms on the benchmark machine (docs/benchmarks.md, "Tail latency").
`gc.freeze()` moves everything alive at that moment into a permanent generation the collector no longer walks;
what requests allocate is still collected as before.

Called once a process is ready to serve (`bastion serve`, each uvicorn worker, a Lambda environment's first
invocation), never from library code or tests: anything frozen that later becomes cyclic garbage is not reclaimed.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> None:
    gc.collect()  # what start-up left behind goes first, so only live objects are frozen
    gc.freeze()
