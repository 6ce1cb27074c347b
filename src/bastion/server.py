"""The MCP server: nine read-only repository tools on the SDK's MCPServer, in a fixed order."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from time import perf_counter
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.caching import CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    ToolAnnotations,
)
from mcp_types import Tool as MCPTool
from pydantic import Field, ValidationError

from bastion import __version__
from bastion.audit.event import caller_fields
from bastion.observability.metrics import METRICS
from bastion.principal import Principal, RequestInfo
from bastion.services import Services
from bastion.tools import analyze, files, history, listing, search
from bastion.tools.arguments import invalid_arguments, unknown_arguments
from bastion.tools.call import ERROR_META_KEY, audit_event, client_name, error_result, run_tool, session_client
from bastion.tools.models import (
    AnalysisOut,
    CommitDetailOut,
    CommitListOut,
    ComparisonOut,
    FileContentsOut,
    RefListOut,
    RepositoryListOut,
    SearchOut,
    TreeOut,
)
from bastion.transport.authn import PRINCIPAL_KEY
from bastion.transport.edge import AUDITED_KEY, REQUEST_INFO_KEY

__all__ = ["TOOL_NAMES", "build_mcp"]

TOOL_NAMES = (
    "list_repositories",
    "list_branches",
    "list_tags",
    "get_file_contents",
    "get_repository_tree",
    "search_code",
    "list_commits",
    "get_commit",
    "compare_refs",
    "analyze_repository",
)

INSTRUCTIONS = """\
Read-only access to the company's git repositories, governed by policy. Start with list_repositories to see what
you may use. Every answer names the commit it was read from (resolved_sha): cite it. A denial says which rule
denied and why; do not retry a denied call with a different spelling of the same repository, ref or path."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Owner = Annotated[str, Field(description="Repository owner (organization or user), e.g. 'acme'.", max_length=200)]
Repo = Annotated[str, Field(description="Repository name without owner, e.g. 'api'.", max_length=200)]
Ref = Annotated[
    str | None,
    Field(description="Branch, tag, or commit SHA. Default: the repository's default branch.", max_length=256),
]
Page = Annotated[int, Field(description="Page number, from 1.", ge=1, le=100_000)]
PerPage = Annotated[int, Field(description="Results per page (1-100).", ge=1, le=100)]

# Set by run_tool's caller below so the interceptor knows a governed body already wrote the audit record.
_recorded: contextvars.ContextVar[bool] = contextvars.ContextVar("bastion_recorded", default=False)


class AuditEveryCall(Extension):
    """Records the calls the SDK answers before any tool body runs: unknown tools, arguments that fail the
    input schema. Governed tool bodies record their own, richer event."""

    identifier = "dev.mcp-bastion/audit"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        started = perf_counter()
        if params.name not in TOOL_NAMES:
            # The spec makes an unknown tool a protocol error (-32602); the SDK would answer isError instead.
            message = f"Unknown tool: {params.name[:128]!r}; see tools/list"
            await self._record(params, ctx, message, started)
            raise MCPError(code=INVALID_PARAMS, message=message)
        token = _recorded.set(False)
        try:
            outcome = await call_next(ctx)
            if not _recorded.get():
                await self._record(params, ctx, outcome, started)
            return outcome
        finally:
            _recorded.reset(token)

    async def _record(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], outcome: Any, started: float
    ) -> None:
        scope: dict[str, Any] = getattr(ctx.request, "scope", None) or {}
        scope[AUDITED_KEY] = True
        found, known = scope.get(PRINCIPAL_KEY), scope.get(REQUEST_INFO_KEY)
        principal = found if isinstance(found, Principal) else None
        info = known if isinstance(known, RequestInfo) else None
        text = outcome if isinstance(outcome, str) else ""
        if isinstance(outcome, CallToolResult) and outcome.content:
            error = (outcome.meta or {}).get(ERROR_META_KEY)
            # Our refusals carry their reason bare, as a governed call's audit record has it.
            message = error.get("message") if isinstance(error, dict) else None
            text = str(message if message is not None else getattr(outcome.content[0], "text", ""))[:500]
        failed = isinstance(outcome, str) or (isinstance(outcome, CallToolResult) and bool(outcome.is_error))
        receipt = self.services.record(
            audit_event(
                **caller_fields(principal, info),
                client=client_name(session_client(ctx.session), info),
                tool=params.name[:128],
                decision="none",
                reason=text or None,
                duration_ms=round((perf_counter() - started) * 1000, 3),
                outcome="invalid_input" if failed else "ok",
            )
        )
        if receipt is not None:
            await receipt  # in the durable spool before the answer leaves
        # An unknown name is counted as "unknown": a caller must not be able to mint metric series.
        tool = params.name if params.name in TOOL_NAMES else "unknown"
        METRICS.tool_call(tool, "invalid_input" if failed else "ok", "none", perf_counter() - started, None)


