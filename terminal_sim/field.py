"""The RF field of one reader: which virtual cards lie on it.

Chip emulators look cards up here, so two cards on one reader behave as the chip would see
them (the PN532 lists the lowest UID for MaxTg=1, the MFRC522 anticollision sees both).

Usage::

    field = Field()
    field.place(card)          # the card powers up idle
    field.responding()         # cards answering WUPA, lowest UID first
    field.remove(card)         # it leaves: its auth state is gone
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminal_sim.mifare_card import MifareClassic1K


class Field:
    """The RF field of one reader: the cards lying on it (0, 1 or 2)."""

    def __init__(self) -> None:
        self.cards: list[MifareClassic1K] = []

    def place(self, card: MifareClassic1K) -> None:
        """Put a card on the reader; it powers up idle."""
        if card not in self.cards:
            self.cards.append(card)
        card.put_back()

    def remove(self, card: MifareClassic1K) -> None:
        if card in self.cards:
            self.cards.remove(card)
        card.leave_field()

    def clear(self) -> None:
        for card in list(self.cards):
            self.remove(card)

    def responding(self, wupa: bool = True) -> list[MifareClassic1K]:
        """Cards that answer REQA (``wupa=False``) or WUPA, lowest UID first."""
        return sorted((c for c in self.cards if c.answers_request(wupa)), key=lambda c: c.uid)
