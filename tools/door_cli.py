"""``campuscard door ...``: door groups, their doors, and who may open them (dorm managers).

Each command opens the database, calls one function of ``sync_server.doors`` and prints the
result; a change reaches the doors at their next sync (every ``sync_interval_s``).

Usage::

    campuscard door group-add --db campus.db "Building 3"
    campuscard door assign --db campus.db "Building 3" 2001
    campuscard door grant-group --db campus.db "Building 3" b3-residents --cards b3.txt
    campuscard door grant --db campus.db "Building 3" T0001 --until 2026-03-01
    campuscard door show --db campus.db "Building 3"
"""

from __future__ import annotations

import time
from typing import Any

import click

from tools.server_cli import _json, db_option


def _now() -> int:
    return int(time.time())


def _until(db: Any, text: str | None) -> int | None:
    from sync_server import admin_api

    if text is None:
        return None
    return admin_api.when(db, int(text) if text.isdigit() else text, True)


def _refs(listfile: Any, cards: tuple[str, ...]) -> list[str]:
    refs = list(cards)
    if listfile is not None:
        refs += [line.strip() for line in listfile if line.strip() and not line.startswith("#")]
    return refs


def _lists(out: dict[str, Any]) -> str:
    return "; ".join("list {} {} v{} ({} cards)".format(x["list"], x["name"], x["version"], x["count"])
                     for x in out["lists"])


