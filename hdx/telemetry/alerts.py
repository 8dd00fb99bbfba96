"""One structured warning per bad episode, so a service desk hears of it once, with the facts.

An episode starts when a session's score has stayed below ``ALERT_SCORE`` for ``after_s``
seconds, and ends when it climbs back to ``RECOVER_SCORE`` (hysteresis: a score hovering at
the threshold does not flood the log). The warning carries the telemetry record as
``extra={"telemetry": ...}``; the JSON log format (``--log-format json``) emits it as a field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hdx.telemetry.experience import Verdict

ALERT_SCORE = 60
RECOVER_SCORE = 70
log = logging.getLogger("hdx.telemetry")


class ExperienceAlarm:
    """Watches one session's verdicts; ``observe`` returns the alert record when it fires."""

    def __init__(self, session_id: str, user: str, after_s: float,
                 on_alert: Callable[[str | None], None] | None = None) -> None:
        self._session = session_id
        self._user = user
        self._after_s = after_s
        self._on_alert = on_alert
        self._below_since: float | None = None
        self.alerting = False
        self.alerts = 0

    def observe(self, now: float, verdict: Verdict, facts: dict[str, Any]
                ) -> dict[str, Any] | None:
        if verdict.score >= RECOVER_SCORE:
            if self.alerting:
                log.info("session %s (%s): experience recovered (score %d)", self._session,
                         self._user, verdict.score)
            self._below_since = None
            self.alerting = False
            return None
        if verdict.score >= ALERT_SCORE:
            if not self.alerting:
                self._below_since = None
            return None
        if self._below_since is None:
            self._below_since = now
        if self.alerting or now - self._below_since < self._after_s:
            return None
        self.alerting = True
        self.alerts += 1
        record = {"event": "experience_alert", "session": self._session, "user": self._user,
                  "score": verdict.score, "grade": verdict.grade,
                  "cause": verdict.cause or "unknown",
                  "seconds_below": round(now - self._below_since, 1),
                  "blame": {k: round(v, 2) for k, v in verdict.blame.items()}, **facts}
        log.warning("session %s (%s): experience %s (score %d) for %.0f s; likely cause: %s "
                    "(%s)", self._session, self._user, verdict.grade, verdict.score,
                    now - self._below_since, verdict.cause or "unknown",
                    ", ".join(f"{k} {v}" for k, v in facts.items() if v is not None),
                    extra={"telemetry": record})
        if self._on_alert is not None:
            self._on_alert(verdict.cause)
        return record
