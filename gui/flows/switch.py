"""The one-click switch and Make Consistent: plan on a worker, confirm, convert, read the model
again."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QMessageBox

from fsprec.core import convert
from fsprec.core.switch import SwitchChoice, switch_choice
from fsprec.core.task import Task

from .. import jobs
from ..dialogs import ConversionDialog, show_refusal
from ..layer_panel import LayerPanel
from ..outcomes import Done, Outcome, Refused
from .base import TRAINING_TIP, Flow, FlowContext, WindowState

NOTHING_CHANGED = "Nothing was changed."
Planner = Callable[[str, Task], jobs.Proposal]  # (Faceswap folder setting, task) -> proposal


class SwitchFlow(Flow):
    """The switch button and action; which way it goes is core's :func:`switch_choice`.
    Make Consistent converts a partial model to core's consistent precision the same way."""

    changed = Signal()  # the model on disk was switched

    def __init__(self, ctx: FlowContext, panel: LayerPanel) -> None:
        super().__init__(ctx)
        self.panel = panel
        self.job = ctx.job()
        self.action = ctx.action("&Switch Precision…", self.switch, "Ctrl+T")
        self.consistent_action = ctx.action(
            "Make &Consistent…", self.make_consistent,
            tip="Put every layer of a partly mixed model where Faceswap expects it.")
        panel.switchRequested.connect(self.switch)
        panel.model.pinsChanged.connect(ctx.refresh)

    def choice(self) -> SwitchChoice:
        """What the switch does now, for the open model and the ticked pins."""
        folder = self.ctx.model()
        return switch_choice(folder, self.panel.model.pins() if folder else (),
                             self.ctx.settings.mixed_policy)

    def refresh(self, state: WindowState) -> None:
        choice = self.choice()
        enabled = choice.possible and state.idle and not state.training
        tip = TRAINING_TIP if state.training else choice.explanation
        self.panel.set_switch(choice.label, tip, enabled)
        self.action.setEnabled(enabled)
        self.action.setToolTip(tip)
        partial_model = state.folder is not None and state.folder.partial is not None
        self.consistent_action.setEnabled(partial_model and state.idle and not state.training)
        self.consistent_action.setToolTip(TRAINING_TIP if state.training else
                                          self.consistent_action.statusTip())

    def switch(self) -> None:
        """Plan the switch on a worker, then confirm and run it."""
        choice = self.choice()
        self._plan("Checking the switch", lambda path: partial(
            jobs.plan_switch, path, choice.target, list(choice.pins)))

    def make_consistent(self) -> None:
        """Plan the conversion that makes a partial model consistent, then confirm and run it
        as a switch."""
        self._plan("Checking Make Consistent",
                   lambda path: partial(jobs.plan_make_consistent, path))

    def _plan(self, title: str, planner: Callable[[Path], Planner]) -> None:
        folder = self.ctx.model()
        if folder is None or self.ctx.status.busy:
            return
        plan_for = planner(folder.path)
        self.job.start(title, partial(plan_for, self.ctx.settings.faceswap_folder),
                       partial(self._planned, title, plan_for))

    def _planned(self, title: str, plan_for: Planner, outcome: Outcome) -> None:
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
        answer = dialog.exec()
        if answer == ConversionDialog.LOCATED and dialog.located is not None:
            self.ctx.settings.faceswap_folder = str(dialog.located)
            self.ctx.log(f"Faceswap folder set to {dialog.located}; checking again.")
            self.job.start(title, partial(plan_for, str(dialog.located)),
                           partial(self._planned, title, plan_for))
            return
        if answer != QDialog.DialogCode.Accepted:
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
