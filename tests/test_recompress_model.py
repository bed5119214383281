"""``recompress --model``: the model in the loop chooses each image's bytes, with recompress's guarantees.

Real photos (scikit-image's samples, made small), the real EfficientNet-Lite weights and the real
encoders; every KL the run reports is checked against an independent computation with
``dnnjpeg.evaluation.models.get("efficientnet_lite0")``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.batch.testing import ICC, XMP
from dnnjpeg.cli import main
from dnnjpeg.errors import DnnjpegError
from dnnjpeg.ratecontrol import Criterion, RateControl

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")

MANIFEST = ".dnnjpeg-recompress.jsonl"
TAU = 0.05
CHOICE_KEYS = {"rung", "kl", "top1_kept", "held", "evaluations", "kept_original"}


def _small(arr: np.ndarray, width: int = 160) -> Image.Image:
    im = Image.fromarray(arr)
    return im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)


def _jpeg(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _put(root: Path, rel: str, data: bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "dnnjpeg-test-camera"  # make
    return exif.tobytes()


def photo_tree(root: Path) -> dict[str, str]:
    """Small real photos (PNG, JPEG, gray, one with full metadata), two broken files and a non-image;
    returns {relative path: expected status}."""
    exp = {}
    _put(root, "cats/chelsea.png", _png(_small(skimage_data.chelsea())))
    exp["cats/chelsea.png"] = "image"
    _put(root, "cats/coffee.jpg", _jpeg(_small(skimage_data.coffee()), quality=95))
    exp["cats/coffee.jpg"] = "image"
    _put(root, "misc/rocket.png", _png(_small(skimage_data.rocket())))
    exp["misc/rocket.png"] = "image"
    _put(root, "misc/camera.png", _png(_small(skimage_data.camera(), 128)))  # gray
    exp["misc/camera.png"] = "image"
    meta = _jpeg(_small(skimage_data.astronaut()), quality=95, exif=_exif(), icc_profile=ICC, xmp=XMP,
                 comment=b"a comment")  # fmt: skip
    _put(root, "misc/astronaut.jpg", meta)
    exp["misc/astronaut.jpg"] = "image"
    good = _jpeg(_small(skimage_data.coffee()), quality=95)
    _put(root, "bad/truncated.jpg", good[: len(good) // 2])
    exp["bad/truncated.jpg"] = "failed"
    _put(root, "bad/text.jpg", b"not an image\n")
    exp["bad/text.jpg"] = "failed"
    _put(root, "labels.csv", b"file,label\ncats/chelsea.png,cat\n")
    exp["labels.csv"] = "copied"
    return exp


def file_records(dst: Path, name: str = MANIFEST) -> dict[str, dict]:
    out = {}
    for line in (dst / name).read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "file":
            out[rec["path"]] = rec
    return out


def independent_check(clf, src: Image.Image, out: Image.Image) -> tuple[float, bool]:
    """KL(p_src || p_out) in nats and whether the top-1 class is the same, computed here from the logits."""
    x = np.stack([clf.transform(src), clf.transform(out)])
    z = clf(x).double().cpu()
    logp = torch.log_softmax(z, dim=1)
    kl = float((logp[0].exp() * (logp[0] - logp[1])).sum())
    return kl, int(z[0].argmax()) == int(z[1].argmax())


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One CLI run with --model on the photo tree: 2 local worker processes, JSON report (and its plot)."""
    base = tmp_path_factory.mktemp("model_run")
    src, dst, report = base / "src", base / "dst", base / "run.json"
    expected = photo_tree(src)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["recompress", str(src), str(dst), "--model", "efficientnet_lite0", "--max-kl", str(TAU),
                     "--workers", "2", "--report-json", str(report), "--no-progress"])  # fmt: skip
    return SimpleNamespace(src=src, dst=dst, report=report, code=code, out=stdout.getvalue(), expected=expected,
                           before=before)  # fmt: skip