_Tool = TypeVar("_Tool", bound=Callable[..., Any])


class GovernedMCPServer(MCPServer):
    """MCPServer whose tools refuse arguments they do not take, and say in our words which argument fails the
    schema (bastion.tools.arguments). Both refusals are recorded by AuditEveryCall, as the SDK's own are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parameters: dict[str, tuple[str, ...]] = {}  # in signature order, for the refusal's text
        self.accepted: dict[str, frozenset[str]] = {}
        self.governed: dict[str, Tool] = {}  # the SDK's record of each, for bastion.transport.direct

    def governed_tool(self, title: str) -> Callable[[_Tool], _Tool]:
        """Register a read-only tool; its description is the docstring without the source's indentation."""

        def register(fn: _Tool) -> _Tool:
            description = inspect.cleandoc(fn.__doc__ or "")
            self.add_tool(fn, title=title, description=description, annotations=READ_ONLY)
            self.parameters[fn.__name__] = tuple(name for name in inspect.signature(fn).parameters if name != "ctx")
            self.accepted[fn.__name__] = frozenset(self.parameters[fn.__name__])
            registered = self._tool_manager.get_tool(fn.__name__)
            if registered is not None:
                self.governed[fn.__name__] = registered
            return fn

        return register

    async def list_tools(self) -> list[MCPTool]:
        """The SDK's listing, with each input schema saying what call_tool enforces: no other arguments."""
        tools = await super().list_tools()
        for listed in tools:
            if listed.name in self.parameters:
                listed.input_schema["additionalProperties"] = False
        return tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        accepted = self.accepted.get(name)
        if accepted is not None and not accepted.issuperset(arguments):
            refusal = unknown_arguments(name, arguments, self.parameters[name])
            if refusal is not None:
                return error_result(refusal)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and not isinstance(exc, UnexpectedToolError):
                return error_result(invalid_arguments(exc.__cause__))
            raise


