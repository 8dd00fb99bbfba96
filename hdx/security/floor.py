"""The input floor: with ``single_controller``, one person drives the desktop at a time.

Pure rules, no I/O (hdx.server.floor_keeper applies them to sessions):

- A person is a token (or the tokenless local user): all of one person's windows drive.
- A free floor is taken by using it (the first input of a controller) or by asking.
- While someone holds it, others *ask*; the holder sees the requests and hands the floor to
  one of them, or releases it. Nothing is taken silently.
- The floor is freed when its holder releases it or the holder's last session leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Floor:
    """Who holds the input floor, and who asked for it."""

    holder: str | None = None
    """The holding person's key (``Identity.person``), or None when free."""
    holder_user: str | None = None
    requests: dict[str, str] = field(default_factory=dict)
    """Asking person -> their user name, oldest first."""

    def may_drive(self, person: str) -> bool:
        """Does ``person`` hold the floor (not taking it)?"""
        return self.holder == person

    def take_if_free(self, person: str, user: str) -> bool:
        """Take a free floor; True if ``person`` now holds it (or already did)."""
        if self.holder is None:
            self._give(person, user)
            return True
        return self.holder == person

    def request(self, person: str, user: str) -> bool:
        """``person`` asks: taken at once when free; else queued for the holder. Returns
        True when the floor changed hands."""
        if self.holder is None:
            self._give(person, user)
            return True
        if self.holder != person:
            self.requests.setdefault(person, user)
        return False

    def grant(self, by: str, to: str, to_user: str) -> None:
        """The holder ``by`` hands the floor to ``to``; ValueError if ``by`` does not hold it."""
        if self.holder != by:
            raise ValueError("only the person in control can hand it over")
        if to == by:
            return
        self._give(to, to_user)

    def release(self, by: str) -> bool:
        """The holder lets go (a requester does not get it until the holder or they ask)."""
        if self.holder != by:
            self.requests.pop(by, None)
            return False
        self.holder = self.holder_user = None
        return True

    def left(self, person: str) -> bool:
        """``person``'s last session closed; True if that freed the floor."""
        self.requests.pop(person, None)
        if self.holder == person:
            self.holder = self.holder_user = None
            return True
        return False

    def _give(self, person: str, user: str) -> None:
        self.holder, self.holder_user = person, user
        self.requests.pop(person, None)
