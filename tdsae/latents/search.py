"""The best unit for a target, chosen on one half of the experiments and reported on the other.

Every search for "the best unit" (latent, latent pair or residual dimension) is made on the selection
half and reported on the report half, so the maximum over hundreds of latents cannot flatter itself;
dead units (constant, hence NaN correlations) can never win. Signed targets are searched by |r| and
reported with their sign: a ReLU latent can only fire on one side of zero, so a signed quantity
usually splits into a positive and a negative latent, which best_pair reads together.

Controls, each a row of the same tidy tables (tdsae.latents.profiles): the reward alone; partial
correlations with the reward (and the step within the episode) regressed out of both sides;
shuffled targets; an untrained network of the same architecture reading the same episodes;
reference Q-learners with other learning rates and discounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdsae.stats import bootstrap_interval, correlations, experiment_rows, residualize
from tdsae.validation import check_int, check_seed


@dataclass
class BestUnit:
    """The unit chosen on the selection half and how it does on the report half."""

    unit: int  # column index (latent or residual dimension); -1 if every unit was dead
    r_select: float  # its correlation on the selection half (inflated by the search)
    r_report: float  # its correlation on the report half: the number to believe
    low: float  # 95% bootstrap interval of r_report, resampling report experiments
    high: float
    n_report: int  # rows in the report half
    partner: int = -1  # latent pairs only: the negatively tracking latent subtracted from unit
    scales: tuple = (1.0, 1.0)  # latent pairs only: s.d. of unit and partner on the selection half

    def column(self, units: np.ndarray) -> np.ndarray:
        """The chosen unit's values in units [n, k] (for a pair, unit / s.d. - partner / s.d.)."""
        if self.partner < 0:
            return np.asarray(units, float)[:, self.unit]
        return units[:, self.unit] / self.scales[0] - units[:, self.partner] / self.scales[1]


def best_unit(units: np.ndarray, target: np.ndarray, experiments: np.ndarray, selection: np.ndarray,
              covariates: np.ndarray | None = None, n_boot: int = 200, seed: int = 0) -> BestUnit:
    """Pick the unit with the largest |r| on the selection half, report it on the other half.

    Args: units [n, k]; target [n]; experiments [n] experiment of each row; selection
    [n_experiments] bool from split_experiments; covariates [n, c]: regressed out of units and
    target within each half before correlating (a partial correlation); rows with a NaN target
    are dropped.
    """
    n_boot, seed = check_int(n_boot, "n_boot", 0), check_seed(seed)
    keep = np.isfinite(target)
    units, target, experiments = np.asarray(units, float)[keep], np.asarray(target, float)[keep], experiments[keep]
    covariates = None if covariates is None else np.asarray(covariates, float)[keep]
    halves = []
    for chosen in (True, False):
        rows = selection[experiments] == chosen
        cov = None if covariates is None else covariates[rows]
        halves.append((residualize(units[rows], cov), residualize(target[rows], cov), experiments[rows]))
    (u_sel, y_sel, _), (u_rep, y_rep, e_rep) = halves
    r_sel = correlations(u_sel, y_sel)
    if not np.isfinite(r_sel).any():
        return BestUnit(-1, np.nan, np.nan, np.nan, np.nan, len(y_rep))
    unit = int(np.nanargmax(np.abs(r_sel)))
    column = u_rep[:, unit]
    r_rep = float(correlations(column[:, None], y_rep)[0])
    rows_of = experiment_rows(e_rep)

    def report_r(chosen):
        rows = rows_of(chosen)
        return correlations(column[rows, None], y_rep[rows])[0]

    low, high = bootstrap_interval(report_r, np.unique(e_rep), n_boot, seed)
    return BestUnit(unit, float(r_sel[unit]), r_rep, low, high, len(y_rep))


def best_pair(latents: np.ndarray, target: np.ndarray, experiments: np.ndarray, selection: np.ndarray,
              covariates: np.ndarray | None = None, n_boot: int = 200, seed: int = 0) -> BestUnit:
    """A signed target read by two ReLU latents: the most positively tracking one minus the most
    negatively tracking one (each scaled to unit s.d. on the selection half), both chosen on the
    selection half and reported on the other. A ReLU latent can fire on one side of zero only,
    so this is the fair SAE counterpart of a single signed residual dimension.
    """
    n_boot, seed = check_int(n_boot, "n_boot", 0), check_seed(seed)
    keep = np.isfinite(target)
    latents, target, experiments = np.asarray(latents, float)[keep], np.asarray(target, float)[keep], experiments[keep]
    covariates = None if covariates is None else np.asarray(covariates, float)[keep]
    chosen = selection[experiments]
    cov_sel = None if covariates is None else covariates[chosen]
    r_sel = correlations(residualize(latents[chosen], cov_sel), residualize(target[chosen], cov_sel))
    if np.isfinite(r_sel).sum() < 2 or np.nanmax(r_sel) <= 0 or np.nanmin(r_sel) >= 0:
        return best_unit(latents, target, experiments, selection, covariates, n_boot, seed)
    up, down = int(np.nanargmax(r_sel)), int(np.nanargmin(r_sel))
    scale = latents[chosen][:, [up, down]].std(0)
    pair = latents[:, up] / scale[0] - latents[:, down] / scale[1]
    best = best_unit(pair[:, None], target, experiments, selection, covariates, n_boot, seed)
    return BestUnit(up, best.r_select, best.r_report, best.low, best.high, best.n_report, partner=down,
                    scales=(float(scale[0]), float(scale[1])))
