"""Who else uses the open model: Faceswap training it, or another fsprec changing it.

Checked on a worker (a process scan takes tens of milliseconds) when a model is shown and
every few seconds while it stays open; the window's :class:`~.base.WindowState` carries the
answer to the flows that write the model.
"""
from __future__ import annotations

from functools import partial

from PySide6.QtCore import QTimer

from fsprec.core.modelfile import ModelFolder

from .. import jobs
from ..layer_panel import LayerPanel
from ..outcomes import Done, Outcome
from .base import Flow, FlowContext

CHECK_EVERY_MS = 4000


class InUseFlow(Flow):
    """Keeps :attr:`current` up to date for the open model and shows it in the panel."""

    def __init__(self, ctx: FlowContext, panel: LayerPanel) -> None:
        super().__init__(ctx)
        self.panel = panel
        self.current: jobs.InUse | None = None
        self.checking = ctx.job(foreground=False)
        self.timer = QTimer(self)
        self.timer.setInterval(CHECK_EVERY_MS)
        self.timer.timeout.connect(self.check)

    def model_shown(self, folder: ModelFolder) -> None:
        """Forget what was known of the previous model and check this one."""
        self._set(None)
        self.check()
        self.timer.start()

    def check(self) -> None:
        """Look again on a worker (once at a time: a check still running is left to end)."""
        path = self.ctx.model_path()
        if path is None or self.checking.running:
            return
        self.checking.start("Checking who uses the model", partial(jobs.in_use, path),
                            self._checked)

    def stop(self) -> None:
        """Stop looking (the window closes)."""
        self.timer.stop()
        self.checking.cancel()

    def _checked(self, outcome: Outcome) -> None:
        if isinstance(outcome, Done) and outcome.value != self.current:
            self._set(outcome.value)

    def _set(self, found: jobs.InUse | None) -> None:
        if found != self.current:
            self.current = found
            self.panel.set_in_use(found.message if found else "")
            if found is not None:
                self.ctx.log(f"{found.message}.")
            self.ctx.refresh()
