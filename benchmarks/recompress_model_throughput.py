"""Throughput of the model in the loop (``dnnjpeg recompress --model``) against a plain recompress and against
evaluating every rung, side by side on the same files, in one run.

    python benchmarks/recompress_model_throughput.py [--data DIR] [--limit N] [--max-kl 0.05] [--ladder standard]
        [--model efficientnet_lite0] [--workers N[,N...]] [--device cpu|cuda] [--tmp DIR] [--json OUT]

Three ways to recompress the first ``--limit`` photos of ``--data`` (its ``labels.csv`` order), each in a
fresh process started by this script, as a user runs it (interpreter start, imports and model loading
included), each into a fresh DST:

(a) *plain*: ``dnnjpeg recompress SRC DST --table standard --quality 75`` (no model).
(b) *model*: ``dnnjpeg recompress SRC DST --model M --max-kl TAU --ladder L`` (the search through the real
    engine: worker processes that each load the model once, the manifest, atomic writes).
(c) *exhaustive*: every image at every rung through the model (:func:`dnnjpeg.ratecontrol.evaluate_rungs`,
    native protocol), what a search-free version would do; this script in a child process reads and
    decodes the files, loads the model and builds the table.  Its answer per image is the smallest
    holding rung smaller than the source, else the source (what (b) looks for).  It writes no files
    (one write per image, nothing next to 1 + rungs model evaluations).

SRC is a folder of hard links to exactly those files (copies across file systems), read once first so
every run starts from the page cache.  With several ``--workers`` values (``--workers 8,2``), (a) and (b)
run for each; (c) runs once (codec threads: every core; torch threads: torch's own setting, or
``--exhaustive-threads``).

Reported per run: wall seconds and images/s; the *start-up* in it (interpreter, imports, model loading)
and images/s without it: for (a) the wall time minus recompress's own ``Summary.seconds``; for (b) that
plus the model loading measured in a fresh process just before it (import torch, ``load_classifiers``,
a first batch on the device: what each of (b)'s workers does first, all at once), an estimate; for (c)
measured in its process.  Also (b)'s first output (its manifest's first file, from the start of its
process); model evaluations per image ((b): ``mean_evaluations`` of
:class:`~dnnjpeg.batch.choices.RateControlTotals` over its manifest, what its summary prints, the
reference included; (c): 1 + rungs); bytes after (for (c) the rungs' bytes, without the source's
metadata that (b) adds); how often (b) gave (c)'s answer; the ratios (b)/(a) and (b)/(c); where one
evaluation's time goes (encode, decode, the model's resize/crop: one thread each; the forward pass: a
batch of 32 with (c)'s torch threads); the machine (CPU model, cores, torch, device) and its load
(``uptime`` before and after; per run the 1-minute load average before and after and the cores that
other processes kept busy meanwhile, from ``/proc/stat``).  On a shared machine every wall time depends
on that load: compare runs whose "others' cores" agree.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("dnnjpeg") is None:  # a checkout, not installed
    sys.path.insert(0, str(HERE.parent))

from ratecontrol_search import _exhaustive_bytes, _load  # noqa: E402
from recompress_throughput import DEFAULT_DATA, measured  # noqa: E402

import dnnjpeg  # noqa: E402
from dnnjpeg._jpegmarkers import metadata_segments  # noqa: E402
from dnnjpeg.batch import default_workers  # noqa: E402
from dnnjpeg.batch import manifest as mf  # noqa: E402
from dnnjpeg.batch.choices import RateControlTotals  # noqa: E402
from dnnjpeg.evaluation.data import load_dataset  # noqa: E402

#: the folder holding the dnnjpeg this script runs, when it is a checkout (the child processes get it too)
CHECKOUT = Path(dnnjpeg.__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    """CPU model, usable cores and torch's version (without importing torch)."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = None
    return {"cpu": cpu, "cores": default_workers(), "torch": torch, "python": sys.version.split()[0]}


