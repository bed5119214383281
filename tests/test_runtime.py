"""dnnjpeg.runtime: glibc allocator tuning for CPU inference, checked by page faults in fresh processes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from dnnjpeg.evaluation.runtime import tune_allocator

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only"
)

# Allocates and frees three 8 MB buffers per round (like a convnet batch's activations) and counts
# the minor page faults of the last rounds: memory handed back to the kernel faults in again.
_PROBE = r"""
import json, resource, sys
import numpy as np
import dnnjpeg.evaluation.runtime as rt
applied = rt.tune_allocator() if sys.argv[1] == "tune" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def one_round():
    a, b, c = (np.ones(1 << 20) for _ in range(3))  # 3 x 8 MB, touched
    del a, b, c
for _ in range(3):
    one_round()
before = faults()
for _ in range(10):
    one_round()
print(json.dumps({"applied": applied, "settings": rt.allocator_settings(), "faults": (faults() - before) / 10}))
"""


def _probe(mode: str, **env: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@glibc_only
def test_tuned_allocator_keeps_freed_buffers_in_the_heap():
    default = _probe("default")
    tuned = _probe("tune")
    assert tuned["applied"] is True
    assert tuned["settings"] == {"mmap_threshold": 128 << 20, "trim_threshold": 512 << 20}
    # 24 MB per round is ~6000 pages; the default allocator returns (most of) them every round
    assert default["faults"] > 500, default
    assert tuned["faults"] < default["faults"] / 5, (tuned, default)


def test_env_var_disables_it():
    out = _probe("tune", DNNJPEG_TUNE_MALLOC="0")
    assert out["applied"] is False and out["settings"] == {}


@pytest.mark.parametrize(
    "kwargs",
    [{"mmap_threshold": 0}, {"trim_threshold": -1}, {"mmap_threshold": 1.5}, {"mmap_threshold": True},
     {"mmap_threshold": 64 << 20, "trim_threshold": 1 << 20}],
)
def test_bad_thresholds_raise(kwargs):
    with pytest.raises(ValueError, match="threshold"):
        tune_allocator(**kwargs)


@glibc_only
def test_cpu_evaluator_tunes_its_process(tmp_path):
    code = (
        "import json, dnnjpeg.evaluation.runtime as rt\n"
        "from dnnjpeg.evaluation.evaluate import Evaluator\n"
        "from dnnjpeg.testing import make_image_folder, tiny_classifier\n"
        f"folder = make_image_folder({str(tmp_path / 'data')!r}, n=4)\n"
        "before = rt.allocator_settings()\n"
        "ev = Evaluator(tiny_classifier(), folder, device='cpu', cache=False, workers=1)\n"
        "ev.evaluate(50)\n"
        "print(json.dumps([before, rt.allocator_settings()]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert before == {} and after["mmap_threshold"] == 128 << 20