@pytest.mark.slow
def test_cli_run_writes_jpegs_the_model_reads_the_same(cli_run: SimpleNamespace, lite0) -> None:
    assert cli_run.code == 1, cli_run.out  # the two broken files
    images = sorted(r for r, s in cli_run.expected.items() if s == "image")
    records = file_records(cli_run.dst)
    for rel in images:
        rec = records[rel]
        assert rec["status"] in ("ok", "kept"), rec
        assert CHOICE_KEYS <= rec.keys(), rec
        assert rec["evaluations"] >= 1 and set(rec["kl"]) == {"efficientnet_lite0"}
        with Image.open(cli_run.dst / rel) as im:
            im.load()
            assert im.format == "JPEG"
        assert (cli_run.dst / rel).stat().st_size == rec["dst_size"]
    # Every held choice of an RGB photo: the KL recomputed here (unfolded model, own softmax) is within tau.
    held = [r for r in images if records[r]["held"] and not records[r]["kept_original"] and r != "misc/camera.png"]
    assert held, records
    for rel in held:
        kl, top1 = independent_check(lite0, _open_rgb(cli_run.src / rel), _open_rgb(cli_run.dst / rel))
        recorded = records[rel]["kl"]["efficientnet_lite0"]
        assert kl <= TAU + 1e-3, (rel, kl)
        assert kl == pytest.approx(recorded, abs=1e-3), rel
        assert top1 == records[rel]["top1_kept"]["efficientnet_lite0"]
    # SRC untouched.
    assert {p: p.read_bytes() for p in cli_run.src.rglob("*") if p.is_file()} == cli_run.before


@pytest.mark.slow
def test_cli_run_report_summary_and_plot(cli_run: SimpleNamespace) -> None:
    records = file_records(cli_run.dst)
    chosen = [r for r in records.values() if "held" in r]
    report = json.loads(cli_run.report.read_text())
    totals = report["summary"]["rate_control"]
    assert totals["images"] == len(chosen) == 5
    assert totals["held"] + totals["top_rung"] + totals["kept_original"] == 5
    assert totals["evaluations"] == sum(r["evaluations"] for r in chosen)
    assert totals["mean_evaluations"] == pytest.approx(totals["evaluations"] / 5, abs=1e-4)
    assert sum(totals["rungs"].values()) == 5 and totals["models"] == ["efficientnet_lite0"]
    assert report["settings"]["rate_control"]["criterion"]["max_kl"] == TAU and report["settings"]["table"] is None
    by_path = {c["path"]: c for c in report["choices"]}
    assert set(by_path) == {r["path"] for r in chosen}
    for r in chosen:
        c = by_path[r["path"]]
        assert {k: c[k] for k in CHOICE_KEYS} == {k: r[k] for k in CHOICE_KEYS}
        assert (c["src_size"], c["dst_size"]) == (r["src_size"], r["dst_size"])
    # The plot beside the report.
    with Image.open(cli_run.report.with_suffix(".png")) as png:
        assert png.format == "PNG" and png.width > 400
    # The printed summary.
    assert "model in the loop: efficientnet_lite0, max KL 0.05" in cli_run.out
    assert f"{totals['mean_evaluations']:.1f} model evaluations per image" in cli_run.out
    assert "chosen rungs:" in cli_run.out and f"plot: {cli_run.report.with_suffix('.png')}" in cli_run.out


@pytest.mark.slow
def test_cli_run_reports_bad_files_and_finishes_the_rest(cli_run: SimpleNamespace) -> None:
    records = file_records(cli_run.dst)
    report = json.loads(cli_run.report.read_text())
    assert {f["path"] for f in report["failures"]} == {"bad/truncated.jpg", "bad/text.jpg"}
    assert "bad/text.jpg: not an image" in cli_run.out
    assert records["labels.csv"]["status"] == "copied"
    assert (cli_run.dst / "labels.csv").read_bytes() == (cli_run.src / "labels.csv").read_bytes()
    assert sum(r["status"] in ("ok", "kept") for r in records.values()) == 5


@pytest.mark.slow
def test_cli_run_keeps_metadata(cli_run: SimpleNamespace) -> None:
    with Image.open(cli_run.dst / "misc/astronaut.jpg") as im:
        exif = im.getexif()
        assert exif[0x0112] == 6 and exif[0x010F] == "dnnjpeg-test-camera"
        assert im.info["icc_profile"] == ICC
        assert im.info["xmp"] == XMP
        assert im.info["comment"] == b"a comment"


