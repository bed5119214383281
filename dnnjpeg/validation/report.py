"""Validation reports: ``report.md``, ``report.html``, PNG plots and ``validation.json`` in one folder.

:func:`write_report` takes the JSON object of ``dnnjpeg validate --json``
(:meth:`dnnjpeg.validation.validate.Validation.to_dict`), so a report can be rebuilt from a saved JSON
without re-evaluating anything.  Plots (matplotlib, Agg backend):

``accuracy_vs_cr.png``
    top-1 (%) against compression rate for standard JPEG, every other encoder, the table and its
    family members, with 95% Wilson intervals; the uncompressed top-1 as a dotted line.  Left: all
    qualities (log CR axis); right: a zoom on CR within a factor 1.5 of the table's.
``delta_vs_cr.png``
    top-1 gain over standard JPEG at equal compression rate (percentage points) with paired
    bootstrap 95% intervals.
``table_heatmap.png``
    the table's luma and chroma steps.
``table_ratio_heatmap.png``
    the table divided by the standard table of nearest mean size (log colour scale, 1 = equal).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..qtable import QTable
from .bd_bootstrap import format_interval
from .stats import wilson_interval

__all__ = ["PLOTS", "format_p", "format_pct", "format_pp", "write_report"]

#: The PNG files :func:`write_report` writes.
PLOTS: tuple[str, ...] = ("accuracy_vs_cr.png", "delta_vs_cr.png", "table_heatmap.png", "table_ratio_heatmap.png")

_COLOURS = {"standard": "#1f77b4", "table": "#d62728", "members": "#d62728"}
_ENCODER_COLOURS = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def format_pct(x: float | None, digits: int = 2, sign: bool = False) -> str:
    """A fraction as percent (``0.8123`` -> ``"81.23%"``); ``None``/NaN -> ``"n/a"``.

    Example:
        >>> format_pct(0.8123), format_pct(-0.004, sign=True), format_pct(None)
        ('81.23%', '-0.40%', 'n/a')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:{'+' if sign else ''}.{digits}f}%"


def format_p(p: float | None) -> str:
    """A p-value: 3 significant digits, scientific below 0.001.

    Example:
        >>> format_p(1.0), format_p(0.0312), format_p(1.2e-12)
        ('1', '0.0312', '1.2e-12')
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p >= 0.001:
        return f"{p:.3g}"
    return f"{p:.2g}"


def format_pp(x: float | None) -> str:
    """A difference of fractions in percentage points.

    Example:
        >>> format_pp(0.0123), format_pp(-0.0), format_pp(None)
        ('+1.23 pt', '+0.00 pt', 'n/a')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{round(100 * x, 2) + 0.0:+.2f} pt"  # + 0.0 turns -0.0 into 0.0: no "-0.00"


# -- plots --------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _curve_with_band(ax: Any, points: Sequence[dict[str, Any]], fmt: str, colour: str, label: str) -> None:
    """A rate-accuracy curve (sorted by CR) with its 95% intervals as a shaded band."""
    pts = sorted(points, key=lambda p: p["cr"])
    cr = np.array([p["cr"] for p in pts], dtype=float)
    ax.plot(cr, [100 * p["top1"] for p in pts], fmt, color=colour, ms=4, lw=1.5, label=label)
    ax.fill_between(cr, [100 * p["top1_ci_low"] for p in pts], [100 * p["top1_ci_high"] for p in pts],
                    color=colour, alpha=0.12, lw=0)


def _subtitle(d: dict[str, Any]) -> str:
    return f"{d['model']} on {d['data']} ({d['protocol']}, n={d['n']} images)"


def _cr_label(d: dict[str, Any]) -> str:
    if d.get("protocol") == "crop224":
        return "compression rate CR = 150582 B (24-bit BMP) / mean JPEG bytes (×)"
    return "compression rate CR = mean 24-bit BMP bytes / mean JPEG bytes (×)"


