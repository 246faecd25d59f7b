"""``campuscard sim``: run simulated terminals (the real firmware under MicroPython, the
reader chips emulated at the wire level) and operate them from the console.

Usage::

    campuscard sim pos --workspace sim-pos            # cashier console, PN532 reader
    campuscard sim pos --reader mfrc522               # same, MFRC522 over the SPI bridge
    campuscard sim door --fail-mode secure            # a dorm door with a fail-secure lock
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def sim() -> None:
    """Simulated terminals: firmware under MicroPython with emulated hardware."""


@sim.command()
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path), default=Path("sim-pos"),
              show_default=True, help="Directory for config, keys, flash and the virtual cards.")
@click.option("--reader", type=click.Choice(["pn532", "mfrc522"]), default="pn532", show_default=True,
              help="Reader chip to emulate.")
def pos(workspace: Path, reader: str) -> None:
    """Cashier console of a POS terminal: type amounts, tap named cards, enter PINs.

    The first run personalises a few virtual cards (alice, bob, carol, dave, erin) with the
    workspace's keys; `help` at the prompt lists the commands.

    Example: campuscard sim pos --workspace sim-pos
    """
    from terminal_sim.console import run
    from terminal_sim.terminal_process import FirmwareError

    try:
        run(workspace, reader, read=input, echo=click.echo)
    except FirmwareError as e:
        raise click.ClickException(str(e)) from e


@sim.command()
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path), default=Path("sim-door"),
              show_default=True, help="Directory for config, keys, flash and the virtual cards.")
@click.option("--reader", type=click.Choice(["pn532", "mfrc522"]), default="pn532", show_default=True,
              help="Reader chip to emulate.")
@click.option("--fail-mode", type=click.Choice(["safe", "secure"]), default="safe", show_default=True,
              help="The lock: fail-safe (magnetic, released without power) or fail-secure (stays "
                   "locked, the terminal runs on battery).")
def door(workspace: Path, reader: str, fail_mode: str) -> None:
    """Console of a door terminal: tap named cards, grant and revoke them, curfew, power cuts.

    The first run personalises the virtual cards (alice, bob, carol, dave, erin) and puts
    alice and dave on the door's list 0 ("allow"), bob on list 1 ("anytime", also during the
    curfew); `help` at the prompt lists the commands.

    Example: campuscard sim door --workspace sim-door --fail-mode secure
    """
    from terminal_sim.door_console import run
    from terminal_sim.terminal_process import FirmwareError

    try:
        run(workspace, reader, fail_mode, read=input, echo=click.echo)
    except FirmwareError as e:
        raise click.ClickException(str(e)) from e
