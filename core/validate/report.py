"""The verdict of a validation pass, and its short text report (no Keras)."""
from __future__ import annotations

from typing import Any


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """``safe``, ``safe_with_pins`` or ``not_safe``, with one sentence that says why."""
    tolerance = result["tolerance"]["rel_l2"]
    outputs = result["outputs"]
    worst = max((o["rel_l2"] for o in outputs), default=0.0)
    nonfinite = sum(o["nonfinite_target"] for o in outputs)
    speed = result.get("speed") or {}
    faster = (f"; forward {speed['speedup']:.2f}x float32's speed on "
              f"{result['device']['name']}") if speed.get("speedup") else ""
    kept = result.get("pins") or []
    if nonfinite == 0 and worst <= tolerance:
        with_pins = f" with {', '.join(kept)} kept in float32" if kept else ""
        return {"status": "safe", "pins": list(kept),
                "text": f"safe{with_pins}: outputs within {worst:.2%} of float32 (relative "
                        f"L2, tolerance {tolerance:.0%}){faster}."}
    problem = (f"{nonfinite} non-finite output values" if nonfinite
               else f"outputs {worst:.2%} away from float32 (tolerance {tolerance:.0%})")
    risky = [l["path"] for l in result["layers"] if l.get("risk") in ("nonfinite", "overflow")]
    where = f" (first trouble at {risky[0]})" if risky else ""
    pins = result.get("autopin") or {}
    if pins.get("passed") and pins.get("pins"):
        return {"status": "safe_with_pins", "pins": pins["pins"],
                "text": f"safe with pins: {', '.join(pins['pins'])} — without them, "
                        f"{problem}{where}."}
    return {"status": "not_safe", "pins": [], "text": f"not safe: {problem}{where}."}


def text_report(result: dict[str, Any]) -> str:
    """A short human-readable report for the terminal."""
    device = result["device"]
    lines = [f"{result['model']['folder']}: float32 vs {result['policy']} on "
             f"{device['name']} ({device['backend']}), {result['inputs']['source']} inputs, "
             f"batch {result['inputs']['batch']}", ""]
    for out in result["outputs"]:
        psnr = "inf" if out["psnr_db"] is None else f"{out['psnr_db']:.1f} dB"
        lines.append(f"  output {out['index']}: rel. L2 {out['rel_l2']:.2e}, max |err| "
                     f"{out['max_abs_err']:.2e}, PSNR {psnr}, non-finite "
                     f"{out['nonfinite_target']}")
    risky = [l for l in result["layers"] if l.get("risk")]
    if risky:
        lines.append("")
        lines.append("  layers at risk in float16:")
        for layer in risky[:12]:
            detail = layer.get("config_risk") or (
                f"max |x| {layer['max_abs']:.3g}" if layer["risk"] != "underflow"
                else f"{layer['below_fp16_tiny']} values below 6e-8")
            lines.append(f"    {layer['path']}: {layer['risk']} ({detail})")
        if len(risky) > 12:
            lines.append(f"    ... and {len(risky) - 12} more")
    training = result.get("training")
    if training:
        fp32, target = training["float32"]["loss"], training["target"]["loss"]
        lines.append("")
        lines.append(f"  training check, {training['steps']} steps: loss {fp32[0]:.4g} -> "
                     f"{fp32[-1]:.4g} (float32), {target[0]:.4g} -> {target[-1]:.4g} "
                     f"({result['policy']}); skipped steps {training['target']['skipped_steps']}")
    speed = result.get("speed")
    if speed:
        lines.append(f"  forward: {speed['forward_float32_ips']:.1f} img/s float32, "
                     f"{speed['forward_target_ips']:.1f} img/s {result['policy']} "
                     f"({speed['speedup']:.2f}x)")
        if speed.get("peak_memory_float32_mb") is not None:
            lines.append(f"  peak GPU memory: {speed['peak_memory_float32_mb']:.0f} MB float32, "
                         f"{speed['peak_memory_target_mb']:.0f} MB {result['policy']}")
    lines += ["", f"Verdict: {result['verdict']['text']}"]
    if result["verdict"]["pins"]:
        pins = " ".join(f"--pin {p}" for p in result["verdict"]["pins"])
        lines.append(f"Apply with: fsprec convert {result['model']['folder']} --to "
                     f"{result['policy']} {pins}")
    return "\n".join(lines)