def _draw_accuracy(ax: Any, d: dict[str, Any], label_qualities: bool) -> None:
    """Every curve, the family and the table on one axes."""
    _curve_with_band(ax, d["standard"], "o-", _COLOURS["standard"],
                     f"standard JPEG (libjpeg, q{d['qualities'][0]}..q{d['qualities'][-1]})")
    if label_qualities:
        for p in d["standard"]:
            ax.annotate(f"q{p['quality']}", (p["cr"], 100 * p["top1"]), textcoords="offset points",
                        xytext=(3, 4), fontsize=7, color=_COLOURS["standard"], clip_on=True)
    for i, (name, enc) in enumerate(d.get("encoders", {}).items()):
        _curve_with_band(ax, enc["points"], "s--", _ENCODER_COLOURS[i % len(_ENCODER_COLOURS)], f"{name} (q sweep)")
    members = d.get("members") or []
    if len(members) >= 2:
        mcr = [m["cr"] for m in members]
        my = [100 * m["top1"] for m in members]
        ax.plot(mcr, my, "^-", color=_COLOURS["members"], ms=5, lw=1.2, label=f"{d['table_family']} family")
    lo, hi = _wilson(d["top1"], d["n"])
    ax.errorbar([d["cr"]], [100 * d["top1"]], yerr=[[100 * (d["top1"] - lo)], [100 * (hi - d["top1"])]],
                fmt="*", ms=16, color=_COLOURS["table"], capsize=4, zorder=5,
                label=f"{d['table_name']}: {format_pct(d['top1'])} at CR {d['cr']:.2f}")
    if d.get("reference_top1") is not None:
        ax.axhline(100 * d["reference_top1"], color="gray", ls=":", lw=1,
                   label=f"uncompressed: {format_pct(d['reference_top1'])}")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3, which="both")


def _zoom_limits(d: dict[str, Any], lo_cr: float, hi_cr: float) -> tuple[float, float]:
    """y range (percent) of every point and interval with CR in [lo_cr, hi_cr], plus the table's."""
    ys = [100 * d["top1"]]
    curves = [d["standard"], *[e["points"] for e in d.get("encoders", {}).values()]]
    for pts in curves:
        for p in pts:
            if lo_cr <= p["cr"] <= hi_cr:
                ys += [100 * p["top1_ci_low"], 100 * p["top1_ci_high"]]
    lo, hi = _wilson(d["top1"], d["n"])
    ys += [100 * lo, 100 * hi]
    pad = 0.05 * (max(ys) - min(ys) + 1e-9)
    return min(ys) - pad, max(ys) + pad