def _when(t: int | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _door() -> None:
    """Door access: door groups (e.g. a dorm building), their doors, grants to cards and card groups."""


door: click.Group = click.group(name="door")(_door)  # typed: server_cli imports it back


@door.command(name="group-add")
@db_option
@click.argument("name")
@click.option("--note", default="", help="Free text, e.g. the building's address.")
def group_add(db: Any, name: str, note: str) -> None:
    """Add a door group: doors that share one access list (a building, a lab wing).

    Example: campuscard door group-add --db campus.db "Building 3"
    """
    from sync_server import doors

    out = doors.add_group(db, _now(), name, note)
    click.echo("door group {}: {}".format(out["id"], out["name"]))


@door.command(name="assign")
@db_option
@click.argument("group")
@click.argument("terminal_id", type=int)
def assign(db: Any, group: str, terminal_id: int) -> None:
    """Put a door terminal (role door) into a door group; it takes the group's lists at its next sync.

    Example: campuscard door assign --db campus.db "Building 3" 2001
    """
    from sync_server import doors

    out = doors.assign(db, _now(), group, terminal_id)
    click.echo("terminal {} is a door of {} ({} doors)".format(terminal_id, out["name"], len(out["doors"])))


@door.command(name="grant")
@db_option
@click.argument("group")
@click.argument("card", metavar="CARD")
@click.option("--anytime", is_flag=True, help="Also during the curfew (staff, dorm managers).")
@click.option("--until", default=None, help="Grant ends after this day (YYYY-MM-DD) or at UTC seconds.")
@click.option("--note", default="", help="Why, e.g. 'visitor of room 301'.")
def grant(db: Any, group: str, card: str, anytime: bool, until: str | None, note: str) -> None:
    """Grant one card (card number or UID) the doors of a group; the only way for a temporary card.

    Example: campuscard door grant --db campus.db "Building 3" T0001 --until 2026-03-01 --note visitor
    """
    from sync_server import doors

    out = doors.grant(db, _now(), group, card, anytime, _until(db, until), note)
    click.echo("card {} may open {}{}{}; {}".format(out["card"], out["door_group"], " anytime" if anytime else "",
                                                    " until " + _when(out["expires"]) if out["expires"] else "",
                                                    _lists(out)))


@door.command(name="revoke")
@db_option
@click.argument("group")
@click.argument("card", metavar="CARD")
def revoke(db: Any, group: str, card: str) -> None:
    """Withdraw one card's individual grant on a door group.

    Example: campuscard door revoke --db campus.db "Building 3" S2024001
    """
    from sync_server import doors

    out = doors.revoke(db, _now(), group, card)
    click.echo("card {} no longer granted on {}; {}".format(out["card"], out["door_group"], _lists(out)))


@door.command(name="grant-group")
@db_option
@click.argument("group")
@click.argument("card_group")
@click.option("--type", "ctype", type=click.Choice(["staff", "student", "identity"]), default=None,
              help="A new card group of every card of this type.")
@click.option("--cards", "listfile", type=click.File("r"), default=None,
              help="Add the cards in this file (one card number or UID a line; '-' reads stdin) to the card group.")
@click.option("--card", "cards", multiple=True, help="Add this card to the card group (repeatable).")
@click.option("--anytime", is_flag=True, help="Also during the curfew.")
@click.option("--until", default=None, help="Grant ends after this day (YYYY-MM-DD) or at UTC seconds.")
def grant_group(db: Any, group: str, card_group: str, ctype: str | None, listfile: Any, cards: tuple[str, ...],
                anytime: bool, until: str | None) -> None:
    """Grant a card group the doors of a door group, creating the card group if new and adding
    the cards given to it. Temporary cards are skipped (they need individual grants).

    Example: campuscard door grant-group --db campus.db "Building 3" b3-residents --cards b3.txt
    """
    from sync_server import doors

    out = doors.grant_group(db, _now(), group, card_group, ctype, _refs(listfile, cards), anytime, _until(db, until))
    click.echo("card group {} ({}, {} added) may open {}{}; {}".format(
        out["card_group"], out["kind"], out["added"], out["door_group"], " anytime" if anytime else "", _lists(out)))
    for ref in out["skipped_temporary"]:
        click.echo(f"skipped temporary card {ref}: grant it with `campuscard door grant`")


@door.command(name="revoke-group")
@db_option
@click.argument("group")
@click.argument("card_group")
@click.option("--cards", "listfile", type=click.File("r"), default=None,
              help="Only take the cards in this file out of the card group (every door group granting it).")
@click.option("--card", "cards", multiple=True, help="Only take this card out of the card group (repeatable).")
def revoke_group(db: Any, group: str, card_group: str, listfile: Any, cards: tuple[str, ...]) -> None:
    """Withdraw a card group's grant on a door group, or with --card/--cards take cards out of the card group.

    Example: campuscard door revoke-group --db campus.db "Building 3" b3-residents --card S2024001
    """
    from sync_server import doors

    refs = _refs(listfile, cards)
    out = doors.revoke_group(db, _now(), group, card_group, refs or None)
    if refs:
        click.echo("{} cards taken out of card group {}; {}".format(out["removed"], out["card_group"], _lists(out)))
    else:
        click.echo("card group {} no longer granted on {}; {}".format(out["card_group"], out["door_group"],
                                                                     _lists(out)))


@door.command(name="show")
@db_option
@click.argument("group")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def show(db: Any, group: str, as_json: bool) -> None:
    """Show a door group: its lists, its doors (and whether each holds the current lists), its grants.

    Example: campuscard door show --db campus.db "Building 3"
    """
    from sync_server import doors

    out = doors.show(db, group, _now())
    if as_json:
        _json(out)
        return
    click.echo("door group {} {}{}".format(out["id"], out["name"], " - " + out["note"] if out["note"] else ""))
    for x in out["lists"]:
        click.echo("  list {} {:8} version {}  {} cards  hash {}".format(x["list"], x["name"], x["version"],
                                                                        x["count"], x["hash"]))
    for d in out["doors"]:
        click.echo("  door {}  {}  last seen {}  {}".format(d["terminal_id"], d["name"] or "-", _when(d["last_seen"]),
                                                          "lists current" if d["in_sync"] else "lists behind"))
    for g in out["group_grants"]:
        click.echo("  card group {} ({}, {} members){}  until {}".format(
            g["card_group"], g["kind"], g["members"], " anytime" if g["anytime"] else "", _when(g["expires"])))
    for c in out["card_grants"]:
        click.echo("  card {} {} {} ({}){}  until {}  {}".format(
            c["card_no"], c["uid"], c["type"], c["card_status"], " anytime" if c["anytime"] else "",
            _when(c["expires"]), c["note"]))


@door.command(name="list")
@db_option
def list_(db: Any) -> None:
    """List door groups (doors, grants, list versions) and card groups.

    Example: campuscard door list --db campus.db
    """
    from sync_server import doors

    out = doors.list_all(db)
    for g in out["door_groups"]:
        click.echo("door group {}\t{}\t{} doors\t{} card grants\t{} card groups\t{}".format(
            g["id"], g["name"], g["doors"], g["card_grants"], g["group_grants"], _lists(g)))
    for cg in out["card_groups"]:
        click.echo("card group {}\t{}\t{}\t{} listed".format(cg["id"], cg["name"], cg["kind"], cg["members"]))
