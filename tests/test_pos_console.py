"""The cashier console: `campuscard sim pos` as a person runs it (a real process reading
commands from stdin), the card box kept between sessions, and the console's own parsing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from terminal_sim.console import Console, ConsoleError, cents

ROOT = Path(__file__).resolve().parent.parent


def run_console(workspace: Path, script: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tools", "sim", "pos", "--workspace", str(workspace)],
                          input=script, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.e2e
def test_sim_pos_sells_and_keeps_the_cards_between_sessions(tmp_path: Path) -> None:
    out = run_console(tmp_path, "net up\n12.50\ntap alice\njournal\nquit\n")
    assert "[ 请刷卡 12.50元 | Tap card: 12.50 ]" in out
    assert "Paid 12.50 / Balance 87.50" in out
    assert "Record(purchase t1001#1 uid=04A1B2C3 ctr=1 amount=1250 10000->8750) signed" in out
    again = run_console(tmp_path, "cards\nbalance\ntap alice\n")  # end of input ends the session
    assert "alice    04A1B2C3       student   balance    87.50" in again
    assert "Balance 87.50" in again
    assert (tmp_path / "cards" / "alice.json").exists() and (tmp_path / "secrets.json").exists()


def test_sim_pos_help_names_the_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "tools", "sim", "pos", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0
    assert "Cashier console of a POS terminal" in proc.stdout and "--reader [pn532|mfrc522]" in proc.stdout


@pytest.mark.parametrize("text,value", [("12.50", 1250), ("12", 1200), ("0.05", 5), ("7.5", 750), (".5", 50)])
def test_cents_from_yuan(text: str, value: int) -> None:
    assert cents(text) == value


@pytest.mark.parametrize("text", ["12.505", "abc", "-1", "1.2.3", ""])
def test_cents_refuses_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(ConsoleError, match="amount must be yuan like 12.50"):
        cents(text)


def test_unknown_command_and_card_say_what_to_do(tmp_path: Path) -> None:
    console = Console(tmp_path)  # not started: these fail before reaching the firmware
    with pytest.raises(ConsoleError, match="unknown command 'fly'; `help` lists the commands"):
        console.execute("fly")
    with pytest.raises(ConsoleError, match="no card named 'zed'; `cards` lists them"):
        console.execute("tap zed")
