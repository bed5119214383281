"""EncodeOptions: checked values, the old keywords, and the same bytes through every entry point."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg import EncodeOptions, QTable
from dnnjpeg.batch import RecompressOptions
from dnnjpeg.batch.testing import ICC, XMP, smooth_rgb
from dnnjpeg.cli import main

ORIENTATION = 0x0112


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    dnnjpeg.register()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one JPEG with every kind of metadata (EXIF orientation 6, ICC, XMP, comment, DPI)."""
    folder = tmp_path_factory.mktemp("src")
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    smooth_rgb(96, 72, seed=3).save(
        folder / "a.jpg", "JPEG", quality=95, exif=exif.tobytes(), icc_profile=ICC, xmp=XMP, comment=b"hi",
        dpi=(300, 300),
    )  # fmt: skip
    return folder


def _open(path: Path) -> Image.Image:
    im = Image.open(path)
    im.load()
    return im


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


# (name, options, save's old keywords, recompress's old keywords, compress flags, recompress flags);
# None where an entry point has no old spelling of the setting.
CASES: list[tuple[str, EncodeOptions, Any, Any, Any, Any]] = [
    ("default", EncodeOptions(), {}, {}, ["--table", "standard"], ["--table", "standard"]),
    (
        "coding",
        EncodeOptions("efficientnet_lite0", 40, subsampling="4:4:4", optimize=True, progressive=True),
        {"table": "efficientnet_lite0", "quality": 40, "subsampling": "4:4:4", "optimize": True, "progressive": True},
        {"table": "efficientnet_lite0", "quality": 40, "subsampling": "4:4:4", "optimize": True, "progressive": True},
        ["--table", "efficientnet_lite0", "--quality", "40", "--subsampling", "4:4:4", "--optimize", "--progressive"],
        ["--table", "efficientnet_lite0", "--quality", "40", "--subsampling", "4:4:4", "--optimize", "--progressive"],
    ),
    (
        "trellis",
        EncodeOptions("resnet50", writer="trellis"),
        {"table": "resnet50", "trellis": True},
        {"table": "resnet50", "trellis": True},
        ["--table", "resnet50", "--trellis"],
        ["--table", "resnet50", "--trellis"],
    ),
    (
        "strip",
        EncodeOptions("resnet50", metadata="strip"),
        {"table": "resnet50", "keep_metadata": False},
        None,
        ["--table", "resnet50", "--strip"],
        None,
    ),
    (
        "orientation",
        EncodeOptions("resnet50", metadata="orientation"),
        None,
        {"table": "resnet50", "strip": True},
        None,
        ["--table", "resnet50", "--strip"],
    ),
]


