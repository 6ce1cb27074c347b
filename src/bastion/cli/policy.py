"""`bastion policy check` (explain one decision) and `bastion policy lint` (find mistakes in the file).

Both read the policy the server would serve: `--file`, else `BASTION_POLICY__URL` (an SSM parameter or S3 object,
as the server fetches it), else the policy file of the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bastion.cli.common import console, err_console, settings_from
from bastion.errors import BastionError, ConfigError, Unavailable
from bastion.policy.engine import RuleTrace, request_problem
from bastion.policy.lint import Finding, lint_policy
from bastion.policy.loader import parse_policy, read_policy_text
from bastion.policy.remote import read_configured_policy
from bastion.policy.sizes import parse_size
from bastion.policy.types import AccessRequest, Decision, Operation

__all__ = ["app"]

app = typer.Typer(
    help="Check who may do what under the access policy, and lint the policy file (see docs/policy.md).",
    no_args_is_help=True,
)

_BAD_INPUT = 2

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Policy YAML. Default: the policy the server would load: BASTION_POLICY__URL (ssm:/s3://), else "
        "BASTION_POLICY__FILE or <data-dir>/policy.yaml.",
    ),
]


def fail(error: BastionError | str, code: int) -> typer.Exit:
    """Like `bastion.cli.common.fail`, without wrapping: paths and reasons stay on one line (greppable)."""
    message = error.message if isinstance(error, BastionError) else error
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def policy_text(ctx: typer.Context, file: Path | None) -> tuple[str, str]:
    """`--file`'s text, else the configured policy's; and where it came from. Raises ConfigError or Unavailable."""
    if file is not None:
        return read_policy_text(file), str(file)
    return read_configured_policy(settings_from(ctx))


def full_ref(ref: str) -> str:
    """`main` -> `refs/heads/main`; a name that already starts with `refs/` is kept (`refs/tags/v1`)."""
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


@app.command()
def check(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="The caller (user name or token subject).")],
    repo: Annotated[str, typer.Option("--repo", help="Repository as owner/repo.")],
    op: Annotated[Operation, typer.Option("--op", help="The operation a tool would perform.")],
    group: Annotated[list[str] | None, typer.Option("--group", help="A group of the caller (repeatable).")] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="Branch name, or a full ref such as refs/tags/v1.")] = None,
    path: Annotated[str | None, typer.Option("--path", help="Repository-relative file path.")] = None,
    size: Annotated[str | None, typer.Option("--size", help="File size in bytes (or e.g. 2MiB).")] = None,
    file: FileOption = None,
) -> None:
    """Show whether a request would be allowed, why, and what every rule made of it.

    Exit status: 0 allowed, 1 denied, 2 bad input or an unusable policy file.
    """
    try:
        size_bytes = parse_size(size) if size is not None else None
    except ValueError as exc:
        raise fail(f"--size: {exc}", _BAD_INPUT) from None
    request = AccessRequest(
        subject=subject,
        groups=frozenset(group or ()),
        repo=repo,
        operation=op,
        ref=full_ref(ref) if ref is not None else None,
        path=path,
        size=size_bytes,
    )
    problem = request_problem(request)
    if problem is not None:
        raise fail(problem, _BAD_INPUT)
    try:
        text, source = policy_text(ctx, file)
        policy = parse_policy(text, source)
    except (ConfigError, Unavailable) as exc:
        raise fail(exc, _BAD_INPUT) from None
    decision, traces = policy.explain(request)
    _print_decision(decision, source)
    console.print(_trace_table(traces, decision))
    raise typer.Exit(0 if decision.allowed else 1)


def _print_decision(decision: Decision, source: str) -> None:
    verdict = "[bold green]ALLOW[/]" if decision.allowed else "[bold red]DENY[/]"
    console.print(f"{verdict}  {escape(decision.reason)}", soft_wrap=True, highlight=False)
    console.print(f"rule:   {escape(decision.rule or '-')}", soft_wrap=True, highlight=False)
    if decision.allowed:
        console.print(
            f"limits: max_file_size={decision.max_file_size} bytes, redaction={decision.redaction}",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"policy: {escape(source)}", soft_wrap=True, highlight=False)


def _trace_table(traces: list[RuleTrace], decision: Decision) -> Table:
    table = Table(title="rules, in file order", title_justify="left", show_lines=False)
    for column in ("line", "rule", "effect", "result", "detail"):
        table.add_column(column, overflow="fold")
    for trace in traces:
        if trace.matched:
            result = "[bold]decides[/]" if trace.rule == decision.rule else "matches"
        else:
            result = f"no: {trace.failed_check}" if trace.failed_check else "no"
        table.add_row(
            str(trace.line or ""),
            escape(trace.rule),
            trace.effect,
            result,
            escape(trace.detail),
        )
    if not traces:
        table.add_row("", "(no rules)", "", "", "nothing allows anything: deny by default")
    return table


@app.command()
def lint(
    ctx: typer.Context,
    file: FileOption = None,
    known_repo: Annotated[
        list[str] | None,
        typer.Option("--known-repo", help="A repository that exists (repeatable): warns about globs matching none."),
    ] = None,
) -> None:
    """Report every problem in the policy. Exit status 1 if any is an error (the server would refuse it), 2 if a
    remote policy (BASTION_POLICY__URL) cannot be fetched."""
    try:
        text, source = policy_text(ctx, file)
        findings = lint_policy(text, known_repos=known_repo, source=source)
    except ConfigError as exc:  # a file that is missing or not UTF-8, or a malformed policy.url: one finding
        settings = settings_from(ctx)
        source = str(file) if file is not None else settings.policy.url or str(settings.policy_file)
        findings = [Finding("error", exc.message)]
    except Unavailable as exc:
        raise fail(exc, _BAD_INPUT) from None
    for finding in findings:
        where = f"{source}:{finding.line}" if finding.line else source
        style = "bold red" if finding.level == "error" else "yellow"
        console.print(
            f"{escape(where)}: [{style}]{finding.level}[/]: {escape(finding.message)}", soft_wrap=True, highlight=False
        )
    errors = sum(finding.level == "error" for finding in findings)
    warnings = len(findings) - errors
    if not findings:
        console.print(f"{escape(source)}: no problems found", soft_wrap=True, highlight=False)
    else:
        console.print(f"{errors} error(s), {warnings} warning(s)", highlight=False)
    raise typer.Exit(1 if errors else 0)
