"""`voltway keys ...`: API keys from the command line."""

from typing import Annotated

import typer

from voltway.accounts.keys import create_key
from voltway.accounts.models import Role
from voltway.core.commands import run_with_db
from voltway.core.db import Database
from voltway.settings import Settings

keys_app = typer.Typer(help="API keys for integrations, operators and administrators.", no_args_is_help=True)


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="admin, operator or readonly")],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by")] = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""

    async def action(db: Database, _settings: Settings) -> str:
        async with db.sessionmaker.begin() as session:
            _key, secret = await create_key(session, role=role, name=name)
        return secret

    typer.echo(run_with_db(action))
