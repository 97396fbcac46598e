"""`voltway keys ...`: API keys from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from voltway.accounts.roles import Role
from voltway.core.commands import run_with_db

if TYPE_CHECKING:
    from voltway.accounts.models import ApiKey
    from voltway.core.db import Database
    from voltway.settings import Settings

keys_app = typer.Typer(help="API keys for integrations, operators and administrators.", no_args_is_help=True)


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="admin, operator or readonly")],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by")] = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from voltway.accounts.keys import create_key

    async def action(db: Database, _settings: Settings) -> str:
        async with db.sessionmaker.begin() as session:
            _key, secret = await create_key(session, role=role, name=name)
        return secret

    typer.echo(run_with_db(action))


def _when(key: ApiKey, field: str) -> str:
    value = getattr(key, field)
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@keys_app.command("list")
def list_() -> None:
    """List keys (id, prefix, role, name, created, last used, revoked); never a secret."""
    from voltway.accounts.keys import list_keys

    async def action(db: Database, _settings: Settings) -> list[ApiKey]:
        async with db.sessionmaker() as session:
            return await list_keys(session)

    keys = run_with_db(action)
    if not keys:
        typer.echo("no API keys")
        return
    typer.echo(f"{'id':>4}  {'prefix':<12} {'role':<9} {'created':<16}  {'last used':<16}  {'revoked':<16}  name")
    for k in keys:
        typer.echo(
            f"{k.id:>4}  {k.prefix:<12} {k.role:<9} {_when(k, 'created_at'):<16}  {_when(k, 'last_used_at'):<16}  "
            f"{_when(k, 'revoked_at'):<16}  {k.name or ''}"
        )


@keys_app.command("revoke")
def revoke(ref: Annotated[str, typer.Argument(help="The key's id or its prefix (as shown by `keys list`)")]) -> None:
    """Revoke a key: it stops working at once."""
    from voltway.accounts.keys import find_key, revoke_key

    async def action(db: Database, _settings: Settings) -> ApiKey | None:
        async with db.sessionmaker.begin() as session:
            key = await find_key(session, ref=ref)
            return revoke_key(key) if key is not None else None

    key = run_with_db(action)
    if key is None:
        typer.secho(f"no single API key with id or prefix {ref!r}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key.id} ({key.prefix}, {key.role})")
