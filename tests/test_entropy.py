"""Random bytes for ids: never the same twice, across block refills and across a fork."""

from __future__ import annotations

import os

from bastion.entropy import random_bytes


def test_bytes_are_never_handed_out_twice_across_refills() -> None:
    taken = [random_bytes(16) for _ in range(2000)]  # ~8 blocks of 4 KiB
    assert all(len(chunk) == 16 for chunk in taken)
    assert len(set(taken)) == len(taken)
    assert len(random_bytes(10_000)) == 10_000  # more than a block at once


def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    random_bytes(16)  # the parent now holds a block with unused bytes
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it would hand out next, and leave at once
        os.write(writer, random_bytes(16))
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 16)
    os.close(reader)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != random_bytes(16)  # the parent's next bytes: what a child sharing the block would have said
