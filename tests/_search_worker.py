"""Helper process for the search resume and PostgreSQL tests (not a test module).

Usage: python tests/_search_worker.py METHOD BUDGET STORAGE STUDY [WORKERS]

Tunes with real libjpeg round trips of three scikit-image photos scored by PSNR.
"""

from __future__ import annotations

import sys

from dnnjpeg.search import tune
from dnnjpeg.search.psnr import PSNREvaluator

CURVE = (20, 40, 60, 80)
SEED = 5


def evaluator() -> PSNREvaluator:
    from skimage import data

    return PSNREvaluator([data.astronaut(), data.chelsea(), data.coffee()], "skimage")


def run(method: str, budget: int, storage: str | None, study: str | None, workers: int = 1):
    return tune(evaluator(), method, budget=budget, objective="fitness-ce", seed=SEED, storage=storage,
                study_name=study, workers=workers, curve_qualities=CURVE)


if __name__ == "__main__":
    method, budget, storage, study = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    workers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    res = run(method, budget, storage, study, workers)
    print(f"done {res.n_complete}")