@pytest.mark.parametrize(("name", "options", "save_kw", "recompress_kw", "compress_flags", "recompress_flags"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_every_entry_point_writes_the_same_bytes(
    source: Path, tmp_path: Path, name, options, save_kw, recompress_kw, compress_flags, recompress_flags
) -> None:
    if options.trellis:
        pytest.importorskip("jpeglib")
    src = source / "a.jpg"
    im = _open(src)
    expected = dnnjpeg.encode(im, options=options)
    got: dict[str, bytes] = {}
    buf = io.BytesIO()
    im.save(buf, "DNNJPEG", options=options)
    got["DNNJPEG format, options="] = buf.getvalue()
    out = tmp_path / "save.jpg"
    dnnjpeg.save(im, out, options=options)
    got["save(options=)"] = out.read_bytes()
    if save_kw is not None:
        got["encode(old keywords)"] = dnnjpeg.encode(im, **save_kw)
        buf = io.BytesIO()
        im.save(buf, "DNNJPEG", **save_kw)
        got["DNNJPEG format, old keywords"] = buf.getvalue()
    exit_codes = []
    if compress_flags is not None:
        exit_codes.append(main(["compress", str(src), str(tmp_path / "c.jpg"), *compress_flags]))
        got["dnnjpeg compress"] = (tmp_path / "c.jpg").read_bytes()
    dnnjpeg.recompress(source, tmp_path / "r1", options=options, run_options=RecompressOptions(workers=0))
    got["recompress(options=)"] = (tmp_path / "r1" / "a.jpg").read_bytes()
    if recompress_kw is not None:
        dnnjpeg.recompress(source, tmp_path / "r2", workers=0, **recompress_kw)
        got["recompress(old keywords)"] = (tmp_path / "r2" / "a.jpg").read_bytes()
    if recompress_flags is not None:
        exit_codes.append(main(["recompress", str(source), str(tmp_path / "r3"), "--workers", "0", *recompress_flags]))
        got["dnnjpeg recompress"] = (tmp_path / "r3" / "a.jpg").read_bytes()
    assert set(exit_codes) <= {0}
    assert len(got) >= 5  # encode, format, save, recompress and at least one old spelling or command
    differ = [where for where, data in got.items() if data != expected]
    assert not differ, f"{name}: bytes differ from encode(options=) in {differ}"


@pytest.mark.parametrize("options", [EncodeOptions("resnet50"), EncodeOptions("efficientnet_lite0", 40, "4:4:4"),
                                     EncodeOptions("resnet50", writer="trellis")], ids=["plain", "member", "trellis"])  # fmt: skip
def test_transform_gives_the_pixels_of_the_written_file(source: Path, options: EncodeOptions) -> None:
    torch = pytest.importorskip("torch")
    from dnnjpeg.transforms import DNNJPEG
    from dnnjpeg.transforms.functional import dnnjpeg as dnnjpeg_fn

    if options.trellis:
        pytest.importorskip("jpeglib")
    im = _open(source / "a.jpg")
    expected = _pixels(dnnjpeg.encode(im, options=options))
    assert np.array_equal(np.asarray(DNNJPEG(options=options)(im)), expected)
    assert np.array_equal(np.asarray(dnnjpeg_fn(im, options=options)), expected)
    chw = torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous()
    assert np.array_equal(DNNJPEG(options=options)(chw).permute(1, 2, 0).numpy(), expected)
    assert repr(DNNJPEG(options=options)) == repr(
        DNNJPEG(options.table, options.quality, subsampling=options.subsampling, trellis=options.trellis)
    )


def test_evaluator_writes_tables_as_the_options_say(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.testing import make_image_folder, tiny_classifier

    folder = make_image_folder(tmp_path / "data", n=4)
    qt = dnnjpeg.load("resnet50")

    def evaluator(**kw: Any) -> Evaluator:
        return Evaluator(tiny_classifier(), folder, device="cpu", cache=False, workers=1, **kw)

    opt = evaluator(options=EncodeOptions(optimize=True))
    assert opt.writer == "libjpeg-opt"
    crops = opt.images
    written = [len(dnnjpeg.encode(Image.fromarray(c), options=EncodeOptions(qt, optimize=True))) for c in crops]
    assert opt.sizes(qt).tolist() == written == evaluator(writer="libjpeg-opt").sizes(qt).tolist()
    plain = [len(dnnjpeg.encode(Image.fromarray(c), qt)) for c in crops]
    assert evaluator(options=EncodeOptions()).sizes(qt).tolist() == plain == evaluator().sizes(qt).tolist()
    assert evaluator(options=EncodeOptions()).writer is None
    with pytest.raises(ValueError, match="writer='libjpeg-opt' contradicts options"):
        evaluator(writer="libjpeg-opt", options=EncodeOptions())
    with pytest.raises(ValueError, match="table must be left unset"):
        evaluator(options=EncodeOptions("resnet50"))
    with pytest.raises(ValueError, match="progressive libjpeg"):
        evaluator(options=EncodeOptions(progressive=True))


def test_trellis_options_name_the_evaluator_writer() -> None:
    pytest.importorskip("jpeglib")
    assert EncodeOptions(writer="trellis").encoder_family() == "trellis"
    assert EncodeOptions(writer="trellis", progressive=True).encoder_family() == "mozjpeg"
    assert EncodeOptions(optimize=True).encoder_family() == "libjpeg-opt"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"table": 42}, "42"),
        ({"table": "no-such-table"}, "no-such-table"),
        ({"quality": "50"}, "'50'"),
        ({"quality": 50.5}, "50.5"),
        ({"quality": True}, "True"),
        ({"table": "resnet50", "quality": 90}, "quality 90"),
        ({"subsampling": "4:1:1"}, "'4:1:1'"),
        ({"optimize": "yes"}, "'yes'"),
        ({"progressive": 2}, "2"),
        ({"allow_16bit": None}, "None"),
        ({"writer": "mozjpeg"}, "'mozjpeg'"),
        ({"metadata": "drop"}, "'drop'"),
    ],
)
def test_bad_values_are_value_errors_naming_the_value(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        EncodeOptions(**kwargs)


def test_values_are_normalised_and_the_table_resolved() -> None:
    opts = EncodeOptions("efficientnet_lite0", np.int64(40), optimize=np.bool_(True), progressive=1)
    assert opts.quality == 40 and type(opts.quality) is int
    assert opts.optimize is True and opts.progressive is True
    assert opts.qtable == dnnjpeg.load("efficientnet_lite0", 40)
    table, kwargs = opts.resolve()
    assert table == opts.qtable and "quality" not in kwargs
    assert EncodeOptions("resnet50", subsampling="4:4:4").resolve()[0].subsampling == "4:4:4"
    assert EncodeOptions("resnet50") == EncodeOptions("resnet50")


def test_old_keywords_map_to_the_fields() -> None:
    assert EncodeOptions.from_kwargs(trellis=True).writer == "trellis"
    assert EncodeOptions.from_kwargs(keep_metadata=False).metadata == "strip"
    assert EncodeOptions.from_kwargs(strip=True).metadata == "orientation"
    assert EncodeOptions.from_kwargs(strip=False, keep_metadata=True) == EncodeOptions()
    with pytest.raises(ValueError, match="trellis=True and writer='libjpeg' contradict each other"):
        EncodeOptions.from_kwargs(trellis=True, writer="libjpeg")
    with pytest.raises(ValueError, match="trellis must be True or False, got 'yes'"):
        EncodeOptions.from_kwargs(trellis="yes")
    with pytest.raises(TypeError, match="qualty"):
        EncodeOptions.from_kwargs(qualty=50)


def test_a_keyword_contradicting_options_is_an_error(source: Path, tmp_path: Path) -> None:
    im = _open(source / "a.jpg")
    opts = EncodeOptions("resnet50", optimize=True)
    assert dnnjpeg.encode(im, "resnet50", options=opts, optimize=True) == dnnjpeg.encode(im, options=opts)
    with pytest.raises(ValueError, match="table='standard' contradicts options.table='resnet50'"):
        dnnjpeg.encode(im, "standard", options=opts)
    with pytest.raises(ValueError, match="optimize=False contradicts options.optimize=True"):
        im.save(io.BytesIO(), "DNNJPEG", options=opts, optimize=False)
    with pytest.raises(ValueError, match="trellis=True contradicts options.writer='libjpeg'"):
        dnnjpeg.recompress(source, tmp_path / "d", options=opts, trellis=True)
    with pytest.raises(ValueError, match="workers=2 contradicts run_options.workers=0"):
        dnnjpeg.recompress(source, tmp_path / "d", workers=2, run_options=RecompressOptions(workers=0))
    with pytest.raises(TypeError, match="unexpected keyword argument 'keep_metadata'"):
        dnnjpeg.recompress(source, tmp_path / "d", keep_metadata=False)
    assert not (tmp_path / "d").exists()


def test_transform_argument_contradicting_options() -> None:
    pytest.importorskip("torch")
    from dnnjpeg.transforms import DNNJPEG

    opts = EncodeOptions("efficientnet_lite0", 50)
    assert DNNJPEG("efficientnet_lite0", options=opts).quality == 50
    with pytest.raises(ValueError, match="quality=\\(40, 60\\) contradicts options.quality=50"):
        DNNJPEG(quality=(40, 60), options=opts)
    with pytest.raises(ValueError, match="trellis=True contradicts options.writer"):
        DNNJPEG(trellis=True, options=opts)


def test_recompress_options_objects_resume_a_keyword_run(source: Path, tmp_path: Path) -> None:
    """The two spellings are one setting: the manifest fingerprint is the same, so a rerun resumes."""
    first = dnnjpeg.recompress(source, tmp_path / "d", "resnet50", workers=0, strip=True, keep_smaller=True)
    again = dnnjpeg.recompress(
        source, tmp_path / "d", options=EncodeOptions("resnet50", metadata="orientation"),
        run_options=RecompressOptions(workers=0, keep_smaller=True),
    )  # fmt: skip
    assert (first.processed, first.resumed) == (1, 0)
    assert (again.processed, again.resumed) == (0, 1)
    fully = dnnjpeg.recompress(source, tmp_path / "e", options=EncodeOptions("resnet50", metadata="strip"), workers=0)
    with Image.open(tmp_path / "e" / "a.jpg") as stripped, Image.open(tmp_path / "d" / "a.jpg") as oriented:
        assert fully.ok == 1 and ORIENTATION not in stripped.getexif()
        assert oriented.getexif()[ORIENTATION] == 6 and "icc_profile" not in oriented.info


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extension": "jpg"}, "extension rule 'jpg'"),
        ({"in_place": True, "extension": "replace"}, "--extension must be 'keep'"),
        ({"shard": "3/2"}, "--shard 3/2"),
        ({"max_pixels": 0}, "positive number of pixels"),
        ({"workers": -1}, "workers must be >= 0"),
    ],
)
def test_recompress_options_are_checked_when_made(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(dnnjpeg.DnnjpegError, match=message):
        RecompressOptions(**kwargs)


def test_options_pickle_and_compare() -> None:
    import pickle

    opts = EncodeOptions(QTable([8] * 64), optimize=True)
    back = pickle.loads(pickle.dumps(opts))
    assert back == opts and back.qtable == opts.qtable
    assert opts.with_plain_table().qtable.meta == {}