@pytest.mark.slow
def test_resume_redoes_nothing_and_other_settings_are_refused(
    cli_run: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    first = json.loads(cli_run.report.read_text())["summary"]["rate_control"]
    rc = RateControl(("efficientnet_lite0",), Criterion(TAU))
    again = dnnjpeg.recompress(cli_run.src, cli_run.dst, rate_control=rc, workers=2)
    assert again.processed == 0 and again.resumed == len(cli_run.expected)
    assert again.failed == 2 and again.ok + again.kept == 5
    # The totals cover the earlier run's choices, read back from the manifest.
    totals = again.rate_control
    assert totals is not None
    assert (totals.images, totals.held, totals.evaluations, totals.rungs) == (
        first["images"], first["held"], first["evaluations"], first["rungs"])  # fmt: skip
    assert "nothing left to do" in again.format() and "model in the loop" in again.format()
    capsys.readouterr()
    for other in (["--model", "efficientnet_lite0", "--max-kl", "0.1"],
                  ["--model", "efficientnet_lite0", "--max-kl", str(TAU), "--ladder", "standard:20-90:10"],
                  ["--table", "resnet50"]):  # fmt: skip
        assert main(["recompress", str(cli_run.src), str(cli_run.dst), *other]) == 2
        err = capsys.readouterr().err
        assert "other settings" in err and "--restart" in err, other


@pytest.mark.slow
def test_keep_top1_and_two_models(tmp_path: Path, lite0) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _put(src, "chelsea.png", _png(_small(skimage_data.chelsea())))
    _put(src, "coffee.jpg", _jpeg(_small(skimage_data.coffee()), quality=95))
    models = ("efficientnet_lite0", "efficientnet_lite1")
    rc = RateControl(models, Criterion(TAU, keep_top1=True), ladder="standard:20-95:15")
    summary = dnnjpeg.recompress(src, dst, rate_control=rc, workers=0)
    assert summary.exit_code == 0 and summary.rate_control.images == 2
    assert summary.rate_control.models == list(models)
    records = file_records(dst)
    for rel in ("chelsea.png", "coffee.jpg"):
        rec = records[rel]
        assert set(rec["kl"]) == set(models) and set(rec["top1_kept"]) == set(models)
        assert rec["evaluations"] >= 2  # a reference per model at least
    held = [r for r in records.values() if r["held"] and not r["kept_original"]]
    assert held
    for rec in held:
        assert all(v <= TAU for v in rec["kl"].values()) and all(rec["top1_kept"].values()), rec
        kl, top1 = independent_check(lite0, _open_rgb(src / rec["path"]), _open_rgb(dst / rec["path"]))
        assert top1 and kl <= TAU + 1e-3


@pytest.mark.slow
@pytest.mark.needs_data
def test_original_jpeg_kept_when_no_smaller_rung_holds(tmp_path: Path, dev_data: Path) -> None:
    """max_kl=0: no re-encoding holds.  A JPEG keeps its own bytes (smaller than the top rung, q100); a PNG
    gets the top rung; the summary and report count both."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    photos = sorted(dev_data.glob("*.JPEG"))[:2]
    for p in photos:
        _put(src, p.name, p.read_bytes())
    with Image.open(photos[0]) as im:
        _put(src, "low_quality.jpg", _jpeg(im.convert("RGB"), quality=40))
    _put(src, "chelsea.png", _png(_small(skimage_data.chelsea())))
    rc = RateControl(("efficientnet_lite0",), Criterion(0.0), ladder="standard:90,100")
    summary = dnnjpeg.recompress(src, dst, rate_control=rc, workers=0, report=tmp_path / "r.json")
    assert summary.exit_code == 0
    records = file_records(dst)
    jpegs = [p.name for p in photos] + ["low_quality.jpg"]
    for rel in jpegs:
        rec = records[rel]
        assert rec["kept_original"] and rec["status"] == "kept" and rec["rung"] is None, rec
        assert rec["reason"] == "no rung smaller than the original JPEG holds"
        assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    png = records["chelsea.png"]
    assert (png["status"], png["rung"], png["held"], png["kept_original"]) == ("ok", "q100", False, False)
    assert png["kl"]["efficientnet_lite0"] > 0
    totals = json.loads((tmp_path / "r.json").read_text())["summary"]["rate_control"]
    assert (totals["held"], totals["top_rung"], totals["kept_original"]) == (0, 1, 3)
    assert totals["rungs"]["original"] == 3 and totals["rungs"]["q100"] == 1
    assert "0 held, 1 with no rung holding (top rung written), 3 kept the original JPEG" in summary.format()


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("small") / "src"
    _put(src, "a/chelsea.png", _png(_small(skimage_data.chelsea(), 128)))
    _put(src, "a/coffee.jpg", _jpeg(_small(skimage_data.coffee(), 128), quality=95))
    _put(src, "b/rocket.png", _png(_small(skimage_data.rocket(), 128)))
    _put(src, "b/astronaut.jpg", _jpeg(_small(skimage_data.astronaut(), 128), quality=90))
    return src


SMALL_RC = RateControl(("efficientnet_lite0",), Criterion(TAU), ladder="standard:20-95:15")


def _choices(dst: Path, name: str = MANIFEST) -> dict[str, tuple]:
    return {p: (r["rung"], r["held"], r["kept_original"]) for p, r in file_records(dst, name).items()}


@pytest.mark.slow
def test_shards_together_cover_the_folder(small_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    for i in (0, 1):
        dnnjpeg.recompress(small_tree, dst, rate_control=SMALL_RC, workers=0, shard=f"{i}/2")
    shards = [set(file_records(dst, f".dnnjpeg-recompress.shard-{i}-of-2.jsonl")) for i in (0, 1)]
    assert shards[0] | shards[1] == {"a/chelsea.png", "a/coffee.jpg", "b/rocket.png", "b/astronaut.jpg"}
    assert not shards[0] & shards[1]
    whole = dnnjpeg.recompress(small_tree, dst, rate_control=SMALL_RC, workers=0)
    assert whole.processed == 0 and whole.resumed == 4 and whole.rate_control.images == 4


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_choices(small_tree: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    local = dnnjpeg.recompress(small_tree, tmp_path / "local", rate_control=SMALL_RC, workers=0, batch_size=4)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = dnnjpeg.recompress(small_tree, tmp_path / "dask", rate_control=SMALL_RC,
                                    scheduler=cluster.scheduler_address, batch_size=4)  # fmt: skip
    assert remote.backend == "dask" and remote.exit_code == local.exit_code == 0
    assert _choices(tmp_path / "dask") == _choices(tmp_path / "local")
    for rel in _choices(tmp_path / "local"):
        assert (tmp_path / "dask" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel
    assert remote.rate_control.evaluations == local.rate_control.evaluations


# -- options: no model is loaded ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table", "resnet50", "--max-kl", "0.05"], "--max-kl needs --model"),
        (["--table", "resnet50", "--ladder", "trellis"], "--ladder needs --model"),
        ([], "give --table NAME, or --model NAME --max-kl TAU"),
        (["--model", "efficientnet_lite0"], "--model needs --max-kl TAU"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--table", "resnet50"],
         "--table cannot be used with --model: the ladder replaces the table"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--quality", "50"],
         "--quality cannot be used with --model"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--writer", "trellis"], "use --ladder trellis"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--progressive"], "use --ladder mozjpeg"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--optimize"], "--optimize cannot be used with --model"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--subsampling", "4:4:4"],
         "--subsampling cannot be used with --model"),
        (["--model", "no_such_net", "--max-kl", "0.05"], "--model: unknown model 'no_such_net'"),
        (["--model", "efficientnet_lite0", "--max-kl", "-1"], "--max-kl must be a finite number >= 0"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--top-k", "0"], "--top-k must be None or an integer"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--ladder", "nosuch"], "--ladder: unknown ladder"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--device", "nodevice"],
         "--device 'nodevice' is not a torch device"),
        (["--model", "efficientnet_lite0", "--max-kl", "0.05", "--min-quality", "99"],
         "99 leaves no rung of ladder 'trellis'"),
    ],
)  # fmt: skip
def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    src = tmp_path / "src"
    _put(src, "a.png", _png(Image.new("RGB", (16, 16))))
    assert main(["recompress", str(src), str(tmp_path / "dst"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnjpeg recompress: error: ") and message in err, err
    assert not (tmp_path / "dst").exists()


def test_cli_builds_the_rate_control() -> None:
    from dnnjpeg.cli import build_parser
    from dnnjpeg.cli.recompress import rate_control_from_args

    args = build_parser().parse_args(
        ["recompress", "s", "d", "--model", "efficientnet_lite0", "--model", "timm:resnet18", "--max-kl", "0.02",
         "--keep-top1", "--top-k", "5", "--ladder", "trellis:30-90:10", "--min-quality", "50", "--device", "cpu"]
    )  # fmt: skip
    assert isinstance(args, argparse.Namespace)
    assert rate_control_from_args(args) == RateControl(
        ("efficientnet_lite0", "timm:resnet18"), Criterion(0.02, keep_top1=True, top_k=5), "trellis:30-90:10", 50,
        "cpu",
    )  # fmt: skip


def test_api_errors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _put(src, "a.png", _png(Image.new("RGB", (16, 16))))
    rc = RateControl(("efficientnet_lite0",), Criterion(TAU))
    with pytest.raises(DnnjpegError, match="table and rate_control exclude each other"):
        dnnjpeg.recompress(src, tmp_path / "dst", "resnet50", rate_control=rc)
    with pytest.raises(DnnjpegError, match="trellis cannot be combined with rate_control"):
        dnnjpeg.recompress(src, tmp_path / "dst", rate_control=rc, trellis=True)
    with pytest.raises(DnnjpegError, match="rate_control must be a dnnjpeg.ratecontrol.RateControl"):
        dnnjpeg.recompress(src, tmp_path / "dst", rate_control={"max_kl": 0.05})
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize(
    ("spec", "package"), [("standard:50", "PIL"), ("mozjpeg:50", "jpeglib"), ("trellis:50", "jpeglib"),
                          ("jpegli:50", "pyjpegli")]
)  # fmt: skip
def test_metadata_goes_in_front_of_every_ladders_bytes(spec: str, package: str) -> None:
    """What the worker does to a chosen rung: the source's metadata segments, the encoder's coded pixels."""
    from dnnjpeg.batch.worker import Options, _decoded, with_metadata
    from dnnjpeg.ratecontrol import get_ladder

    pytest.importorskip(package)
    data = _jpeg(_small(skimage_data.astronaut(), 64), quality=95, exif=_exif(), icc_profile=ICC, xmp=XMP,
                 comment=b"a comment", dpi=(300, 300))  # fmt: skip
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        record: dict = {"format": "JPEG"}
        dec = _decoded(im, data, None, Options(encode=dnnjpeg.EncodeOptions(dnnjpeg.QTable([1] * 64))), record)
    coded = get_ladder(spec)[0].encode(dec.image)
    out = with_metadata(coded, dec.metadata)
    with Image.open(io.BytesIO(out)) as got, Image.open(io.BytesIO(coded)) as bare:
        assert got.getexif()[0x0112] == 6 and got.getexif()[0x010F] == "dnnjpeg-test-camera"
        assert (got.info["icc_profile"], got.info["xmp"], got.info["comment"]) == (ICC, XMP, b"a comment")
        assert got.info["dpi"] == (300, 300)
        assert np.array_equal(np.asarray(got), np.asarray(bare))  # the same pixels, decoded the same way
        assert np.abs(np.asarray(got.convert("RGB"), float) - np.asarray(dec.image, float)).mean() < 12


def test_encode_for_model_is_exported() -> None:
    from dnnjpeg import ratecontrol

    assert dnnjpeg.encode_for_model is ratecontrol.encode_for_model
    assert "encode_for_model" in dnnjpeg.__all__
