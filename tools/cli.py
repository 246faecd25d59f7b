"""The ``campuscard`` command: one click group; each subcommand calls one library function."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="campuscard")
def main() -> None:
    """Campus one-card system: terminals, sync server and card-office tools."""


@main.command()
def demo() -> None:
    """Run the main job on the embedded default (SQLite, simulated hardware).

    Until the end-to-end work lands this is an honest self-check: the shared protocol
    formats run on the real MicroPython unix port and are cross-checked on CPython.

    Example: campuscard demo
    """
    from tools import selfcheck

    ok = selfcheck.run(echo=click.echo)
    if not ok:
        raise click.ClickException("protocol self-check failed; see the lines above")


from tools import server_cli  # noqa: E402  (sync server and card office commands)

for _command in server_cli.COMMANDS:
    main.add_command(_command)

from tools.sim_cli import sim  # noqa: E402

main.add_command(sim)
