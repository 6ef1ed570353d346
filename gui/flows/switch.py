"""The one-click switch: plan on a worker, confirm, convert, read the model again."""
from __future__ import annotations

from functools import partial

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QMessageBox

from fsprec.core import convert
from fsprec.core.switch import SwitchChoice, switch_choice

from .. import jobs
from ..dialogs import ConversionDialog, show_refusal
from ..layer_panel import LayerPanel
from ..outcomes import Done, Outcome, Refused
from .base import Flow, FlowContext, WindowState

NOTHING_CHANGED = "Nothing was changed."


class SwitchFlow(Flow):
    """The switch button and action; which way it goes is core's :func:`switch_choice`."""

    changed = Signal()  # the model on disk was switched

    def __init__(self, ctx: FlowContext, panel: LayerPanel) -> None:
        super().__init__(ctx)
        self.panel = panel
        self.job = ctx.job()
        self.action = ctx.action("&Switch Precision…", self.switch, "Ctrl+T")
        panel.switchRequested.connect(self.switch)
        panel.model.pinsChanged.connect(ctx.refresh)

    def choice(self) -> SwitchChoice:
        """What the switch does now, for the open model and the ticked pins."""
        folder = self.ctx.model()
        return switch_choice(folder, self.panel.model.pins() if folder else (),
                             self.ctx.settings.mixed_policy)

    def refresh(self, state: WindowState) -> None:
        choice = self.choice()
        enabled = choice.possible and state.idle
        self.panel.set_switch(choice.label, choice.explanation, enabled)
        self.action.setEnabled(enabled)

    def switch(self) -> None:
        """Plan the switch on a worker, then confirm and run it."""
        folder = self.ctx.model()
        if folder is None or self.ctx.status.busy:
            return
        choice = self.choice()
        self.job.start("Checking the switch",
                       partial(jobs.plan_switch, folder.path, choice.target, list(choice.pins),
                               self.ctx.settings.faceswap_folder), self._planned)

    def _planned(self, outcome: Outcome) -> None:
        if not isinstance(outcome, Done):
            self.ctx.report(outcome)
            return
        proposal: jobs.Proposal = outcome.value
        plan = proposal.plan
        if plan.nothing_to_do:
            self.ctx.log(" ".join(plan.summary()))
            QMessageBox.information(self.ctx.window, "Nothing to change",
                                    "\n".join(plan.summary()))
            return
        dialog = ConversionDialog(plan, proposal.notes, self.ctx.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            self.ctx.log(f"Switch cancelled; {NOTHING_CHANGED.lower()}")
            return
        self.job.start("Switching precision", partial(convert.run, dialog.accepted_plan()),
                       self._switched)

    def _switched(self, outcome: Outcome) -> None:
        match outcome:
            case Done(value=result):
                for message in result.messages:
                    self.ctx.log(message)
                if result.backups:
                    self.ctx.log("Backups: " + ", ".join(p.name for p in result.backups))
                self.changed.emit()
            case Refused(message=message):
                self.ctx.log(f"Switch failed: {message}")
                text = message if NOTHING_CHANGED.lower() in message.lower() \
                    else f"{message}\n\n{NOTHING_CHANGED}"
                show_refusal(self.ctx.window, "The switch failed", text)
            case _:
                self.ctx.report(outcome)