def _plot_accuracy(d: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import ScalarFormatter

    plt = _pyplot()
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(14, 6), dpi=100)
    _draw_accuracy(full, d, label_qualities=False)
    full.set_xscale("log")
    full.xaxis.set_major_formatter(ScalarFormatter())
    full.xaxis.set_minor_formatter(ScalarFormatter())
    full.tick_params(axis="x", which="minor", labelsize=7)
    full.set_xlabel(_cr_label(d) + ", log scale")
    full.set_title("all qualities", fontsize=10)
    full.legend(loc="lower left", fontsize=8)
    lo_cr, hi_cr = d["cr"] / 1.5, d["cr"] * 1.5
    _draw_accuracy(zoom, d, label_qualities=True)
    zoom.set_xlim(lo_cr, hi_cr)
    zoom.set_ylim(*_zoom_limits(d, lo_cr, hi_cr))
    zoom.set_xlabel(_cr_label(d))
    zoom.set_title(f"around the table's CR ({lo_cr:.1f} to {hi_cr:.1f}), standard qualities labelled", fontsize=10)
    fig.suptitle("Accuracy vs compression rate (bands and bar: 95% Wilson intervals)\n" + _subtitle(d), fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _wilson(p: float, n: int) -> tuple[float, float]:
    return wilson_interval(round(p * n), n)


def _plot_delta(d: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    ax.axhline(0, color=_COLOURS["standard"], lw=1.5, label="standard JPEG (reference, 0)")
    for i, (name, enc) in enumerate(d.get("encoders", {}).items()):
        pts = [p for p in enc["points"] if p.get("delta_top1_vs_standard") is not None]
        if not pts:
            continue
        x = np.array([p["cr"] for p in pts])
        y = np.array([p["delta_top1_vs_standard"] for p in pts]) * 100
        lo = np.array([np.nan if p["delta_ci_low"] is None else p["delta_ci_low"] for p in pts]) * 100
        hi = np.array([np.nan if p["delta_ci_high"] is None else p["delta_ci_high"] for p in pts]) * 100
        colour = _ENCODER_COLOURS[i % len(_ENCODER_COLOURS)]
        ax.plot(x, y, "s--", color=colour, ms=3.5, lw=1.2, label=f"{name} (BD-rate vs standard {_bd(enc.get('bd_rate'))})")
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0)
    members = [m for m in d.get("members") or [] if m.get("delta_top1") is not None]
    if len(members) >= 2:
        ax.errorbar([m["cr"] for m in members], [100 * m["delta_top1"] for m in members],
                    yerr=_yerr(members), fmt="^-", color=_COLOURS["members"], ms=5, capsize=2,
                    label=f"{d['table_family']} family (BD-rate {_bd(d.get('bd_rate'))})")
    if d.get("delta_top1") is not None:
        ax.errorbar([d["cr"]], [100 * d["delta_top1"]], yerr=_yerr([d]), fmt="*", ms=16, capsize=4,
                    color=_COLOURS["table"], zorder=5,
                    label=f"{d['table_name']}: {format_pp(d['delta_top1'])} "
                          f"[{format_pp(d['ci_low'])}, {format_pp(d['ci_high'])}]")
    ax.set_xlabel(_cr_label(d))
    ax.set_ylabel("top-1 gain over standard JPEG at equal CR (percentage points)")
    ax.set_title("Gain over standard JPEG at equal size (bands/bars: paired bootstrap 95% intervals)\n"
                 + _subtitle(d), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _yerr(items: Sequence[dict[str, Any]]) -> list[list[float]]:
    lo, hi = [], []
    for m in items:
        c, a, b = m["delta_top1"], m.get("ci_low"), m.get("ci_high")
        lo.append(100 * (c - a) if a is not None else 0.0)
        hi.append(100 * (b - c) if b is not None else 0.0)
    return [lo, hi]


def _bd(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _heatmap(ax: Any, values: np.ndarray, title: str, fmt: str, **kwargs: Any) -> Any:
    im = ax.imshow(values, **kwargs)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(8))
    ax.set_yticks(range(8))
    ax.set_xlabel("horizontal frequency u (DCT column)")
    ax.set_ylabel("vertical frequency v (DCT row)")
    norm = im.norm
    diverging = kwargs.get("cmap") != "viridis"
    for r in range(8):
        for c in range(8):
            v = values[r, c]
            shade = float(norm(v))
            dark_cell = abs(shade - 0.5) > 0.3 if diverging else shade < 0.6
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=7,
                    color="white" if dark_cell else "black")
    return im


def _plot_table(d: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    t = QTable.from_dict(d["table"])
    arr = t.as_array().astype(float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=110)
    vmax = float(arr.max())
    im = None
    for ax, values, title in zip(axes, arr, ("luma (Y)", "chroma (Cb, Cr)")):
        im = _heatmap(ax, values, f"{d['table_name']}: {title}", "g", cmap="viridis", vmin=1, vmax=vmax)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.85)
    cb.set_label("quantization step (DCT coefficient units)")
    fig.suptitle(f"Quantization table {d['table_name']} ({t.subsampling}), natural order", fontsize=11)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _plot_ratio(d: dict[str, Any], path: Path) -> None:
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    t = QTable.from_dict(d["table"])
    q = int(d["nearest_quality"])
    std = QTable.standard(q, subsampling=t.subsampling)
    ratio = t.as_array().astype(float) / std.as_array().astype(float)
    span = max(2.0, float(np.max(np.abs(np.log2(ratio)))))
    norm = LogNorm(vmin=2 ** -span, vmax=2 ** span)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=110)
    im = None
    for ax, values, title in zip(axes, ratio, ("luma (Y)", "chroma (Cb, Cr)")):
        im = _heatmap(ax, values, f"{title}: {d['table_name']} / standard q{q}", ".2f", cmap="RdBu_r", norm=norm)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.85)
    ticks = [2.0 ** k for k in range(-int(span), int(span) + 1)]
    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{t:g}" for t in ticks])
    cb.minorticks_off()
    cb.set_label("step ratio (log scale): >1 coarser than standard, <1 finer")
    fig.suptitle(f"{d['table_name']} relative to standard JPEG q{q} (the standard quality of nearest mean size)",
                 fontsize=11)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# -- text ---------------------------------------------------------------------------------
def _with_ci(x: float | None, lo: float | None, hi: float | None) -> str:
    return f"{format_pp(x)} [{format_pp(lo)}, {format_pp(hi)}]"


