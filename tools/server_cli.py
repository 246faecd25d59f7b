"""``campuscard`` commands of the sync server and the card office, over the library.

Each command opens the database, calls one function of ``sync_server`` and prints the
result; library errors become ``click.ClickException`` with the library's message.

Usage::

    campuscard server --db campus.db --host 0.0.0.0 --port 8080
    campuscard card issue --db campus.db --uid 04A1B2C3 --card-no S2024001 --holder 2024001 \\
        --type student --valid-until 2028-07-31
    campuscard audit --db campus.db
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from sync_server.errors import ServerError


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """The shared ``--db PATH`` option; the command receives an open database as ``db``."""

    @click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False),
                  help="SQLite database file of the sync server.")
    @functools.wraps(f)
    def wrapper(db_path: str, **kwargs: Any) -> Any:
        from sync_server import keys, store

        try:
            db = store.open_db(db_path)
            keys.ensure_secrets(db)
            return f(db=db, **kwargs)
        except ServerError as e:
            raise click.ClickException(e.message) from None

    return wrapper


def _now() -> int:
    return int(time.time())


def _json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


@click.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite database file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.option("--threads", default=4, show_default=True, type=int, help="Worker threads.")
@click.option("--connection-limit", default=4096, show_default=True, type=int,
              help="Open connections served at once (a campus has thousands of terminals).")
@click.option("--test-clock", is_flag=True,
              help="Let the admin API advance server time (tests only; never in production).")
def server(db_path: str, host: str, port: int, threads: int, connection_limit: int, test_clock: bool) -> None:
    """Serve the sync server with gunicorn (creates and migrates the database if needed).

    Example: campuscard server --db campus.db --host 0.0.0.0 --port 8080
    """
    from tools.wsgi_server import serve

    serve(db_path, host, port, threads=threads, connection_limit=connection_limit, test_clock=test_clock)


@click.command(name="admin-token")
@db_option
def admin_token(db: Any) -> None:
    """Print the admin API token (CAMPUSCARD_ADMIN_TOKEN overrides the stored one).

    Example: campuscard admin-token --db campus.db
    """
    from sync_server import keys

    click.echo(keys.admin_token(db))


@click.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit(db: Any, as_json: bool) -> None:
    """Check the ledger: every posting balanced, all entries sum to zero, and every card's
    shadow balance equal to the last balance its records report. Exits 1 on any difference.

    Example: campuscard audit --db campus.db
    """
    from sync_server import ledger

    report = ledger.audit(db)
    if as_json:
        _json(report)
    else:
        for line in ledger.format_report(report):
            click.echo(line)
    if not report["ok"]:
        sys.exit(1)


@click.command()
@db_option
def sweep(db: Any) -> None:
    """Run housekeeping now: quarantine old chain holes, freeze overdue credit, move balances
    of replaced cards after the wait, expire blacklist entries.

    Example: campuscard sweep --db campus.db
    """
    from sync_server import sweep as sweep_mod

    _json(sweep_mod.run(db, _now()))


# -- merchants and terminals ---------------------------------------------------------------


@click.group()
def merchant() -> None:
    """Merchants (canteens, shops): each has its own account and terminals."""


@merchant.command(name="add")
@db_option
@click.argument("name")
def merchant_add(db: Any, name: str) -> None:
    """Add a merchant.

    Example: campuscard merchant add --db campus.db "North Canteen"
    """
    from sync_server import registry

    m = registry.add_merchant(db, _now(), name)
    click.echo("merchant {}: {}".format(m["id"], m["name"]))


@merchant.command(name="list")
@db_option
def merchant_list(db: Any) -> None:
    """List merchants.

    Example: campuscard merchant list --db campus.db
    """
    from sync_server import registry

    for m in registry.merchants(db):
        click.echo("{}\t{}".format(m["id"], m["name"]))


@click.group()
def terminal() -> None:
    """Terminals: register (prints the provisioning bundle), list, enable, disable."""


@terminal.command(name="register")
@db_option
@click.option("--merchant", "merchant_ref", required=True, help="Merchant id or name.")
@click.option("--role", type=click.Choice(["pos", "door"]), default="pos", show_default=True)
@click.option("--name", default="", help="Where it stands, e.g. 'north canteen till 3'.")
@click.option("--id", "terminal_id", type=int, default=None, help="Terminal id (default: next free).")
@click.option("--server-url", default=None, help="URL terminals reach the server at (default: setting).")
def terminal_register(db: Any, merchant_ref: str, role: str, name: str, terminal_id: int | None,
                      server_url: str | None) -> None:
    """Register a terminal and print its provisioning bundle as JSON (keep it secret).

    Example: campuscard terminal register --db campus.db --merchant "North Canteen" --role pos
    """
    from sync_server import params, registry
    from sync_server.keys import KeyRing

    m = registry.find_merchant(db, merchant_ref)
    url = server_url or params.settings(db)["server_url"]
    _json(registry.register_terminal(db, _now(), KeyRing.load(db), m["id"], role, name, terminal_id, url))


@terminal.command(name="list")
@db_option
def terminal_list(db: Any) -> None:
    """List terminals with their merchant, acknowledged sequence and last heartbeat.

    Example: campuscard terminal list --db campus.db
    """
    from sync_server import registry

    for t in registry.terminals(db):
        click.echo(f"{t['id']}\tmerchant {t['merchant_id']}\t{t['role']}\t{t['status']}\t"
                   f"acked #{t['acked_seq']} (max #{t['max_seq']})\tunacked {t['unacked']}\t{t['name']}")


@terminal.command(name="disable")
@db_option
@click.argument("terminal_id", type=int)
def terminal_disable(db: Any, terminal_id: int) -> None:
    """Refuse all requests from a terminal (stolen or retired).

    Example: campuscard terminal disable --db campus.db 1001
    """
    from sync_server import registry

    registry.set_enabled(db, terminal_id, False)
    click.echo(f"terminal {terminal_id} disabled")


@terminal.command(name="enable")
@db_option
@click.argument("terminal_id", type=int)
def terminal_enable(db: Any, terminal_id: int) -> None:
    """Accept requests from a disabled terminal again.

    Example: campuscard terminal enable --db campus.db 1001
    """
    from sync_server import registry

    registry.set_enabled(db, terminal_id, True)
    click.echo(f"terminal {terminal_id} enabled")


# -- the card office ---------------------------------------------------------------------------


@click.group()
def card() -> None:
    """Card office: issue, loss and un-report, replace, top up, suspend, resume, cancel."""


def _card_command(name: str, example: str) -> Callable[[Callable[..., Any]], Any]:
    """A ``card`` subcommand taking ``--db`` and the card (number or UID hex); its docstring
    gets ``Example: campuscard card <name> --db campus.db <example>``."""

    def deco(f: Callable[..., Any]) -> Any:
        f.__doc__ = (f.__doc__ or "") + f"\n\n    Example: campuscard card {name} --db campus.db {example}\n"
        return card.command(name=name)(click.argument("ref", metavar="CARD")(db_option(f)))

    return deco


def _when(db: Any, text: str | None, end: bool) -> int | None:
    from sync_server import admin_api

    return None if text is None else admin_api.when(db, text, end)


@card.command(name="issue")
@db_option
@click.option("--uid", required=True, help="Card UID in hex (4 or 7 bytes), as the reader shows it.")
@click.option("--card-no", required=True, help="Printed card number.")
@click.option("--holder", "holder_id", required=True, help="Student or staff number of the holder.")
@click.option("--type", "ctype", type=click.Choice(["staff", "student", "identity", "temporary"]),
              default="student", show_default=True)
@click.option("--valid-from", default=None, help="First valid day, YYYY-MM-DD (default: now).")
@click.option("--valid-until", required=True, help="Last valid day, YYYY-MM-DD (identity/temporary: <= 1 year).")
def card_issue(db: Any, uid: str, card_no: str, holder_id: str, ctype: str, valid_from: str | None,
               valid_until: str) -> None:
    """Register a new card; its purse starts at 0 (top it up to give it money).

    Example: campuscard card issue --db campus.db --uid 04A1B2C3 --card-no S2024001 --holder 2024001
    --type student --valid-until 2028-07-31
    """
    from sync_server import cards

    now = _now()
    _json(cards.issue(db, now, cards.parse_uid(uid), card_no, holder_id, cards.type_of(ctype),
                      _when(db, valid_from, False) or now, _when(db, valid_until, True) or 0))


@_card_command("report-loss", "S2024001")
@click.option("--reason", default="reported lost", show_default=True)
def card_report_loss(db: Any, ref: str, reason: str) -> None:
    """Report a card lost: it goes on the blacklist at once."""
    from sync_server import cards

    c = cards.report_loss(db, _now(), ref, reason)
    click.echo("card {} lost; on the blacklist (version {})".format(c["card_no"], c["blacklisted"]["version"]))


@_card_command("cancel-loss", "S2024001")
def card_cancel_loss(db: Any, ref: str) -> None:
    """Take back a loss report (only if no replacement was issued): off the blacklist."""
    from sync_server import cards

    c = cards.cancel_loss(db, _now(), ref)
    click.echo("card {} active again".format(c["card_no"]))


@_card_command("replace", "S2024001 --uid 04D5E6F7 --card-no S2024001-2")
@click.option("--uid", required=True, help="UID of the new card, hex.")
@click.option("--card-no", required=True, help="Card number of the new card.")
def card_replace(db: Any, ref: str, uid: str, card_no: str) -> None:
    """Replace a card: the old one is void for good; its balance (less the fee) moves to the
    new card as a pending load 72 hours later, once its offline records have arrived."""
    from sync_server import cards

    c = cards.replace(db, _now(), ref, cards.parse_uid(uid), card_no)
    click.echo("card {} replaces {}; balance follows after the wait".format(c["card_no"], ref))


@_card_command("top-up", "S2024001 --amount 10000")
@click.option("--amount", required=True, type=int, help="Cents.")
@click.option("--note", default="top-up", show_default=True)
def card_top_up(db: Any, ref: str, amount: int, note: str) -> None:
    """Record money received for a card: a pending load the holder collects at any POS."""
    from sync_server import cards

    c = cards.top_up(db, _now(), ref, amount, note)
    click.echo("card {}: {} in transit (pending loads)".format(c["card_no"], c["in_transit"]))


@_card_command("suspend", "S2024001 --reason 'leave of absence'")
@click.option("--reason", default="suspended", show_default=True)
def card_suspend(db: Any, ref: str, reason: str) -> None:
    """Suspend a card (leave of absence): frozen and on the blacklist."""
    from sync_server import cards

    click.echo("card {} {}".format(ref, cards.suspend(db, _now(), ref, reason)["status"]))


@_card_command("resume", "S2024001")
def card_resume(db: Any, ref: str) -> None:
    """Resume a suspended or frozen card: active and off the blacklist."""
    from sync_server import cards

    click.echo("card {} {}".format(ref, cards.resume(db, _now(), ref)["status"]))


@_card_command("cancel", "S2024001 --refund-to bank")
@click.option("--refund-to", type=click.Choice(["bank", "cash", "donation"]), default="bank", show_default=True)
@click.option("--force", is_flag=True,
              help="Cancel even though some of the card's records are missing or terminals still hold records.")
def card_cancel(db: Any, ref: str, refund_to: str, force: bool) -> None:
    """Cancel a card (leaving): final balance computed, refund or donation recorded."""
    from sync_server import cards

    c = cards.cancel(db, _now(), ref, refund_to, force)
    verb = "donated" if refund_to == "donation" else "refunded"
    click.echo(f"card {c['card_no']} cancelled: final balance {c['final_balance']}, {verb} {c['refund']}")


@card.command(name="bulk-freeze")
@db_option
@click.argument("listfile", type=click.File("r"))
@click.option("--reason", default="graduated", show_default=True)
def card_bulk_freeze(db: Any, listfile: Any, reason: str) -> None:
    """Freeze every card in a file (one card number or UID per line; '-' reads stdin).

    Example: campuscard card bulk-freeze --db campus.db graduates-2025.txt --reason graduated
    """
    from sync_server import cards

    refs = [line.strip() for line in listfile if line.strip() and not line.startswith("#")]
    out = cards.bulk_freeze(db, _now(), refs, reason)
    click.echo("frozen {}, skipped {}, unknown {}".format(len(out["frozen"]), len(out["skipped"]), len(out["unknown"])))
    for what in ("skipped", "unknown"):
        for ref in out[what]:
            click.echo(f"{what}: {ref}")


@_card_command("show", "S2024001")
def card_show(db: Any, ref: str) -> None:
    """Show a card: status, chain, shadow balance, loads, recent records and history (JSON)."""
    from sync_server import cards

    _json(cards.show(db, ref))


from tools.door_cli import door  # noqa: E402  (door access commands; they use db_option above)

COMMANDS = [server, admin_token, audit, sweep, merchant, terminal, card, door]
