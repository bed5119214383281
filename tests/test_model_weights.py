"""``--weights PATH`` / ``get(name, weights=PATH)``: torchvision:/timm: weights from a local file,
and the error that says so when the download fails (this machine is offline; the test makes sure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("torchvision")

from dnnjpeg.cli import build_parser, main
from dnnjpeg.evaluation.models import ModelError, get
from dnnjpeg.testing import make_image_folder

MODEL_COMMANDS = ["evaluate", "curve", "validate", "tune", "family", "crossval", "compare-families"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNNJPEG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)


@pytest.mark.slow
def test_torchvision_state_dict_and_prefixed_checkpoint_give_the_same_logits(tmp_path: Path, batch: np.ndarray,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNNJPEG_PRETRAINED", "0")
    ref = get("torchvision:resnet18", device="cpu")
    state = ref.module.state_dict()
    plain, checkpoint = tmp_path / "resnet18.pt", tmp_path / "checkpoint.pth.tar"
    torch.save(state, plain)
    torch.save({"epoch": 90, "arch": "resnet18", "best_acc1": 69.8,
                "state_dict": {f"module.{k}": v for k, v in state.items()}}, checkpoint)
    monkeypatch.setenv("DNNJPEG_PRETRAINED", "1")  # a weights file needs no download, whatever this says
    expected = ref(batch)
    for path in (plain, checkpoint):
        clf = get("torchvision:resnet18", device="cpu", weights=path)
        assert torch.equal(clf(batch), expected)
        assert clf.fingerprint == ref.fingerprint  # the cache key hashes the weights, not the file name
        assert clf.config["weights"] == str(path) and clf.config["pretrained"] is False


def test_timm_model_from_checkpoints(tmp_path: Path, batch: np.ndarray) -> None:
    ref = get("timm:test_resnet", device="cpu", pretrained=False)
    state = ref.module.state_dict()
    files = {"model.pth": {"model": state, "epoch": 3},
             "ddp.pth.tar": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "best_acc1": 1.0},
             "compiled.pt": {f"_orig_mod.{k}": v for k, v in state.items()}}
    expected = ref(batch)
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        clf = get("timm:test_resnet", device="cpu", weights=tmp_path / name)
        assert torch.equal(clf(batch), expected), name
        assert clf.fingerprint == ref.fingerprint, name


def test_files_that_do_not_fit_name_the_file(tmp_path: Path) -> None:
    small = get("timm:test_resnet", device="cpu", pretrained=False)
    wrong = tmp_path / "test_resnet.pt"
    torch.save(small.module.state_dict(), wrong)
    with pytest.raises(ModelError) as info:
        get("torchvision:resnet18", device="cpu", weights=wrong)
    assert str(info.value).startswith(f"{wrong}: the weights do not fit torchvision:resnet18: ")
    assert "tensors are missing (first: 'conv1.weight')" in str(info.value)
    assert "have another shape (first: 'bn1.weight' is (32,) in the file, (64,) in the model)" in str(info.value)
    torch.save({"epoch": 3}, tmp_path / "no_weights.pt")
    with pytest.raises(ModelError, match=r"no_weights.pt: not a state dict \(a dict of tensors\) nor a checkpoint"):
        get("timm:test_resnet", device="cpu", weights=tmp_path / "no_weights.pt")
    with pytest.raises(ModelError, match=r"missing.pt: no such weights file"):
        get("timm:test_resnet", device="cpu", weights=tmp_path / "missing.pt")
    with pytest.raises(ModelError, match="efficientnet_lite0 loads its own weights"):
        get("efficientnet_lite0", weights=wrong)


def test_every_model_command_takes_weights_and_records_it() -> None:
    parser = build_parser()
    needed = {"evaluate": ["--standard", "50"], "validate": ["--table", "resnet50"], "curve": ["--out", "c.json"],
              "tune": ["--method", "sorted", "--budget", "1", "--out", "t.json"], "family": ["--name", "x", "--out",
              "x.json"], "crossval": ["--methods", "sorted"], "compare-families": ["resnet50", "resnet50"]}
    for command in MODEL_COMMANDS:
        argv = [command, "--model", "timm:test_resnet", "--data", "d", "--weights", "w.pt", *needed[command]]
        assert parser.parse_args(argv).weights == "w.pt", command
    from dnnjpeg.cli import family, tune, validate

    assert "--weights w.pt" in tune._command(parser.parse_args(
        ["tune", "--model", "timm:test_resnet", "--data", "d", "--weights", "w.pt", *needed["tune"]]), "t.journal")
    assert "--weights w.pt" in family._command(parser.parse_args(
        ["family", "--model", "timm:test_resnet", "--data", "d", "--weights", "w.pt", *needed["family"]]))
    assert "--weights w.pt" in validate._command_line(parser.parse_args(
        ["validate", "--model", "timm:test_resnet", "--data", "d", "--weights", "w.pt", *needed["validate"]]))


@pytest.mark.slow
def test_evaluate_cli_with_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_image_folder(tmp_path / "d", n=2)
    weights = tmp_path / "w.pt"
    torch.save(get("timm:test_resnet", device="cpu", pretrained=False).module.state_dict(), weights)
    argv = ["evaluate", "--model", "timm:test_resnet", "--data", str(folder), "--standard", "50", "--device", "cpu",
            "--json"]
    assert main([*argv, "--weights", str(weights)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*argv, "--weights", str(weights), "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["ce"] == first["ce"]  # the same weights, not random ones
    assert main([*argv, "--model", "torchvision:resnet18", "--weights", str(weights)]) == 2
    assert capsys.readouterr().err.startswith(
        f"dnnjpeg evaluate: error: {weights}: the weights do not fit torchvision:resnet18: ")


_OFFLINE = """
import sys
from dnnjpeg.cli import main
for model in ("torchvision:resnet18", "timm:test_resnet"):
    code = main(["evaluate", "--model", model, "--data", sys.argv[1], "--standard", "50", "--device", "cpu"])
    print("exit", code, file=sys.stderr)
"""


@pytest.mark.slow
def test_offline_download_failure_says_where_to_put_the_weights(tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "d", n=2)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "DNNJPEG_PRETRAINED": "1", "DNNJPEG_CACHE_DIR": str(tmp_path / "cache"),
           # even on a machine with internet access nothing can be downloaded: every request hits a closed port
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    proc = subprocess.run([sys.executable, "-c", _OFFLINE, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dnnjpeg evaluate: error: ")]
    assert [line for line in proc.stderr.splitlines() if line.startswith("exit ")] == ["exit 2", "exit 2"], proc.stderr
    assert len(errors) == 2, proc.stderr
    tv, tm = errors
    assert tv.startswith("dnnjpeg evaluate: error: the weights for torchvision:resnet18 could not be downloaded (")
    assert (f"torchvision looks for them at {tmp_path / 'torch' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'} "
            "(a copy of https://download.pytorch.org/models/resnet18-f37072fd.pth; TORCH_HOME moves the folder)") in tv
    assert tm.startswith("dnnjpeg evaluate: error: the weights for timm:test_resnet could not be downloaded (")
    hf_folder = tmp_path / "hf" / "hub" / "models--timm--test_resnet.r160_in1k"
    assert f"timm looks for them in the Hugging Face cache, {hf_folder} (repository timm/test_resnet.r160_in1k;" in tm
    for line in errors:
        assert line.endswith("; pass --weights PATH (a state dict or checkpoint saved with torch.save)")
    assert not any((tmp_path / "torch").rglob("*.pth")) and not any((tmp_path / "hf").rglob("*.safetensors"))