def _summary_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    lvl = round(100 * (d.get("ci_level") or 0.95))
    kl_bd = d.get("kl_bd_interval") or {}
    rows = [
        ("table", f"{d['table_name']}" + (f" (q{d['table_quality']})" if d.get("table_quality") is not None else "")),
        ("top-1", format_pct(d["top1"])),
        ("compression rate (CR)", f"{d['cr']:.3f} (mean {d['bytes_mean']:.0f} bytes, {d['bpp']:.3f} bpp)"),
        ("standard JPEG top-1 at this CR", format_pct(d.get("standard_top1_at_cr"))),
        ("difference (delta_top1)", format_pp(d.get("delta_top1"))),
        (f"{lvl}% bootstrap CI of the difference", f"[{format_pp(d.get('ci_low'))}, {format_pp(d.get('ci_high'))}]"),
        ("standard quality of nearest size",
         f"q{d['nearest_quality']}: top-1 {format_pct(d['nearest_top1'])}, CR {d['nearest_cr']:.3f}"),
        ("paired difference vs that quality", _with_ci(d["paired_delta_top1"], d.get("paired_ci_low"),
                                                       d.get("paired_ci_high"))),
        ("exact McNemar p (b / c discordant)", f"{format_p(d.get('p_value'))} ({d.get('mcnemar_b')} / {d.get('mcnemar_c')})"),
        ("paired t-test p (seed's test)", format_p(d.get("p_value_ttest"))),
        ("BD-rate of the family vs standard",
         _bd(d.get("bd_rate")) + format_interval(d.get("bd_interval")) if d.get("bd_rate") is not None
         else "n/a (needs at least 2 family members at the swept qualities)"),
        ("BD-rate at equal KL (less noisy than top-1)",
         _bd(kl_bd["bd_rate"]) + format_interval(kl_bd) if kl_bd.get("bd_rate") is not None else "n/a"),
        ("bytes vs standard at equal top-1", _bd(d.get("rate_delta_at_top1"))),
        ("uncompressed top-1", format_pct(d.get("reference_top1"))),
    ]
    return rows


