"""Tool results: a result made from an output model says which model, and carries nothing of it on the wire."""

from __future__ import annotations

import mcp_types

from bastion.tools.models import TreeEntryOut
from bastion.tools.results import ShapedResult, result


def test_a_shaped_result_names_the_model_its_structured_content_was_dumped_from() -> None:
    shaped = result(TreeEntryOut(path="a", type="blob", size=1, sha="0" * 40, mode="100644"), "a")
    assert isinstance(shaped, ShapedResult)
    assert shaped.shape() is TreeEntryOut
    assert shaped.structured_content == {"path": "a", "type": "blob", "size": 1, "sha": "0" * 40, "mode": "100644"}
    # the wire form carries nothing of it
    assert shaped.model_dump(by_alias=True, exclude_none=True) == mcp_types.CallToolResult(
        content=shaped.content, structured_content=shaped.structured_content
    ).model_dump(by_alias=True, exclude_none=True)
