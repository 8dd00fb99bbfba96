"""Applies the input-floor rules (hdx.security.floor) to live sessions: who may inject input
now, hand-over messages, telling every viewer who drives, and releasing held keys and buttons
whenever control changes hands (a key held by the previous driver must not stay down).

Runs on the event loop (control-channel callbacks and session close).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from hdx.security.audit import AuditLog
from hdx.security.floor import Floor
from hdx.security.identity import Identity
from hdx.webrtc import control

log = logging.getLogger(__name__)


class FloorSession(Protocol):
    """What the keeper needs of a session."""

    @property
    def id(self) -> str: ...

    @property
    def identity(self) -> Identity: ...

    def send_control(self, text: str) -> None: ...

    def release_held_input(self) -> None: ...


class FloorKeeper:
    """The floor of one server, shared by all its sessions."""

    def __init__(self, single_controller: bool, audit: AuditLog,
                 sessions: Callable[[], Iterable[FloorSession]]) -> None:
        self.single_controller = single_controller
        self.floor = Floor()
        self._audit = audit
        self._sessions = sessions

    def may_inject(self, session: FloorSession, takes: bool = True) -> bool:
        """May this session's input reach the desktop now? View sessions never inject. A
        controller's deliberate input (``takes``: a press, a key, the wheel) takes a free
        floor; a mere pointer move over a free floor goes through without taking it, so
        hovering over the picture grabs nothing."""
        identity = session.identity
        if not identity.can_control:
            return False
        if not self.single_controller:
            return True
        if self.floor.may_drive(identity.person):
            return True
        if self.floor.holder is None and not takes:
            return True
        if self.floor.take_if_free(identity.person, identity.user):
            self._audit.record("floor_take", identity, session=session.id,
                               reason="took the free floor by using it")
            self._changed()
            return True
        return False

    def in_control(self, identity: Identity) -> bool:
        """Does this identity drive now (per person: a holder's other windows too)?"""
        if not identity.can_control:
            return False
        return not self.single_controller or self.floor.may_drive(identity.person)

    def act(self, session: FloorSession, action: control.FloorAction) -> str | None:
        """A ``floor`` message from ``session``; returns why it was refused, or None."""
        identity = session.identity
        if not identity.can_control:
            return "view-only sessions cannot take control"
        if not self.single_controller:
            return None  # everyone with control drives; nothing to hand over
        floor = self.floor
        if action.action == "request":
            if floor.request(identity.person, identity.user):
                self._audit.record("floor_take", identity, session=session.id,
                                   reason="took the free floor on request")
            else:
                self._audit.record("floor_request", identity, session=session.id,
                                   holder=floor.holder_user)
            self._changed(release=floor.may_drive(identity.person))
            return None
        if action.action == "release":
            if floor.release(identity.person):
                self._audit.record("floor_release", identity, session=session.id)
                self._changed()
            else:
                self._broadcast()  # a withdrawn request
            return None
        target = self._session(action.to)
        if target is None:
            return "no such session to hand control to"
        if not target.identity.can_control:
            return "that session is view-only"
        try:
            floor.grant(identity.person, target.identity.person, target.identity.user)
        except ValueError as exc:
            return str(exc)
        self._audit.record("floor_grant", identity, session=session.id, to_session=target.id,
                           to_user=target.identity.user)
        self._changed()
        return None

    def session_joined(self, session: FloorSession) -> None:
        """Tell a new session (and everyone) who drives."""
        self._broadcast()

    def session_left(self, session: FloorSession, remaining: Iterable[FloorSession]) -> None:
        """A session closed: free the floor if it was its person's last window."""
        person = session.identity.person
        if any(s.identity.person == person for s in remaining if s is not session):
            return
        if self.floor.left(person):
            self._audit.record("floor_release", session.identity, session=session.id,
                               reason="the holder left")
            self._changed()
        else:
            self._broadcast()

    def _session(self, session_id: str | None) -> FloorSession | None:
        return next((s for s in self._sessions() if s.id == session_id), None)

    def _changed(self, release: bool = True) -> None:
        if release:
            for session in self._sessions():
                session.release_held_input()
        self._broadcast()

    def _broadcast(self) -> None:
        if not self.single_controller:
            return
        floor = self.floor
        sessions = list(self._sessions())
        asking = [{"session": s.id, "user": s.identity.user} for s in sessions
                  if s.identity.person in floor.requests]
        for session in sessions:
            mine = floor.may_drive(session.identity.person)
            session.send_control(control.floor(
                floor.holder_user, mine, asking if mine else [],
                asked=session.identity.person in floor.requests))