def _encoder_rows(d: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, enc in d.get("encoders", {}).items():
        tv = enc["table_vs_encoder"]
        rows.append([
            name, _bd(enc.get("bd_rate")), format_pct(tv.get("encoder_top1_at_cr")), format_pp(tv.get("delta_top1")),
            f"[{format_pp(tv.get('ci_low'))}, {format_pp(tv.get('ci_high'))}]", f"q{tv['nearest_quality']}",
            format_p(tv.get("p_value")),
        ])
    return rows


def _curve_rows(points: Sequence[dict[str, Any]], with_delta: bool = False) -> list[list[str]]:
    rows = []
    for p in points:
        row = [f"q{p['quality']}", format_pct(p["top1"]),
               f"[{format_pct(p['top1_ci_low'], 1)}, {format_pct(p['top1_ci_high'], 1)}]",
               f"{p['cr']:.3f}", f"{p['bytes_mean']:.0f}", f"{p['bpp']:.3f}"]
        if with_delta:
            row.append(format_pp(p.get("delta_top1_vs_standard")))
        rows.append(row)
    return rows


_CURVE_HEAD = ["quality", "top-1", "95% Wilson CI", "CR", "mean bytes", "bpp"]
_ENC_HEAD = ["encoder", "BD-rate vs standard", "encoder top-1 at table's CR", "table minus encoder",
             "95% bootstrap CI", "nearest size", "McNemar p"]


def _sections(d: dict[str, Any], command: str | None) -> list[tuple[str, list[Any]]]:
    """Report content as (heading, blocks); a block is str (paragraph), ("table", head, rows) or ("img", file)."""
    verdict = _verdict(d)
    intro = (f"{_subtitle(d)}. Table `{d['table_name']}` compared with standard JPEG (libjpeg, qualities "
             f"{d['qualities'][0]}..{d['qualities'][-1]}) on the same images. Bootstrap: {d['resamples']} paired "
             f"resamples, seed {d['seed']}.")
    secs: list[tuple[str, list[Any]]] = [
        ("Summary", [intro, verdict, ("table", ["figure", "value"], [list(r) for r in _summary_rows(d)])]),
        ("Accuracy vs compression rate", [("img", "accuracy_vs_cr.png"), ("img", "delta_vs_cr.png")]),
    ]
    if d.get("encoders"):
        secs.append(("Other encoders at equal bytes", [
            ("BD-rate: mean percent of bytes the encoder needs against standard JPEG at equal top-1 "
             "(negative = smaller files). The table is compared with each encoder's curve at the table's CR."),
            ("table", _ENC_HEAD, _encoder_rows(d)),
        ]))
    members = d.get("members") or []
    if members:
        secs.append((f"Family {d['table_family']}", [("table", ["member", "top-1", "CR", "delta vs standard",
                                                                  "95% CI", "McNemar p"], [
            [f"q{m['quality']}", format_pct(m["top1"]), f"{m['cr']:.3f}", format_pp(m.get("delta_top1")),
             f"[{format_pp(m.get('ci_low'))}, {format_pp(m.get('ci_high'))}]", format_p(m.get("p_value"))] for m in members])]))
    secs.append(("The table", [("img", "table_heatmap.png"), ("img", "table_ratio_heatmap.png")]))
    secs.append(("Standard JPEG curve", [("table", _CURVE_HEAD, _curve_rows(d["standard"]))]))
    for name, enc in d.get("encoders", {}).items():
        secs.append((f"{name} curve", [("table", _CURVE_HEAD + ["delta vs standard at equal CR"],
                                        _curve_rows(enc["points"], with_delta=True))]))
    foot = ["All numbers are in `validation.json` (keys documented in docs/validation.md)."]
    if command:
        foot.append(f"Command: `{command}`")
    secs.append(("Provenance", foot))
    return secs


def _verdict(d: dict[str, Any]) -> str:
    lo, hi, p = d.get("ci_low"), d.get("ci_high"), d.get("p_value")
    if lo is None or hi is None:
        return "The table's CR lies outside the standard curve's range: no equal-size comparison."
    if lo > 0:
        word = "better than"
    elif hi < 0:
        word = "worse than"
    else:
        word = "not distinguishable from"
    return (f"**Verdict:** at equal size the table is {word} standard JPEG on these images "
            f"({format_pp(d['delta_top1'])}, 95% CI [{format_pp(lo)}, {format_pp(hi)}]; McNemar p = {format_p(p)} against q"
            f"{d['nearest_quality']}).")


def _markdown(secs: list[tuple[str, list[Any]]], title: str) -> str:
    out = [f"# {title}", ""]
    for heading, blocks in secs:
        out += [f"## {heading}", ""]
        for b in blocks:
            if isinstance(b, str):
                out += [b, ""]
            elif b[0] == "img":
                out += [f"![{b[1]}]({b[1]})", ""]
            else:
                _, head, rows = b
                out.append("| " + " | ".join(head) + " |")
                out.append("|" + "---|" * len(head))
                out += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    """Escape, then the two inline marks the report uses: **bold** and `code`."""
    import re

    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def _html(secs: list[tuple[str, list[Any]]], title: str) -> str:
    css = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;"
           "text-align:left}th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}"
           "code{background:#f3f3f3;padding:0 .2em}")
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
           f"<style>{css}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in secs:
        out.append(f"<h2>{html.escape(heading)}</h2>")
        for b in blocks:
            if isinstance(b, str):
                out.append(f"<p>{_inline_md(b)}</p>")
            elif b[0] == "img":
                out.append(f"<img src='{html.escape(b[1])}' alt='{html.escape(b[1])}'>")
            else:
                _, head, rows = b
                out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
                out += ["<tr>" + "".join(f"<td>{_inline_md(c)}</td>" for c in r) + "</tr>" for r in rows]
                out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(d: dict[str, Any], folder: str | os.PathLike[str], *, command: str | None = None) -> list[Path]:
    """Write ``report.md``, ``report.html``, :data:`PLOTS` and ``validation.json`` into ``folder``.

    Args:
        d: the validation JSON object (:meth:`dnnjpeg.validation.validate.Validation.to_dict`).
        folder: created if missing; existing report files are overwritten.
        command: the command line that produced ``d``, quoted in the report.

    Returns:
        The paths written.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in PLOTS]
    _plot_accuracy(d, paths[0])
    _plot_delta(d, paths[1])
    _plot_table(d, paths[2])
    _plot_ratio(d, paths[3])
    title = f"Validation of {d['table_name']} on {d['data']}"
    secs = _sections(d, command)
    md, htm, js = out / "report.md", out / "report.html", out / "validation.json"
    md.write_text(_markdown(secs, title), encoding="utf-8")
    htm.write_text(_html(secs, title), encoding="utf-8")
    js.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
    return [md, htm, js, *paths]