def uptime() -> str:
    """``uptime``'s line (the load averages), or the 1/5/15-minute load averages without it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _env() -> dict[str, str]:
    """The children's environment: they import the dnnjpeg this process imported (a checkout first on
    their path; an installed copy they find themselves)."""
    env = dict(os.environ)
    if (CHECKOUT / "pyproject.toml").is_file():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT), env.get("PYTHONPATH")) if p)
    env.pop("DNNJPEG_WORKERS", None)
    return env


def stage(files: list[Path], data: Path, folder: Path) -> Path:
    """``folder/src`` holding exactly ``files`` (hard links, else copies), at their paths under ``data``."""
    src = folder / "src"
    for p in files:
        dest = src / p.relative_to(data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, dest)
        except OSError:
            shutil.copy2(p, dest)
    return src


def run_recompress(src: Path, parent: Path, name: str, extra: list[str], workers: int | None) -> dict[str, Any]:
    """``python -m dnnjpeg recompress src <fresh dst> *extra`` in a fresh process: its wall time, and its
    figures from what it printed (``Summary.seconds``) and from its manifest (sizes, the models' choices,
    counted by :class:`~dnnjpeg.batch.choices.RateControlTotals` as its summary does).  No ``--report``:
    with ``--model`` it would also draw a plot, which is no part of the work."""
    work = Path(tempfile.mkdtemp(prefix=f"dnnjpeg-bench-{name}-", dir=parent))
    cmd = [sys.executable, "-m", "dnnjpeg", "recompress", str(src), str(work / "dst"), *extra, "--no-progress"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    load0 = os.getloadavg()[0]
    try:
        t_start = time.time()
        proc, wall, _, others = measured(
            lambda: subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=str(parent))
        )
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        with open(work / "dst" / mf.manifest_name(None)) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        meta = sum(_added_metadata((work / "dst" / r.get("out", r["path"])).read_bytes())
                   for r in recs if r.get("type") == "file" and r.get("status") == "ok")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files = [r for r in recs if r.get("type") == "file"]
    done = [r for r in files if r.get("status") in ("ok", "kept")]
    rc = RateControlTotals(models=[], criterion={}, ladder="", min_quality=None, rung_labels=[])
    for r in done:
        if "evaluations" in r:
            rc.add(r)
    m = re.search(r"this run: \d+ files in ([0-9.]+) s .* on (\d+) ", proc.stdout)
    if m:
        run_s, n_workers = float(m.group(1)), int(m.group(2))
    else:  # the manifest's times: the run's start (after the imports) to its last file
        run_s = max(r["t"] for r in files) - next(r["t"] for r in recs if r.get("type") == "run")
        n_workers = workers
    return {
        "wall_seconds": wall, "run_seconds": run_s, "workers": n_workers, "images": len(done),
        "failed": sum(r.get("status") == "failed" for r in files),
        "bytes_before": sum(r["src_size"] for r in done), "bytes_after": sum(r["dst_size"] for r in done),
        "metadata_bytes": meta,
        "first_output_seconds": min((r["t"] for r in files), default=t_start) - t_start,
        "others_cores": others / wall, "loadavg_before": load0, "loadavg_after": os.getloadavg()[0],
        "summary_text": proc.stdout.strip(),
        "mean_evaluations": rc.mean_evaluations if rc.images else None,
        "held": rc.held, "top_rung": rc.top_rung, "kept_original": rc.kept_original,
        "choices": {c["path"]: c["rung"] or "original" for c in rc.choices},
    }


def _added_metadata(data: bytes) -> int:
    """Bytes of the source's metadata segments that recompress put into a re-encoded file: every APPn and
    COM segment but the encoder's own JFIF APP0 and Adobe APP14."""
    return sum(len(seg) for seg in metadata_segments(data) if seg[1] not in (0xE0, 0xEE))


def run_child(args: argparse.Namespace, parent: Path, what: str) -> dict[str, Any]:
    """This script with ``--child WHAT`` in a fresh process: its wall time and what it measured.

    ``load``: import torch, load the model, run a first batch (what each worker of (b) does first);
    ``exhaustive``: that, then (c)."""
    out = Path(tempfile.mkdtemp(prefix=f"dnnjpeg-bench-{what}-", dir=parent)) / "child.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--data", str(args.data), "--max-kl", str(args.max_kl),
           "--ladder", args.ladder, "--model", args.model, "--child", what, "--child-out", str(out)]
    if args.limit is not None:
        cmd += ["--limit", str(args.limit)]
    if args.device:
        cmd += ["--device", args.device]
    if args.exhaustive_threads and what == "exhaustive":
        cmd += ["--exhaustive-threads", str(args.exhaustive_threads)]
    load0 = os.getloadavg()[0]
    try:
        proc, wall, _, others = measured(lambda: subprocess.run(cmd, capture_output=True, text=True, env=_env()))
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        res = json.loads(out.read_text())
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    res.update(wall_seconds=wall - res.get("breakdown_seconds", 0.0), others_cores=others / wall,
               loadavg_before=load0, loadavg_after=os.getloadavg()[0])
    return res


