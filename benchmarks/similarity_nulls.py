"""The shuffled-pairing nulls of chapter 12: svcca_null and rsa_null against the generic permutation_null.

Usage: python benchmarks/similarity_nulls.py
Writes benchmarks/results/similarity_nulls.json, one entry per kind of machine.

The size is the organism's: 512 paired decoder rows of 128 dimensions (an SAE of expansion 4), 200 shuffles
(chapter 12 draws 1,000; the ratio does not depend on the count). Both sides draw the same shuffles in the same
order, so their null distributions must agree to 1e-9 (checked here as in tests/test_latents_similarity.py).
Target: the fast nulls at least 10x faster than the generic one, measured in the same run (each generic
shuffle repeats two SVDs and two QR decompositions of [512 x 128]; a fast SVCCA shuffle keeps one SVD of the
[k x k] cross product of the kept components, a fast RSA shuffle one gather and one dot product).
"""

import time
from pathlib import Path

import numpy as np

from tdsae.artifacts import write_result_by_machine
from tdsae.latents.similarity import permutation_null, rsa, rsa_null, svcca, svcca_null

OUT = Path(__file__).parent / "results" / "similarity_nulls.json"
N_PAIRS, D, N_PERMUTATIONS, SEED = 512, 128, 200, 0
TARGET = 10.0


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def main() -> dict:
    rng = np.random.default_rng(SEED)
    a = rng.normal(size=(N_PAIRS, D))
    b = a @ np.linalg.qr(rng.normal(size=(D, D)))[0] + rng.normal(0, 1.0, (N_PAIRS, D))
    cases = {
        "svcca (intended rule)": (lambda: svcca_null(a, b, "intended", N_PERMUTATIONS, SEED),
                                  lambda: permutation_null(lambda x, y: svcca(x, y, "intended"), a, b, N_PERMUTATIONS,
                                                           SEED)),
        "rsa": (lambda: rsa_null(a, b, N_PERMUTATIONS, SEED), lambda: permutation_null(rsa, a, b, N_PERMUTATIONS, SEED)),
    }
    result = {"n_pairs": N_PAIRS, "dimensions": D, "n_permutations": N_PERMUTATIONS, "target_speedup": TARGET,
              "cases": {}}
    for name, (fast, generic) in cases.items():
        fast_value, fast_s = timed(fast)
        generic_value, generic_s = timed(generic)
        agree = all(abs(fast_value[k] - generic_value[k]) < 1e-9 for k in generic_value)
        result["cases"][name] = {"fast_s": fast_s, "generic_s": generic_s, "speedup": generic_s / fast_s,
                                 "same_null": agree, "met": agree and generic_s / fast_s >= TARGET}
        print(f"{name}: fast {fast_s:.2f} s, generic {generic_s:.2f} s, {generic_s / fast_s:.1f}x, same null: {agree}")
    write_result_by_machine(OUT, result)
    return result


if __name__ == "__main__":
    main()
