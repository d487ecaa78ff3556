"""The command line: a thin Typer layer over the domain modules."""
