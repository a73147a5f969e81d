"""DSR and PBO against published and hand-computed values on small synthetic inputs."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from core.overfit import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    guard_formulas,
    overfit_verdict,
    probabilistic_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
    sharpe_performance,
)

LN3 = math.log(3)


# -- Probabilistic and Deflated Sharpe Ratio ---------------------------------------


def test_moments_of_a_hand_computed_series():
    # r = 0.04, 0, 0, 0: mean 0.01, centred 0.03, -0.01 x3
    # sample var (9 + 3) e-4 / 3 = 4e-4 -> std 0.02 -> SR 0.5
    # population var 3e-4; m3 = (27 - 3) e-6 / 4 = 6e-6 -> skew 6e-6 / 3e-4^1.5 = 2/sqrt(3)
    # m4 = (81 + 3) e-8 / 4 = 21e-8 -> kurt 21e-8 / 9e-8 = 7/3
    m = return_moments([0.04, 0.0, 0.0, 0.0])
    assert m is not None
    assert (m.periods, m.mean, m.std) == (4, pytest.approx(0.01), pytest.approx(0.02))
    assert m.sharpe == pytest.approx(0.5)
    assert m.skewness == pytest.approx(2 / math.sqrt(3))
    assert m.kurtosis == pytest.approx(7 / 3)


def test_psr_of_a_hand_computed_series():
    # variance term 1 - (2/sqrt 3)(0.5) + (7/3 - 1)/4 (0.25) = 1 - 0.577350 + 0.083333 = 0.505983
    # z = 0.5 sqrt(3) / sqrt(0.505983) = 0.866025 / 0.711325 = 1.217482; Phi(z) = 0.888290
    assert NormalDist().cdf(1.217482) == pytest.approx(0.888290, abs=1e-6)
    assert probabilistic_sharpe_ratio([0.04, 0.0, 0.0, 0.0]) == pytest.approx(0.888290, abs=1e-6)


def test_dsr_reproduces_the_papers_worked_example():
    # Bailey & López de Prado (2014), numerical example: N = 100 trials, V[SR_n] = 1/2
    # annualised (1/2 / 250 per day), SR 2.5 annualised over T = 1250 daily returns,
    # skew -3, kurt 10: the paper gives SR0 = 0.1132 (daily) and DSR = 0.9004.
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_dsr_from_the_list_of_trial_sharpes():
    # trials 0.5, 0.1, -0.2, 0.2: mean 0.15, sample var (0.1225 + 0.0025) x 2 / 3 = 0.083333
    # SR0 = sqrt(0.083333) (0.422784 x Phi^-1(0.75) + 0.577216 x Phi^-1(1 - 1/(4e)))
    #     = 0.288675 (0.422784 x 0.674490 + 0.577216 x 1.328722) = 0.303722
    # z = (0.5 - 0.303722) sqrt(3) / sqrt(0.505983) = 0.477931; Phi(z) = 0.683650
    result = deflated_sharpe_ratio([0.04, 0.0, 0.0, 0.0], trial_sharpes=[0.5, 0.1, -0.2, 0.2])
    assert result is not None
    assert result.n_trials == 4
    assert result.sharpe_variance == pytest.approx(0.25 / 3)
    assert result.benchmark_sharpe == pytest.approx(0.303722, abs=1e-6)
    assert result.dsr == pytest.approx(0.683650, abs=1e-6)


def test_expected_max_sharpe_is_close_to_the_simulated_largest_of_n_normals():
    # the closed form approximates E[max of N standard normals]; within 4 % for N >= 10
    rng = np.random.default_rng(11)
    for n in (10, 100):
        simulated = rng.normal(size=(20_000, n)).max(axis=1).mean()  # MC error ~0.003
        assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.04)
        assert expected_max_sharpe(n, 4.0) == pytest.approx(2 * simulated, rel=0.04)


def test_one_trial_is_not_deflated():
    assert expected_max_sharpe(1, 0.3) == 0.0
    result = deflated_sharpe_ratio([0.04, 0.0, 0.0, 0.0], n_trials=1, sharpe_variance=0.3)
    assert result is not None and result.dsr == pytest.approx(0.888290, abs=1e-6)  # = PSR(0)


def test_undefined_sharpe_gives_none():
    assert return_moments([0.01, 0.01, 0.01]) is None  # zero deviation
    assert probabilistic_sharpe_ratio([0.01]) is None
    assert deflated_sharpe_ratio([0.0, 0.0], n_trials=5, sharpe_variance=0.1) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: expected_max_sharpe(0, 0.1), "n_trials must be >= 1"),
        (lambda: expected_max_sharpe(5, -0.1), "sharpe_variance must be"),
        (lambda: probabilistic_sharpe(0.1, 0, 100, 0.0, 0.0), "non-excess kurtosis"),
        (lambda: probabilistic_sharpe(0.1, 0, 1, 0.0, 3.0), "at least 2 periods"),
        (lambda: deflated_sharpe_ratio([0.1, 0.2], n_trials=3), "both n_trials"),
        (
            lambda: deflated_sharpe_ratio([0.1, 0.2], trial_sharpes=[0.1, 0.2], n_trials=3),
            "not both",
        ),
        (lambda: deflated_sharpe_ratio([0.1, 0.2], trial_sharpes=[0.1]), "at least 2"),
        (lambda: return_moments([0.1, math.nan]), "non-finite"),
    ],
)
def test_bad_dsr_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- Probability of Backtest Overfitting --------------------------------------------


def test_pbo_is_zero_when_one_configuration_wins_every_block():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(16, 4))
    matrix[:, 2] = matrix.max(axis=1) + 1.0
    result = probability_of_backtest_overfitting(matrix, blocks=8)
    assert result.pbo == 0.0
    assert len(result.logits) == 70  # C(8, 4)
    assert set(result.chosen) == {2}
    # rank 4 of 4 every time: w = 4/5, logit ln(0.8 / 0.2) = ln 4
    assert result.logits == pytest.approx([math.log(4)] * 70)


# Rows b0..b3 (one row per block, S = 4), columns A, B, C; score = mean over rows.
HAND = [
    [3, 5, 4],
    [3, 4, -1],
    [-1, 3, 5],
    [-1, 2, 1],
]
# in-sample | IS means (A, B, C) -> best | OOS means (A, B, C) -> its rank, w, logit
# {0,1} | 3, 4.5, 1.5  -> B | {2,3} -1, 2.5, 3   -> 2, 2/4, ln 1 = 0      (<= 0: overfit)
# {0,2} | 1, 4, 4.5    -> C | {1,3}  1, 3, 0     -> 1, 1/4, ln(1/3)       (overfit)
# {0,3} | 1, 3.5, 2.5  -> B | {1,2}  1, 3.5, 2   -> 3, 3/4, ln 3
# {1,2} | 1, 3.5, 2    -> B | {0,3}  1, 3.5, 2.5 -> 3, 3/4, ln 3
# {1,3} | 1, 3, 0      -> B | {0,2}  1, 4, 4.5   -> 2, 2/4, 0             (overfit)
# {2,3} | -1, 2.5, 3   -> C | {0,1}  3, 4.5, 1.5 -> 1, 1/4, ln(1/3)       (overfit)
# PBO = 4 / 6


def test_pbo_of_a_hand_computed_matrix():
    result = probability_of_backtest_overfitting(HAND, blocks=4)
    assert result.in_sample_blocks == ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    assert result.chosen == (1, 2, 1, 1, 1, 2)
    assert result.logits == pytest.approx([0.0, -LN3, LN3, LN3, 0.0, -LN3])
    assert result.pbo == pytest.approx(4 / 6)
    assert result.in_sample == (4.5, 4.5, 3.5, 3.5, 3.0, 3.0)
    assert result.out_of_sample == (2.5, 0.0, 3.5, 3.5, 4.0, 1.5)
    # OLS of OOS on IS: x*6 - 22 = 5,5,-1,-1,-4,-4; y*2 - 5 = 0,-5,2,2,3,-2
    # Sxy = (0 - 25 - 2 - 2 - 12 + 8) / 12 = -2.75; Sxx = 84 / 36 = 7/3; slope = -33/28
    assert result.degradation_slope == pytest.approx(-33 / 28)
    assert result.probability_of_loss == 0.0  # no OOS score below 0 (0.0 is not a loss)


def test_identical_configurations_share_the_median_rank_and_count_as_overfit():
    # every OOS score ties: rank 1 + 0 + (3 - 1)/2 = 2 of 3, w = 1/2, logit 0
    matrix = np.tile(np.array([[1.0], [2.0], [-1.0], [0.5]]), (1, 3))
    result = probability_of_backtest_overfitting(matrix, blocks=4)
    assert result.logits == (0.0,) * 6
    assert result.pbo == 1.0
    assert set(result.chosen) == {0}  # in-sample ties go to the lowest column


SEEDS = 400


def _noise_pbos(configurations: int) -> np.ndarray:
    return np.array(
        [
            probability_of_backtest_overfitting(
                np.random.default_rng(seed).normal(size=(64, configurations)), blocks=8
            ).pbo
            for seed in range(SEEDS)
        ]
    )


@pytest.mark.parametrize(
    ("configurations", "expected"),
    [
        # IS and OOS rows are disjoint and iid, so the chosen one's OOS rank is uniform on
        # 1..N: P(rank <= (N+1)/2) = 5/10 for N = 10 and 3/5 for N = 5 (the median rank 3
        # has logit 0 and counts as overfit)
        (10, 0.5),
        (5, 0.6),
    ],
)
def test_pbo_of_pure_noise_averages_to_the_share_of_ranks_at_or_below_the_median(
    configurations, expected
):
    pbos = _noise_pbos(configurations)
    # one matrix's PBO spreads with sd ~0.25 (its 70 splits share rows); checked here so the
    # tolerance below holds: the mean of 400 has sd <= 0.3 / 20 = 0.015 and 0.05 is > 3 sd,
    # while 0.05 still tells 0.5 from 0.6
    assert pbos.std() <= 0.3
    assert pbos.mean() == pytest.approx(expected, abs=0.05)


def test_sharpe_statistic_ranks_by_mean_over_deviation():
    block = np.array([[0.02, 0.01, 0.0], [0.0, 0.01, 0.0], [0.04, 0.01, 0.0]])
    # column 0: mean 0.02, sample std 0.02 -> 1; column 1: zero deviation -> 0; column 2: 0
    assert sharpe_performance(block).tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_uneven_blocks_use_every_row():
    # row i = 3i, 3i+1, 3i+2: column 2 always wins. 5 rows into 4 blocks: {0,1} {2} {3} {4}
    matrix = np.arange(15, dtype=float).reshape(5, 3)
    result = probability_of_backtest_overfitting(matrix, blocks=4)
    assert len(result.logits) == 6 and set(result.chosen) == {2}
    assert result.in_sample[0] == 5.0  # blocks 0 and 1 = rows 0..2: (2 + 5 + 8) / 3
    assert result.out_of_sample[0] == 12.5  # rows 3, 4: (11 + 14) / 2


@pytest.mark.parametrize(
    ("matrix", "blocks", "message"),
    [
        (np.zeros((8, 3)), 3, "even"),
        (np.zeros((3, 3)), 4, "cannot be cut into 4 blocks"),
        (np.zeros((8, 1)), 4, "at least 2 columns"),
        (np.zeros(8), 4, "T x N matrix"),
        (np.full((8, 3), np.nan), 4, "non-finite"),
    ],
)
def test_bad_pbo_inputs_are_refused(matrix, blocks, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(matrix, blocks=blocks)


# -- the verdict -----------------------------------------------------------------------


def test_verdict_calls_luck_when_either_guard_fails():
    v = overfit_verdict(0.62, 0.91)
    assert v.luck is True
    assert (
        str(v) == "the best variant is indistinguishable from luck: PBO 0.62 > 0.5; DSR 0.91 < 0.95"
    )
    assert overfit_verdict(0.1, 0.91).sentence.endswith("luck: DSR 0.91 < 0.95")
    assert overfit_verdict(0.62, None).luck is True  # one failing guard is enough


def test_verdict_passes_at_the_thresholds_and_honours_custom_ones():
    v = overfit_verdict(0.5, 0.95)
    assert v.luck is False
    assert v.sentence == (
        "the best variant survives the correction for its trials: PBO 0.50 <= 0.5; DSR 0.95 >= 0.95"
    )
    assert overfit_verdict(0.3, 0.97, pbo_max=0.2).sentence.endswith("PBO 0.30 > 0.2")


def test_verdict_without_a_guard_is_not_assessed():
    v = overfit_verdict(0.2, None)
    assert v.luck is None
    assert v.sentence == "overfitting not assessed: DSR not computed; PBO 0.20 <= 0.5"


def test_formulas_text_states_both_guards_and_the_thresholds():
    text = guard_formulas(pbo_max=0.4)
    assert "PSR(SR*) = Phi((SR - SR*) sqrt(T - 1)" in text
    assert "Phi^-1(1 - 1/(N e))" in text
    assert "w = rank/(N + 1)" in text and "l <= 0" in text
    assert "PBO > 0.4" in text and "DSR < 0.95" in text
