"""The ``campuscard`` command: one click group; each subcommand calls one library function."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="campuscard")
def main() -> None:
    """Campus one-card system: terminals, sync server and card-office tools."""


@main.command()
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Folder for the server database and terminal workspaces (default: a new temporary one).")
@click.option("--serve", is_flag=True, help="Keep the sync server running on the demo's data afterwards.")
def demo(workdir: str | None, serve: bool) -> None:
    """Run a scripted lunch service on a simulated campus (SQLite, simulated hardware).

    Starts the sync server, two canteen tills and a dorm door running the firmware under
    MicroPython, issues cards, sells, cuts the network, reports a card lost, opens the door;
    prints the reconciliation and exits non-zero unless the ledger audit balances.

    Example: campuscard demo --serve
    """
    import tempfile
    from pathlib import Path

    from tools import demo as demo_mod

    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="campuscard-demo-")
    elif Path(workdir, "campus.db").exists():
        raise click.ClickException(f"{workdir} already holds a demo database: give a new --workdir, "
                                   f"or serve it with: campuscard server --db {Path(workdir, 'campus.db')}")
    if not demo_mod.run(Path(workdir), echo=click.echo, serve=serve):
        raise click.ClickException("the demo's audit did not balance or a step failed; see the lines above")


@main.command()
def selfcheck() -> None:
    """Check that the protocol runs on this machine's MicroPython and agrees with CPython.

    A technician's quick check of a workstation: records signed and messages sealed on the
    MicroPython unix port are verified with the server's libraries.

    Example: campuscard selfcheck
    """
    from tools import selfcheck as selfcheck_mod

    if not selfcheck_mod.run(echo=click.echo):
        raise click.ClickException("protocol self-check failed; see the lines above")


from tools import server_cli  # noqa: E402  (sync server and card office commands)

for _command in server_cli.COMMANDS:
    main.add_command(_command)

from tools.sim_cli import sim  # noqa: E402

main.add_command(sim)
