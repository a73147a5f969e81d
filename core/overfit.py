"""Overfitting guards for a sweep: the Deflated Sharpe Ratio and the PBO (docs/METRICS.md).

- Probabilistic Sharpe Ratio (Bailey & López de Prado, 2012/2014):
  PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1)/4 SR^2)),
  SR the per-period (not annualised) Sharpe ratio, T the number of returns,
  skew and kurt the returns' skewness and non-excess kurtosis (3 for a normal).
- Deflated Sharpe Ratio (Bailey & López de Prado, 2014): DSR = PSR(SR0) with
  SR0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))),
  the expected largest Sharpe of N trials without skill; gamma = Euler–Mascheroni.
- Probability of Backtest Overfitting by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu, 2017): over every split of S row blocks
  into halves, the in-sample best configuration's out-of-sample rank w = rank/(N+1),
  logit l = ln(w / (1 - w)); PBO = share of splits with l <= 0.

Pure numpy and the standard library (statistics.NormalDist for Phi).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
PBO_MAX = 0.5
DSR_MIN = 0.95
_NORMAL = NormalDist()

PerformanceStatistic = Callable[[np.ndarray], np.ndarray]
"""Maps a (rows x configurations) block of the performance matrix to one score per column."""


@dataclass(frozen=True, slots=True)
class ReturnMoments:
    """Per-period moments of one return series (population skewness and kurtosis)."""

    periods: int
    mean: float
    std: float  # sample standard deviation (ddof 1)
    sharpe: float  # mean / std, per period, risk-free 0
    skewness: float  # E[(r - mean)^3] / sigma^3, sigma the population std
    kurtosis: float  # E[(r - mean)^4] / sigma^4, non-excess (3 for a normal)


def return_moments(returns: Sequence[float]) -> ReturnMoments | None:
    """The moments PSR needs; None under 2 returns or a zero deviation. Refuses NaN/inf."""
    r = np.asarray(returns, dtype=float)
    if not np.isfinite(r).all():
        raise ValueError("returns hold a non-finite value (NaN or inf)")
    if len(r) < 2:
        return None
    std = float(np.std(r, ddof=1))
    if std == 0:
        return None
    centred = r - r.mean()
    sigma = math.sqrt(float(np.mean(centred**2)))
    return ReturnMoments(
        periods=len(r),
        mean=float(r.mean()),
        std=std,
        sharpe=float(r.mean()) / std,
        skewness=float(np.mean(centred**3)) / sigma**3,
        kurtosis=float(np.mean(centred**4)) / sigma**4,
    )


def probabilistic_sharpe(
    sharpe: float, benchmark: float, periods: int, skewness: float, kurtosis: float
) -> float | None:
    """PSR(benchmark): probability that the true per-period Sharpe exceeds the benchmark.

    Returns None when the variance term 1 - skew SR + (kurt - 1)/4 SR^2 is not positive
    (only a two-point return distribution reaches it). Refuses periods < 2 and a
    kurtosis below 1 (an excess kurtosis passed by mistake: give the non-excess value).
    """
    if periods < 2:
        raise ValueError(f"PSR needs at least 2 periods, got {periods}")
    if kurtosis < 1:
        raise ValueError(
            f"kurtosis {kurtosis} < 1 is impossible: pass the non-excess kurtosis (normal = 3)"
        )
    variance_term = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if variance_term <= 0:
        return None
    z = (sharpe - benchmark) * math.sqrt(periods - 1) / math.sqrt(variance_term)
    return _NORMAL.cdf(z)


def probabilistic_sharpe_ratio(returns: Sequence[float], benchmark: float = 0.0) -> float | None:
    """PSR of a return series against a per-period benchmark Sharpe; None if SR is undefined."""
    m = return_moments(returns)
    if m is None:
        return None
    return probabilistic_sharpe(m.sharpe, benchmark, m.periods, m.skewness, m.kurtosis)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected largest of n_trials skill-less Sharpe ratios (same units as V).

    One trial gives 0 (nothing to select from). Refuses n_trials < 1 and V < 0.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if sharpe_variance < 0 or not math.isfinite(sharpe_variance):
        raise ValueError(f"sharpe_variance must be a finite number >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    quantiles = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n_trials) + EULER_GAMMA * (
        _NORMAL.inv_cdf(1 - 1 / (n_trials * math.e))
    )
    return math.sqrt(sharpe_variance) * quantiles


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    """The DSR of the chosen configuration and what went into it (per-period units)."""

    sharpe: float
    periods: int
    skewness: float
    kurtosis: float
    n_trials: int
    sharpe_variance: float  # V[SR_n] across the trials
    benchmark_sharpe: float  # SR0
    dsr: float | None  # PSR(SR0); None when the variance term is not positive


def deflated_sharpe_ratio(
    returns: Sequence[float],
    *,
    trial_sharpes: Sequence[float] | None = None,
    n_trials: int | None = None,
    sharpe_variance: float | None = None,
) -> DeflatedSharpe | None:
    """DSR of the chosen configuration's per-period returns over the trials of the sweep.

    Give either trial_sharpes (every trial's per-period Sharpe, the chosen one included:
    N = their count, V = their sample variance) or both n_trials and sharpe_variance.
    Returns None when the chosen returns have no Sharpe (under 2 returns, zero deviation).
    Refuses a mix of both forms, fewer than 2 trial Sharpes, and non-finite values.
    """
    n, variance = _trials(trial_sharpes, n_trials, sharpe_variance)
    m = return_moments(returns)
    if m is None:
        return None
    sr0 = expected_max_sharpe(n, variance)
    return DeflatedSharpe(
        sharpe=m.sharpe,
        periods=m.periods,
        skewness=m.skewness,
        kurtosis=m.kurtosis,
        n_trials=n,
        sharpe_variance=variance,
        benchmark_sharpe=sr0,
        dsr=probabilistic_sharpe(m.sharpe, sr0, m.periods, m.skewness, m.kurtosis),
    )


def _trials(
    trial_sharpes: Sequence[float] | None, n_trials: int | None, sharpe_variance: float | None
) -> tuple[int, float]:
    if trial_sharpes is not None:
        if n_trials is not None or sharpe_variance is not None:
            raise ValueError("give trial_sharpes, or n_trials with sharpe_variance, not both")
        values = np.asarray(trial_sharpes, dtype=float)
        if len(values) < 2 or not np.isfinite(values).all():
            raise ValueError("trial_sharpes needs at least 2 finite per-period Sharpe ratios")
        return len(values), float(np.var(values, ddof=1))
    if n_trials is None or sharpe_variance is None:
        raise ValueError("give trial_sharpes, or both n_trials and sharpe_variance")
    return n_trials, sharpe_variance


def mean_performance(block: np.ndarray) -> np.ndarray:
    """Column means: the score when cells are per-period returns or per-block results."""
    return block.mean(axis=0)


def sharpe_performance(block: np.ndarray) -> np.ndarray:
    """Column mean / sample std (per-period Sharpe); a column with zero deviation scores 0."""
    std = block.std(axis=0, ddof=1) if len(block) > 1 else np.zeros(block.shape[1])
    return np.divide(block.mean(axis=0), std, out=np.zeros(block.shape[1]), where=std > 0)


@dataclass(frozen=True, slots=True)
class BacktestOverfitting:
    """CSCV result: PBO, the logit distribution and the in-sample vs out-of-sample degradation.

    One entry per combination (in itertools.combinations order of the in-sample blocks).
    """

    pbo: float  # share of combinations with logit <= 0
    blocks: int  # S
    configurations: int  # N
    in_sample_blocks: tuple[tuple[int, ...], ...]
    chosen: tuple[int, ...]  # column index of the in-sample best (ties: the lowest index)
    logits: tuple[float, ...]  # ln(w / (1 - w)), w = out-of-sample rank / (N + 1)
    in_sample: tuple[float, ...]  # the chosen configuration's in-sample score
    out_of_sample: tuple[float, ...]  # its out-of-sample score
    degradation_slope: float | None  # OLS slope of out_of_sample on in_sample; None: no spread
    probability_of_loss: float  # share of combinations whose chosen scores < 0 out of sample


def probability_of_backtest_overfitting(
    performance: np.ndarray | Sequence[Sequence[float]],
    blocks: int,
    statistic: PerformanceStatistic = mean_performance,
) -> BacktestOverfitting:
    """PBO of a T x N matrix (rows: periods or time blocks in order; columns: configurations).

    Rows are cut into `blocks` contiguous blocks (sizes differ by at most one row when S
    does not divide T); each of the C(S, S/2) halves is in-sample once, its complement
    out-of-sample. Out-of-sample ranks: 1 = worst, N = best, ties share their mean rank.
    Refuses an odd or < 2 block count, more blocks than rows, fewer than 2 columns and
    non-finite cells.
    """
    matrix = _checked_matrix(performance, blocks)
    n = matrix.shape[1]
    row_blocks = np.array_split(np.arange(len(matrix)), blocks)
    halves = tuple(combinations(range(blocks), blocks // 2))
    chosen, logits, in_sample, out_of_sample = [], [], [], []
    for half in halves:
        inside = np.concatenate([row_blocks[b] for b in half])
        outside = np.concatenate([row_blocks[b] for b in range(blocks) if b not in half])
        is_scores, oos_scores = statistic(matrix[inside]), statistic(matrix[outside])
        best = int(np.argmax(is_scores))
        w = _rank(oos_scores, best) / (n + 1)
        chosen.append(best)
        logits.append(math.log(w / (1 - w)))
        in_sample.append(float(is_scores[best]))
        out_of_sample.append(float(oos_scores[best]))
    return BacktestOverfitting(
        pbo=sum(1 for x in logits if x <= 0) / len(logits),
        blocks=blocks,
        configurations=n,
        in_sample_blocks=halves,
        chosen=tuple(chosen),
        logits=tuple(logits),
        in_sample=tuple(in_sample),
        out_of_sample=tuple(out_of_sample),
        degradation_slope=_slope(in_sample, out_of_sample),
        probability_of_loss=sum(1 for x in out_of_sample if x < 0) / len(out_of_sample),
    )


def _checked_matrix(performance: np.ndarray | Sequence[Sequence[float]], blocks: int) -> np.ndarray:
    matrix = np.asarray(performance, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"performance must be a T x N matrix, got {matrix.ndim} dimensions")
    rows, columns = matrix.shape
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks (S) must be even and >= 2, got {blocks}")
    if rows < blocks:
        raise ValueError(f"{rows} rows cannot be cut into {blocks} blocks: lower S")
    if columns < 2:
        raise ValueError(f"PBO ranks configurations: need at least 2 columns, got {columns}")
    if not np.isfinite(matrix).all():
        raise ValueError("performance matrix holds a non-finite value (NaN or inf)")
    return matrix


def _rank(scores: np.ndarray, column: int) -> float:
    """1-based rank of scores[column] among scores (1 = worst), ties at their mean rank."""
    value = scores[column]
    below = int((scores < value).sum())
    tied_others = int((scores == value).sum()) - 1
    return 1 + below + tied_others / 2


def _slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    xs, ys = np.asarray(x), np.asarray(y)
    spread = float(((xs - xs.mean()) ** 2).sum())
    if spread == 0:
        return None
    return float(((xs - xs.mean()) * (ys - ys.mean())).sum()) / spread


@dataclass(frozen=True, slots=True)
class OverfitVerdict:
    """What the report prints. luck: True = a guard failed, None = not assessed."""

    luck: bool | None
    sentence: str

    def __str__(self) -> str:
        return self.sentence


def overfit_verdict(
    pbo: float | None, dsr: float | None, *, pbo_max: float = PBO_MAX, dsr_min: float = DSR_MIN
) -> OverfitVerdict:
    """The plain sentence on the best variant: luck when PBO > pbo_max or DSR < dsr_min.

    A guard given as None was not computed (too few trials or periods) and is named as such;
    one failing guard is enough to call the result luck.
    """
    failed, passed, missing = [], [], []
    for name, value, fails, bad, good in (
        ("PBO", pbo, pbo is not None and pbo > pbo_max, f"> {pbo_max:g}", f"<= {pbo_max:g}"),
        ("DSR", dsr, dsr is not None and dsr < dsr_min, f"< {dsr_min:g}", f">= {dsr_min:g}"),
    ):
        if value is None:
            missing.append(f"{name} not computed")
        elif fails:
            failed.append(f"{name} {value:.2f} {bad}")
        else:
            passed.append(f"{name} {value:.2f} {good}")
    if failed:
        return OverfitVerdict(
            True, "the best variant is indistinguishable from luck: " + "; ".join(failed)
        )
    if missing:
        return OverfitVerdict(None, "overfitting not assessed: " + "; ".join(missing + passed))
    return OverfitVerdict(
        False, "the best variant survives the correction for its trials: " + "; ".join(passed)
    )


def guard_formulas(*, pbo_max: float = PBO_MAX, dsr_min: float = DSR_MIN) -> str:
    """The formulas and conventions of the guards, as the sweep report prints them."""
    return (
        "Probabilistic Sharpe Ratio: PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / "
        "sqrt(1 - skew*SR + (kurt - 1)/4 * SR^2)); SR per period (not annualised), "
        "T periods, skew and non-excess kurt of the returns (population moments).\n"
        "Deflated Sharpe Ratio (Bailey & López de Prado, 2014): DSR = PSR(SR0), "
        "SR0 = sqrt(V[SR_n]) * ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), "
        "N trials, V[SR_n] the sample variance of the trials' per-period Sharpes, "
        f"g = {EULER_GAMMA:.4f} (Euler-Mascheroni); the best is luck if DSR < {dsr_min:g}.\n"
        "Probability of Backtest Overfitting (CSCV, Bailey, Borwein, López de Prado & Zhu): "
        "T x N performance matrix cut into S row blocks; for each of the C(S, S/2) "
        "in-sample halves, the in-sample best's out-of-sample rank w = rank/(N + 1) "
        "(1 = worst), logit l = ln(w/(1 - w)); PBO = share of halves with l <= 0; "
        f"the best is luck if PBO > {pbo_max:g}."
    )