def child(args: argparse.Namespace) -> int:
    """``--child load`` or ``--child exhaustive`` (see :func:`run_child`), in this process, timed apart."""
    t0 = time.perf_counter()
    import numpy as np
    import torch

    from dnnjpeg.ratecontrol import Criterion, RateControl, evaluate_rungs, get_ladder, load_classifiers

    res: dict[str, Any] = {"import_seconds": time.perf_counter() - t0}
    if args.exhaustive_threads:
        torch.set_num_threads(args.exhaustive_threads)
    t0 = time.perf_counter()
    clf = load_classifiers(RateControl(models=(args.model,), device=args.device))[0]
    clf(np.stack([np.asarray(clf.transform(_blank()))] * 32)).cpu()  # a first batch: kernels chosen, memory taken
    res.update(load_seconds=time.perf_counter() - t0, device=str(clf.device), torch_threads=torch.get_num_threads(),
               gpu=torch.cuda.get_device_name(clf.device) if clf.device.type == "cuda" else None)
    if args.child == "exhaustive":
        t0 = time.perf_counter()
        args.data = args.data.resolve()
        files = load_dataset(args.data, limit=args.limit).files
        images, src_sizes = _load(args.data, args.limit)
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = evaluate_rungs(images, args.ladder, [clf])
        t_eval = time.perf_counter() - t0
        src = np.array(src_sizes, dtype=np.int64)
        crit = Criterion(args.max_kl)
        held = table.held(crit) & (table.nbytes < src[:, None])
        answer = [table.labels[int(np.argmin(np.where(h, b, np.iinfo(np.int64).max)))] if h.any() else "original"
                  for h, b in zip(held, table.nbytes)]
        t0 = time.perf_counter()
        res.update(
            images=len(images), rungs=len(table.labels), decode_seconds=t_decode, evaluate_seconds=t_eval,
            run_seconds=t_decode + t_eval, bytes_before=int(src.sum()),
            bytes_after=int(_exhaustive_bytes(table, crit, src).sum()),
            answers={str(f.relative_to(args.data)): a for f, a in zip(files, answer)},
            per_evaluation_ms=breakdown(images[:32], get_ladder(args.ladder), clf),
        )
        res["breakdown_seconds"] = time.perf_counter() - t0
    Path(args.child_out).write_text(json.dumps(res) + "\n")
    return 0


def _blank() -> Any:
    from PIL import Image

    return Image.new("RGB", (500, 375), "gray")


