"""`voltway import ...`: load station data from files and URLs."""

import typer

import_app = typer.Typer(help="Import station data.", no_args_is_help=True)
