"""The short text report of a validation pass, for the terminal (no Keras)."""
from __future__ import annotations

from .result import RISK_LABELS, SEVERE_RISKS, ValidationResult, sig

MAX_LAYERS = 12


def text_report(result: ValidationResult) -> str:
    """A short human-readable report: what ran where, the measurements, the verdict."""
    run = result.runtime
    lines = [f"{result.model.folder}: float32 vs {result.policy} on {run.where} ({run.backend}, "
             f"Keras {run.keras_version}, Python {run.python_version} at {run.python}), "
             f"{result.inputs.source} inputs, batch {result.inputs.batch}, plus "
             f"{', '.join(result.inputs.stress)} stress inputs", ""]
    lines += _outputs(result) + _layers(result) + _training(result) + _speed(result)
    lines += [f"  {note}" for note in result.notes]
    if result.verdict is not None:
        lines += ["", f"Verdict: {result.verdict.text}"]
        if result.verdict.pins and result.verdict.status == "safe_with_pins":
            pins = " ".join(f"--pin {p}" for p in result.verdict.pins)
            lines.append(f"Apply with: fsprec convert {result.model.folder} --to "
                         f"{result.policy} {pins}")
    return "\n".join(lines)


def _outputs(result: ValidationResult) -> list[str]:
    lines = []
    for out in result.outputs or []:
        psnr = "identical" if out.psnr_db is None else f"PSNR {out.psnr_db:.1f} dB"
        rel = ("output nearly flat" if out.error_to_variation is None
               else f"error {sig(out.error_to_variation)} of its variation")
        lines.append(f"  output {out.index}: {psnr}, {rel}, RMS error {sig(out.rmse)}, "
                     f"max |error| {sig(out.max_abs_err)}, Inf/NaN {out.nonfinite_target:,}")
    bad = [s for s in result.stress or [] if s.nonfinite_target or s.nonfinite_float32]
    for stress in bad:
        lines.append(f"  {stress.name} input: Inf/NaN {stress.nonfinite_target:,} "
                     f"({result.policy}), {stress.nonfinite_float32:,} (float32)")
    if result.stress and not bad:
        lines.append("  stress inputs: no Inf/NaN in either model")
    return lines


def _layers(result: ValidationResult) -> list[str]:
    flagged = [layer for layer in result.layers or [] if layer.risk or layer.config_risk]
    flagged.sort(key=lambda layer: (layer.risk not in SEVERE_RISKS, layer.risk is None))
    lines = ["", "  layers flagged in float16:"] if flagged else []
    for layer in flagged[:MAX_LAYERS]:
        what = RISK_LABELS[layer.risk] if layer.risk else "config risk"
        detail = "; ".join(d for d in (layer.detail, layer.config_risk) if d)
        lines.append(f"    {layer.path}: {what} ({detail})")
    if len(flagged) > MAX_LAYERS:
        lines.append(f"    ... and {len(flagged) - MAX_LAYERS} more")
    lines += [f"  config risk {risk.path} ({risk.reason}): {risk.outcome}"
              + (f"; {risk.measured}" if risk.measured else "")
              for risk in result.config_risks or []]
    return lines


def _training(result: ValidationResult) -> list[str]:
    training = result.training
    if not training:
        return []
    fp32, target = training.float32.loss, training.target.loss
    lines = ["", f"  training check, {training.steps} steps, {training.optimizer}; "
             f"loss scaling: {training.scaler or 'none'}",
             f"    loss: {training.loss}",
             f"    loss {sig(fp32[0])} -> {sig(fp32[-1])} (float32), {sig(target[0])} -> "
             f"{sig(target[-1])} ({result.policy}); skipped steps "
             f"{training.target.skipped_steps}"]
    return lines


def _speed(result: ValidationResult) -> list[str]:
    speed = result.speed
    if not speed:
        return []
    lines = [f"  forward: {sig(speed.forward_float32_ips)} img/s float32, "
             f"{sig(speed.forward_target_ips)} img/s {result.policy} ({sig(speed.speedup)}x)"]
    if speed.peak_memory_float32_mb is not None:
        lines.append(f"  peak GPU memory: {sig(speed.peak_memory_float32_mb)} MB float32, "
                     f"{sig(speed.peak_memory_target_mb)} MB {result.policy}")
    return lines