def breakdown(images: list[Any], ladder: Any, clf: Any) -> dict[str, float]:
    """Milliseconds per image of each step of one candidate evaluation, at the ladder's middle rung."""
    import numpy as np

    from dnnjpeg.ratecontrol._engine import decode_image

    rung, n = ladder[len(ladder) // 2], max(len(images), 1)

    def each(fn: Any, items: list[Any]) -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        out = [fn(x) for x in items]
        return out, (time.perf_counter() - t0) / n * 1e3

    data, enc = each(rung.encode, images)
    decoded, dec = each(decode_image, data)
    inputs, tr = each(lambda im: np.asarray(clf.transform(im)), decoded)
    batch, fwd = np.stack(inputs), float("inf")
    for _ in range(2):  # the faster of two (a batch size's first call can be slower)
        t0 = time.perf_counter()
        clf(batch).cpu().numpy()
        fwd = min(fwd, (time.perf_counter() - t0) / n * 1e3)
    return {"rung": rung.label, "encode": enc, "decode": dec, "transform": tr, "forward": fwd}


def rows(plain: dict[int | None, dict[str, Any]], model: dict[int | None, dict[str, Any]],
         loads: dict[int | None, dict[str, Any]], exh: dict[str, Any],
         args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per run: the figures of the table and the JSON.  (b)'s start-up adds the model loading
    measured just before it in a fresh process (torch's import, the model, a first batch)."""
    out = []
    for w in plain:
        out.append(_row("plain", plain[w], plain[w]["wall_seconds"] - plain[w]["run_seconds"], 0.0))
        load = loads[w]["import_seconds"] + loads[w]["load_seconds"]
        r = model[w]
        out.append(_row("model", r, r["wall_seconds"] - r["run_seconds"] + load, r["mean_evaluations"] or 0.0))
        out[-1]["model_load_seconds"] = round(load, 2)
    out.append(_row("exhaustive", exh, exh["wall_seconds"] - exh["run_seconds"], 1.0 + exh["rungs"]))
    out[-1]["model_load_seconds"] = round(exh["import_seconds"] + exh["load_seconds"], 2)
    for r in out:
        r["label"] = {
            "plain": "(a) recompress --table standard --quality 75",
            "model": f"(b) recompress --model {args.model} --max-kl {args.max_kl:g}",
            "exhaustive": f"(c) exhaustive: all {exh['rungs']} rungs + reference",
        }[r["kind"]]
    return out


def _row(kind: str, r: dict[str, Any], startup: float, evals: float) -> dict[str, Any]:
    n, wall = r["images"], r["wall_seconds"]
    steady = wall - startup  # None below: too short to tell apart from the start-up's noise
    return {
        "kind": kind, "workers": r.get("workers"), "images": n, "wall_seconds": round(wall, 2),
        "images_per_s": n / wall, "startup_seconds": round(startup, 2),
        "images_per_s_after_startup": n / steady if steady > max(0.2, 0.05 * wall) else None,
        "first_output_seconds": None if "first_output_seconds" not in r else round(r["first_output_seconds"], 2),
        "evaluations_per_image": round(evals, 3), "bytes_before": r["bytes_before"], "bytes_after": r["bytes_after"],
        "metadata_bytes": r.get("metadata_bytes", 0),
        "others_cores": round(r["others_cores"], 2),
        "loadavg_before_after": [round(r["loadavg_before"], 2), round(r["loadavg_after"], 2)],
    }


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _f(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def table_lines(out: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | workers | evals/img | wall s | images/s | start-up s | images/s after start-up "
             "| MB after (before) | others' cores | load 1-min before/after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out:
        lines.append(
            f"| {r['label']} | {r['workers'] if r['workers'] is not None else '-'} | "
            f"{r['evaluations_per_image']:.2f} | {r['wall_seconds']:.1f} | {r['images_per_s']:.2f} | "
            f"{r['startup_seconds']:.1f}{' (est.)' if r['kind'] == 'model' else ''} | "
            f"{_f(r['images_per_s_after_startup'], '.2f')} | "
            f"{r['bytes_after'] / 1e6:.2f} ({r['bytes_before'] / 1e6:.2f}) | "
            f"{r['others_cores']:.2f} | {r['loadavg_before_after'][0]:.2f} / {r['loadavg_before_after'][1]:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="the first N photos (default: all)")
    ap.add_argument("--max-kl", type=float, default=0.05)
    ap.add_argument("--ladder", default="standard")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--workers", default=None,
                    help="recompress workers, or several comma-separated (default: recompress's, one per core)")
    ap.add_argument("--device", default=None, help="the model's torch device (default: CUDA when available)")
    ap.add_argument("--exhaustive-threads", type=int, default=None,
                    help="torch threads of (c) (default: torch's own setting, usually one per core)")
    ap.add_argument("--tmp", type=Path, default=None, help="where to stage SRC and write outputs (default: temp)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--child", choices=("load", "exhaustive"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    if not args.data.is_dir():
        print(f"skip: {args.data} not found (the dev images live in ../shared/data)", file=sys.stderr)
        return 0
    args.data = args.data.resolve()
    files = load_dataset(args.data, limit=args.limit).files
    workers = [None] if args.workers is None else [int(w) for w in str(args.workers).split(",")]
    before = uptime()
    for p in files:
        p.read_bytes()  # page cache
    parent = Path(tempfile.mkdtemp(prefix="dnnjpeg-bench-model-", dir=args.tmp))
    plain: dict[int | None, dict[str, Any]] = {}
    model: dict[int | None, dict[str, Any]] = {}
    loads: dict[int | None, dict[str, Any]] = {}
    try:
        src = stage(files, args.data, parent)
        model_args = ["--model", args.model, "--max-kl", str(args.max_kl), "--ladder", args.ladder]
        if args.device:
            model_args += ["--device", args.device]
        for w in workers:
            plain[w] = run_recompress(src, parent, "plain", ["--table", "standard", "--quality", "75"], w)
            loads[w] = run_child(args, parent, "load")
            model[w] = run_recompress(src, parent, "model", model_args, w)
        exh = run_child(args, parent, "exhaustive")
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    after = uptime()
    out = rows(plain, model, loads, exh, args)
    mach = {**machine(), "device": exh["device"], "gpu": exh["gpu"], "torch_threads_exhaustive": exh["torch_threads"]}
    n = len(files)
    print(f"{n} photos of {args.data}, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB; model {args.model}, "
          f"max KL {args.max_kl:g}, ladder {args.ladder} ({exh['rungs']} rungs)")
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}, torch {mach['torch']}, "
          f"device {mach['device']}" + (f" ({mach['gpu']})" if mach["gpu"] else ""))
    print(f"uptime before: {before}\nuptime after:  {after}\n")
    print("\n".join(table_lines(out)))
    print()
    ex = out[-1]
    ratios = []
    for i, w in enumerate(workers):
        b, ra, rb = model[w], out[2 * i], out[2 * i + 1]
        same = [b["choices"].get(k) == v for k, v in exh["answers"].items() if k in b["choices"]]
        ratio = {
            "workers": rb["workers"],
            "model_vs_plain": rb["images_per_s"] / ra["images_per_s"],
            "model_vs_plain_after_startup": _div(rb["images_per_s_after_startup"], ra["images_per_s_after_startup"]),
            "model_vs_exhaustive": rb["images_per_s"] / ex["images_per_s"],
            "model_vs_exhaustive_after_startup": _div(rb["images_per_s_after_startup"],
                                                      ex["images_per_s_after_startup"]),
            "bytes_vs_exhaustive": rb["bytes_after"] / ex["bytes_after"] - 1,
            "bytes_vs_exhaustive_without_metadata": (rb["bytes_after"] - rb["metadata_bytes"]) / ex["bytes_after"] - 1,
            "same_answer_as_exhaustive": sum(same) / len(same) if same else None,
        }
        ratios.append(ratio)
        ld = loads[w]
        print(f"{rb['workers']} workers: (b)/(a) images/s {ratio['model_vs_plain']:.4f} "
              f"({_f(ratio['model_vs_plain_after_startup'], '.4f')} after start-up), (b)/(c) "
              f"{ratio['model_vs_exhaustive']:.2f} ({_f(ratio['model_vs_exhaustive_after_startup'], '.2f')} after "
              f"start-up)")
        print(f"  (b): {b['mean_evaluations']:.2f} model evaluations per image (goal <= 3; (c): "
              f"{ex['evaluations_per_image']:.0f}); {b['held']} held, {b['top_rung']} got the top rung, "
              f"{b['kept_original']} kept the original; bytes {rb['bytes_after'] / rb['bytes_before']:.3f} of the "
              f"source, {100 * ratio['bytes_vs_exhaustive']:+.1f}% against (c), "
              f"{100 * ratio['bytes_vs_exhaustive_without_metadata']:+.1f}% without the "
              f"{rb['metadata_bytes'] / 1e6:.2f} MB of metadata it kept in re-encoded files ((c)'s rungs have none); "
              f"(c)'s answer for "
              f"{_f(ratio['same_answer_as_exhaustive'], '.1%')} of the images")
        print(f"  (b): first output {b['first_output_seconds']:.1f} s after its start; model loading in a fresh "
              f"process just before: import torch {ld['import_seconds']:.1f} s, model + first batch "
              f"{ld['load_seconds']:.1f} s")
    pe = exh["per_evaluation_ms"]
    print(f"(c) in its process: import torch {exh['import_seconds']:.1f} s, model + first batch "
          f"{exh['load_seconds']:.1f} s, reading and decoding {exh['decode_seconds']:.1f} s, every rung "
          f"{exh['evaluate_seconds']:.1f} s (torch threads {exh['torch_threads']}, codec threads {mach['cores']})")
    print(f"one evaluation at {pe['rung']}, ms per image: encode {pe['encode']:.1f}, decode {pe['decode']:.1f}, "
          f"resize/crop {pe['transform']:.1f} (one thread each), forward {pe['forward']:.1f} (one batch of "
          f"{min(n, 32)}, {exh['device']}, torch threads {exh['torch_threads']}); reading + decoding a source "
          f"{1e3 * exh['decode_seconds'] / n:.1f}")
    if args.json:
        result = {"images": n, "data": str(args.data), "model": args.model, "max_kl": args.max_kl,
                  "ladder": args.ladder, "rungs": exh["rungs"], "machine": mach, "uptime_before": before,
                  "uptime_after": after, "rows": out, "ratios": ratios, "exhaustive": {
                      k: exh[k] for k in ("import_seconds", "load_seconds", "decode_seconds", "evaluate_seconds",
                                          "per_evaluation_ms")},
                  "summaries": {f"{k}-{w}": r["summary_text"] for k, d in (("plain", plain), ("model", model))
                                for w, r in d.items()}}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
