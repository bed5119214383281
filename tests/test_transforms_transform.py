"""dnnjpeg.transforms.DNNJPEG: draws, pass-through, p, reproducibility, validation, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

import dnnjpeg
from dnnjpeg import QTable
from dnnjpeg.families import Family
from dnnjpeg.transforms import DNNJPEG
from dnnjpeg.transforms.functional import dnnjpeg as F_dnnjpeg


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:32, 0:40]
    base = np.stack([xx * 6, yy * 7, 255 - xx * 5], axis=0).astype(np.float64)
    return torch.from_numpy(np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8))


def drawn_qualities(t: DNNJPEG, n: int = 200) -> list[int]:
    return [t.make_params([])["qtable"].meta["quality"] for _ in range(n)]


def test_default_is_resnet50_default_member(image):
    assert torch.equal(DNNJPEG()(image), F_dnnjpeg(image, dnnjpeg.load("resnet50")))


def test_sample_with_boxes_masks_labels_passes_them_through(image):
    img = tv_tensors.Image(image)
    boxes = tv_tensors.BoundingBoxes([[1, 2, 10, 12], [0, 0, 5, 5]], format="XYXY", canvas_size=(32, 40))
    mask = tv_tensors.Mask(torch.randint(0, 2, (32, 40), dtype=torch.uint8))
    label_tensor = torch.tensor([3, 7])
    sample = {"image": img, "boxes": boxes, "masks": mask, "labels": label_tensor, "id": 5}
    out = DNNJPEG("resnet50")(sample)
    assert type(out["image"]) is tv_tensors.Image
    assert torch.equal(out["image"], F_dnnjpeg(image, "resnet50"))
    for key in ("boxes", "masks", "labels", "id"):
        assert out[key] is sample[key]

    out_img, out_boxes, out_label = DNNJPEG("resnet50")(img, boxes, 3)
    assert torch.equal(out_img, out["image"]) and out_boxes is boxes and out_label == 3


def test_pure_tensor_image_with_pure_tensor_label(image):
    """As in torchvision: without an explicit image, the first plain tensor is the image."""
    label = torch.tensor(4)
    out_img, out_label = DNNJPEG("resnet50")((image, label))
    assert torch.equal(out_img, F_dnnjpeg(image, "resnet50")) and out_label is label


def test_pil_in_compose(image):
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    pipeline = v2.Compose([DNNJPEG("resnet50"), v2.PILToTensor()])
    expected = F_dnnjpeg(pil, "resnet50")
    assert torch.equal(pipeline(pil), torch.from_numpy(np.array(expected)).permute(2, 0, 1))


def test_p_zero_returns_input_untouched(image):
    before = image.clone()
    t = DNNJPEG("resnet50", p=0.0)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    assert t(image) is image and torch.equal(image, before)
    assert t(pil) is pil


def test_p_half_applies_sometimes(image):
    torch.manual_seed(0)
    t = DNNJPEG("resnet50", p=0.5)
    compressed = F_dnnjpeg(image, "resnet50")
    outcomes = []
    for _ in range(40):
        out = t(image)
        assert out is image or torch.equal(out, compressed)
        outcomes.append(out is not image)
    assert 5 < sum(outcomes) < 35


def test_quality_range_draws_family_members_inside_it(image):
    t = DNNJPEG("standard", quality=(40, 45))
    torch.manual_seed(1)
    qs = drawn_qualities(t)
    assert set(qs) == set(range(40, 46))
    torch.manual_seed(5)
    params = t.make_params([])
    torch.manual_seed(5)
    assert torch.equal(t(image), F_dnnjpeg(image, params["qtable"]))


def test_quality_range_only_draws_existing_members(tmp_path):
    fam = Family("sparse", "three members", {q: QTable.standard(q) for q in (30, 50, 70)}, 50)
    path = tmp_path / "sparse.json"
    path.write_text(json.dumps(fam.to_dict()))
    torch.manual_seed(0)
    assert set(drawn_qualities(DNNJPEG(str(path), quality=(40, 90)), 60)) == {50, 70}
    with pytest.raises(ValueError, match=r"no member with quality in \[51, 69\].*30, 50, 70"):
        DNNJPEG(path, quality=(51, 69))


def test_table_list_draws_every_entry(image, tmp_path):
    custom = QTable([9] * 64, [30] * 64, subsampling="4:4:4")
    flat_path = tmp_path / "flat.json"
    QTable([40] * 64).to_json(flat_path)
    t = DNNJPEG(["resnet50", custom, str(flat_path)])
    torch.manual_seed(2)
    seen = {t.make_params([])["qtable"] for _ in range(60)}
    assert seen == {dnnjpeg.load("resnet50"), custom, QTable([40] * 64)}
    outs = {DNNJPEG(custom)(image).numpy().tobytes(), DNNJPEG("resnet50")(image).numpy().tobytes()}
    assert len(outs) == 2


def test_same_seed_same_output_different_seed_differs(image):
    t = DNNJPEG(["standard", "resnet50"], quality=None, p=0.9)
    t_range = DNNJPEG("standard", quality=(5, 95))

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [t(image) for _ in range(6)] + [t_range(image) for _ in range(6)]

    a, b, c = run(11), run(11), run(12)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_subsampling_override_applies_to_all_tables(image):
    out = DNNJPEG("resnet50", subsampling="4:4:4")(image)
    assert torch.equal(out, F_dnnjpeg(image, "resnet50", subsampling="4:4:4"))


def test_pickle_round_trip(image):
    t = DNNJPEG(["resnet50", QTable([10] * 64)], quality=None, p=0.7, subsampling="4:2:2")
    t2 = pickle.loads(pickle.dumps(t))
    torch.manual_seed(3)
    a = [t(image) for _ in range(5)]
    torch.manual_seed(3)
    b = [t2(image) for _ in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert repr(t2) == repr(t)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1.5}, "1.5"),
        ({"p": -0.1}, "-0.1"),
        ({"p": True}, "True"),
        ({"p": "0.5"}, "'0.5'"),
        ({"subsampling": "4:1:1"}, "4:1:1"),
        ({"quality": (60, 40)}, r"\(60, 40\)"),
        ({"quality": (1, 2, 3)}, r"\(1, 2, 3\)"),
        ({"quality": 50.5}, "50.5"),
        ({"quality": "50"}, "'50'"),
        ({"table": "no-such-table"}, "no-such-table"),
        ({"table": []}, "empty"),
        ({"table": 42}, "42"),
        ({"table": ["resnet50", 7]}, "7"),
        ({"table": "resnet50", "quality": 90}, "quality 90"),
        ({"table": "resnet50", "quality": (60, 100)}, r"\[60, 100\]"),
        ({"table": QTable([8] * 64), "quality": 50}, "QTable"),
        ({"table": "/no/such/file.json"}, "no/such/file.json"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DNNJPEG(**kwargs)


def test_single_table_file_rejects_quality(tmp_path):
    path = tmp_path / "one.json"
    QTable([8] * 64).to_json(path)
    with pytest.raises(ValueError, match="single table"):
        DNNJPEG(path, quality=50)


def test_bad_image_in_call_is_an_error():
    with pytest.raises(ValueError, match=r"\(4, 8, 8\)"):
        DNNJPEG("resnet50")(torch.zeros((4, 8, 8), dtype=torch.uint8))
