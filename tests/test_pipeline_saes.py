"""Choosing the L1 coefficient the analysed SAEs use: the stated rule, and the scan that trains only what it needs."""

import itertools

import pandas as pd
import pytest

from tdsae.pipeline import saes
from tdsae.pipeline.saes import chosen_l1
from tdsae.presets import resolve_settings
from tdsae.sae.sweep import L1_GRID, choose_l1


def sweep_of(mean_ev: dict) -> pd.DataFrame:
    """A sweep with two layers per coefficient whose explained variances average to mean_ev[l1]."""
    return pd.DataFrame([{"l1": l1, "layer": layer, "explained_variance": ev + (0.01 if layer == 1 else -0.01)}
                         for l1, ev in mean_ev.items() for layer in (1, 2)])


def test_choose_l1_takes_the_largest_coefficient_that_keeps_the_variance():
    assert choose_l1(sweep_of({0.3: 0.99, 1.0: 0.95, 3.0: 0.91, 5.0: 0.85}), 0.9) == 3.0
    # not monotone: a larger coefficient that passes wins over a smaller one that fails
    assert choose_l1(sweep_of({0.3: 0.99, 1.0: 0.80, 3.0: 0.92, 5.0: 0.85}), 0.9) == 3.0
    assert choose_l1(sweep_of({0.3: 0.5, 1.0: 0.4}), 0.9) == 0.3  # none passes: the densest
    assert choose_l1(sweep_of({0.3: 0.99, 1.0: 0.95}), 0.9) == 1.0


@pytest.mark.parametrize("shape", ["falling", "bumpy", "none_pass", "all_pass"])
def test_the_scan_chooses_what_the_whole_sweep_would(monkeypatch, shape):
    values = {"falling": [0.999, 0.99, 0.97, 0.95, 0.93, 0.91, 0.88, 0.85],
              "bumpy": [0.999, 0.92, 0.85, 0.93, 0.80, 0.95, 0.89, 0.70],
              "none_pass": [0.8] * 8, "all_pass": [0.95] * 8}[shape]
    full = sweep_of(dict(zip(L1_GRID, values)))
    trained = []

    def rows(settings, task_name, model, played_by, l1, store):
        trained.append(l1)
        return full[full.l1 == l1].reset_index(drop=True)

    monkeypatch.setattr(saes, "_sweep_rows", rows)
    settings = resolve_settings("tiny", sae_min_explained_variance=0.9)
    assert chosen_l1(settings, "twostep") == choose_l1(full, 0.9)
    expected = list(itertools.takewhile(lambda l1: l1 >= choose_l1(full, 0.9), sorted(L1_GRID, reverse=True)))
    assert trained == (expected if shape != "none_pass" else sorted(L1_GRID, reverse=True))


@pytest.mark.parametrize("n_rows,limit,expected", [
    (12_000, 18_000, 9_600),  # a 100-experiment store under the paper's 18,000: a fifth is kept back
    (12_000, 6_000, 6_000),   # tiny's limit already leaves half out
    (4_000, 18_000, 3_000),   # at least MIN_HELD_OUT rows are kept back
    (1_500, 18_000, 1_500),   # too small to spare them: trained on whole
])
def test_an_sae_always_leaves_rows_it_never_saw_to_be_scored_on(n_rows, limit, expected):
    import numpy as np

    rows = saes.training_rows(n_rows, limit, seed=0)
    assert len(rows) == expected and len(np.unique(rows)) == expected and rows.max() < n_rows
    held_out = n_rows - len(rows)
    assert held_out == 0 or held_out >= max(saes.MIN_HELD_OUT, n_rows // 5)
    assert np.array_equal(rows, saes.training_rows(n_rows, limit, seed=0))
    if expected < n_rows:
        assert not np.array_equal(rows, saes.training_rows(n_rows, limit, seed=1))