def build_mcp(services: Services) -> GovernedMCPServer:
    mcp = GovernedMCPServer(
        "mcp-bastion",
        title="mcp-bastion",
        version=__version__,
        instructions=INSTRUCTIONS,
        extensions=[AuditEveryCall(services)],
        # The tool list is the same for every caller and changes only with a new server version.
        cache_hints={"tools/list": CacheHint(ttl_ms=300_000, scope="public")},
        subscriptions=False,
    )

    tool = mcp.governed_tool

    async def governed(ctx: Context, tool: str, body: Any) -> CallToolResult:
        _recorded.set(True)
        return await run_tool(services, ctx, tool, body)

    @tool("List repositories")
    async def list_repositories(ctx: Context) -> Annotated[CallToolResult, RepositoryListOut]:
        """List the repositories you may use, with their default branch, its commit, the last mirror sync,
        and which operations (read, diff, analyze, search) policy allows you on each."""
        return await governed(ctx, "list_repositories", listing.list_repositories)

    @tool("List branches")
    async def list_branches(
        owner: Owner, repo: Repo, ctx: Context, page: Page = 1, per_page: PerPage = 30
    ) -> Annotated[CallToolResult, RefListOut]:
        """List the branches of a repository that you may read, with the commit each points at."""
        return await governed(
            ctx, "list_branches", lambda call: listing.list_refs(call, owner, repo, "branch", page, per_page)
        )

    @tool("List tags")
    async def list_tags(
        owner: Owner, repo: Repo, ctx: Context, page: Page = 1, per_page: PerPage = 30
    ) -> Annotated[CallToolResult, RefListOut]:
        """List the tags of a repository that you may read, with the commit each points at."""
        return await governed(
            ctx, "list_tags", lambda call: listing.list_refs(call, owner, repo, "tag", page, per_page)
        )

    @tool("Get file or directory contents")
    async def get_file_contents(
        owner: Owner,
        repo: Repo,
        ctx: Context,
        path: Annotated[str, Field(description="File or directory path; '' or '/' is the root.", max_length=4096)] = "",
        ref: Ref = None,
        start_line: Annotated[int | None, Field(description="First line to return (from 1).", ge=1)] = None,
        end_line: Annotated[int | None, Field(description="Last line to return (inclusive).", ge=1)] = None,
        max_bytes: Annotated[
            int | None, Field(description="Most bytes of content to return (default 256 KiB).", ge=1)
        ] = None,
    ) -> Annotated[CallToolResult, FileContentsOut]:
        """Read a file (or list a directory) at a branch, tag or commit. Large files come back truncated with
        `truncated: true`: ask for a line range. Binary files are described, not returned."""
        return await governed(
            ctx,
            "get_file_contents",
            lambda call: files.get_file_contents(call, owner, repo, path, ref, start_line, end_line, max_bytes),
        )

    @tool("Get repository tree")
    async def get_repository_tree(
        owner: Owner,
        repo: Repo,
        ctx: Context,
        ref: Ref = None,
        path_filter: Annotated[
            str | None, Field(description="Only entries under this directory, e.g. 'src/api'.", max_length=4096)
        ] = None,
        recursive: Annotated[bool, Field(description="Walk subdirectories (default true).")] = True,
    ) -> Annotated[CallToolResult, TreeOut]:
        """List the files and directories of a repository at a branch, tag or commit."""
        return await governed(
            ctx,
            "get_repository_tree",
            lambda call: files.get_repository_tree(call, owner, repo, ref, path_filter, recursive),
        )

    @tool("Search code")
    async def search_code(
        query: Annotated[str, Field(description="Text to find (a regular expression when regex is true).")],
        ctx: Context,
        owner: Annotated[str | None, Field(description="Only repositories of this owner.", max_length=200)] = None,
        repo: Annotated[str | None, Field(description="Only this repository.", max_length=200)] = None,
        ref: Ref = None,
        path_glob: Annotated[
            str | None, Field(description="Only paths matching this glob, e.g. '**/*.py'.", max_length=200)
        ] = None,
        regex: bool = False,
        case_sensitive: bool = False,
        max_results: Annotated[int, Field(description="Most matching lines to return.", ge=1, le=1000)] = 50,
    ) -> Annotated[CallToolResult, SearchOut]:
        """Search file contents across the repositories you may search (or one of them), at the default branch
        unless ref is given. Results only come from paths you may read. Credentials in matching lines are masked,
        and a line is found only where the query matches it outside its credentials (searching for a token's
        prefix finds nothing)."""
        return await governed(
            ctx,
            "search_code",
            lambda call: search.search_code(
                call, query, owner, repo, ref, path_glob, regex, case_sensitive, max_results
            ),
        )

    @tool("List commits")
    async def list_commits(
        owner: Owner,
        repo: Repo,
        ctx: Context,
        ref: Ref = None,
        path: Annotated[str | None, Field(description="Only commits touching this path.", max_length=4096)] = None,
        author: Annotated[str | None, Field(description="Only commits whose author contains this text.")] = None,
        since: Annotated[str | None, Field(description="ISO 8601 date or time, e.g. 2026-01-31.")] = None,
        until: Annotated[str | None, Field(description="ISO 8601 date or time.")] = None,
        page: Page = 1,
        per_page: PerPage = 30,
    ) -> Annotated[CallToolResult, CommitListOut]:
        """List commits reachable from a branch, tag or commit, newest first."""
        return await governed(
            ctx,
            "list_commits",
            lambda call: history.list_commits(call, owner, repo, ref, path, author, since, until, page, per_page),
        )

    @tool("Get commit")
    async def get_commit(
        owner: Owner,
        repo: Repo,
        sha: Annotated[str, Field(description="Commit SHA (or a branch or tag name).", max_length=256)],
        ctx: Context,
        detail: Annotated[
            Literal["none", "stats", "full_patch"],
            Field(description="none: metadata; stats: files changed; full_patch: the diff (policy 'diff')."),
        ] = "stats",
    ) -> Annotated[CallToolResult, CommitDetailOut]:
        """Get one commit: message, author, and the files it changed (with the patch when detail=full_patch)."""
        return await governed(ctx, "get_commit", lambda call: history.get_commit(call, owner, repo, sha, detail))

    @tool("Compare refs")
    async def compare_refs(
        owner: Owner,
        repo: Repo,
        base: Annotated[str, Field(description="Base branch, tag or SHA.", max_length=256)],
        head: Annotated[str, Field(description="Head branch, tag or SHA.", max_length=256)],
        ctx: Context,
        detail: Annotated[Literal["stats", "full_patch"], Field(description="stats or full_patch.")] = "stats",
        path: Annotated[str | None, Field(description="Only changes under this path.", max_length=4096)] = None,
    ) -> Annotated[CallToolResult, ComparisonOut]:
        """Compare two refs like GitHub's base...head: commits on head since the merge base, and the diff."""
        return await governed(
            ctx, "compare_refs", lambda call: history.compare_refs(call, owner, repo, base, head, detail, path)
        )

    @tool("Analyze repository")
    async def analyze_repository(
        owner: Owner, repo: Repo, ctx: Context, ref: Ref = None
    ) -> Annotated[CallToolResult, AnalysisOut]:
        """Summarize a repository at a ref: languages by bytes, file counts, largest files, top contributors and
        recent commit activity."""
        return await governed(
            ctx, "analyze_repository", lambda call: analyze.analyze_repository(call, owner, repo, ref)
        )

    return mcp
