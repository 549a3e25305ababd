"""One control path for every edge: a ``control/set`` payload in, a result out.

MQTT's ``control/set`` and the web page's controls hand the same bytes to a
:class:`ControlDesk`: the same :class:`~improv.io.control.ControlParser` reads them, the
same agent handler applies them, and the answer (``{"id", "ok", "changes"}`` or
``{"id", "ok": false, "error"}``) has the same words whichever edge it goes back to.
Runs on the agent's event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Final

from improv.io.control import ControlChange, ControlError, ControlHandler, ControlParser, request_id

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_S: Final = 1.0

Answer = Callable[[dict[str, Any]], None]
"""Where a request's result goes (constant time: queue it, never wait)."""


class ControlDesk:
    """Validates control payloads, hands them to ``on_control``, answers each one.

    ``edge`` names the way requests come in ("mqtt", "web") in the log.
    """

    def __init__(
        self,
        *,
        on_control: ControlHandler | None = None,
        forms: Collection[str] | None = None,
        edge: str = "control",
    ) -> None:
        self.on_control = on_control
        self.edge = edge
        self.applied = 0
        self.refused = 0
        self._parser = ControlParser(forms)
        self._refusals_logged = 0
        self._next_refusal_log = 0.0

    def handle(self, payload: bytes, answer: Answer) -> None:
        """Validate one payload, hand it to the agent, ``answer`` with the result (at
        once, or when a change that takes time, a model load, is done)."""
        change: ControlChange | None = None
        try:
            change = self._parser.parse(payload)
            if self.on_control is None:
                raise ControlError("this agent takes no control requests")
            pending = self.on_control(change)
        except ControlError as exc:
            answer(self.refusal(change, payload, str(exc)))
        except Exception as exc:
            log.exception("%s: the agent failed on a control request", self.edge)
            answer(self.refusal(change, payload, f"internal error: {exc}"))
        else:
            if pending is None:
                answer(self._accepted(change))
            else:
                future = asyncio.ensure_future(pending)
                future.add_done_callback(lambda f: self._settled(change, payload, f, answer))

    def refusal(self, change: ControlChange | None, payload: bytes, error: str) -> dict[str, Any]:
        """The answer to a refused request (counted; logged at most once a second)."""
        self.refused += 1
        now = time.monotonic()
        if now >= self._next_refusal_log:  # a flood of garbage must not flood the log
            more = self.refused - self._refusals_logged - 1
            log.info(
                "%s: control request refused: %s%s",
                self.edge,
                error,
                f" (and {more} more since the last)" if more else "",
            )
            self._refusals_logged = self.refused
            self._next_refusal_log = now + REFUSAL_LOG_INTERVAL_S
        rid = change.id if change is not None else request_id(payload)
        return {"id": rid, "ok": False, "error": error}

    def _settled(
        self,
        change: ControlChange,
        payload: bytes,
        done: asyncio.Future[Any],
        answer: Answer,
    ) -> None:
        error = ControlError("cancelled") if done.cancelled() else done.exception()
        if error is None:
            answer(self._accepted(change))
        elif isinstance(error, ControlError):
            answer(self.refusal(change, payload, str(error)))
        else:
            log.error("%s: the agent failed on a control request: %s", self.edge, error)
            answer(self.refusal(change, payload, f"internal error: {error}"))

    def _accepted(self, change: ControlChange) -> dict[str, Any]:
        self.applied += 1
        return {"id": change.id, "ok": True, "changes": change.changes()}
