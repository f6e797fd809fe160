"""A bundle's manifest as readable text (`edgeth inspect`)."""
from __future__ import annotations

import json
from typing import Any


def _shape(s: dict[str, Any]) -> str:
    dyn = {int(k): v for k, v in s.get("dynamic", {}).items()}
    dims = [f"{dyn[i][0]}[{dyn[i][1]}..{dyn[i][2]}]" if i in dyn else str(d) for i, d in enumerate(s["shape"])]
    return f"{s['name']}:{s.get('dtype', 'float32')}[{','.join(dims)}] ({s.get('kind', 'tensor')})"


def _tol(t: dict[str, float]) -> str:
    return ", ".join(f"{k} {'≤' if k in ('max_abs', 'mean_abs') else '≥'} {v:g}" for k, v in sorted(t.items()))


def _ops(v: Any, limit: int = 8) -> str:
    if isinstance(v, dict):
        items = [f"{k}×{n}" if isinstance(n, int) else f"{k}" for k, n in sorted(v.items())]
    elif isinstance(v, (list, tuple)):
        items = [str(x) for x in v]
    else:
        return str(v)
    more = f" … (+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more if items else "none"


def _report(rep: dict[str, Any]) -> list[str]:
    """Delegated/fallback ops first, then the rest of the exporter's report, compactly."""
    lines, rest = [], {}
    for k, v in sorted(rep.items()):
        lk = k.lower()
        if any(w in lk for w in ("delegat", "fallback", "portable", "unsupported", "cpu_ops")):
            lines.append(f"        {k}: {_ops(v)}")
        else:
            rest[k] = v
    if rest:
        text = json.dumps(rest, sort_keys=True, default=str)
        lines.append(f"        {text[:200]}{'…' if len(text) > 200 else ''}")
    return lines


def _ran_at_export(rec: dict) -> str:
    if rec.get("verified_at_export", True):
        return ""
    if rec.get("simulated_at_export"):
        return f", simulated at export on {rec['simulated_at_export']}"
    return ", not run at export"


def describe(bundle) -> list[str]:
    m = bundle.manifest
    mod = m["model"]
    out = [f"bundle   {bundle.source}",
           f"format   {m['format']} v{m['format_version']}, created {m['created']['at']}"
           + (f" in {sum(m['created'].get('seconds', {}).values()):.0f} s" if m["created"].get("seconds") else ""),
           f"model    {mod['family']} (preset {mod.get('preset') or '?'}), checkpoint sha256 {mod['checkpoint_sha256'][:16]}…",
           "targets  " + (", ".join(f"{t} ({r['precision']}{_ran_at_export(r)})" for t, r in sorted(m["targets"].items()))
                          or "none (reference only: runs on the torch backend)"),
           "", "programs"]
    for p in m["programs"]:
        g = p["golden"]
        out.append(f"  {p['name']}  ({g['calls']} golden calls of {g.get('calls_total', '?')}"
                   + (f", {p['flops'] / 1e6:.1f} MFLOPs/call" if p.get("flops") else "") + ")")
        out.append("    in:  " + "  ".join(_shape(s) for s in p["inputs"]))
        out.append("    out: " + "  ".join(_shape(s) for s in p["outputs"]))
        for tg, art in sorted(p["artifacts"].items()):
            q = art.get("quantization", {})
            fl = q.get("float_layers") or []
            out.append(f"    {tg}: {', '.join(art['files'])}  [{art['precision']}"
                       + (f", {len(fl)} float layers" if fl else "") + "]")
            out += _report(art.get("report", {}))
            warn = [i for i in art.get("preflight", []) if i.get("severity") == "warning"]
            for i in warn[:4]:
                out.append(f"        preflight warning: {i['construct']} at {i['module_path']}")
            for name, t in sorted(art["tolerances"].items()):
                out.append(f"        tolerance {name}: {_tol(t)}")
    pl = m["pipeline"]
    out += ["", "pipeline",
            f"  kind {pl['kind']}: " + " -> ".join(pl["programs"]) + f"   {pl['fps']} fps, {pl['image_size']}px",
            f"  sampler   {json.dumps(pl.get('sampler', {}), sort_keys=True)}",
            f"  window    {json.dumps(pl.get('window', {}), sort_keys=True)}",
            f"  audio     {json.dumps(pl.get('audio', {}), sort_keys=True)}",
            f"  normalize {json.dumps(pl.get('normalization', {}), sort_keys=True)}"]
    gp = m["golden"]
    out += ["", "golden pipeline",
            f"  seed {gp['seed']}, options {json.dumps(gp['options'])}, frames {gp.get('frames')}, "
            f"{len(gp['noise'])} noise tensors, stages {', '.join(gp.get('extras', [])) or '-'}"]
    out += ["", "pipeline tolerances"]
    for t, r in sorted(m["targets"].items()):
        out.append(f"  {t}: " + "; ".join(f"{k}: {_tol(v)}" for k, v in sorted(r["tolerances"].items())))
    tools = m["producer"]["tools"]
    out += ["", f"tools    edgeth {m['producer']['edgeth']}, " + ", ".join(f"{k} {v}" for k, v in sorted(tools.items())),
            f"files    {len(m['files'])} hashed"]
    return out
