"""Agreement of our confirmed swings with smartmoneyconcepts 0.0.27 on real candles.

Not a test: the peer lives only in the throwaway bench venv.

    uv venv .local/bench-venv --python 3.11
    uv pip install --python .local/bench-venv smartmoneyconcepts==0.0.27 polars numba \
        pyarrow pandera pydantic pyyaml numpy
    .local/bench-venv/bin/python bench/compare_swings.py [--swing-length 10]

How the two definitions are lined up before counting:
- time: ours reports a swing on its confirming bar with the pivot's time in
  swing_high_ts / swing_low_ts; the peer marks the pivot row itself. We compare
  pivot times, i.e. we undo our confirmation delay;
- edges: the peer adds an artificial swing on the first and last rows and
  cannot see pivots in the last n bars either; both are left out;
- window: the peer's window has n-1 bars left of the pivot and n right, and
  `==` makes ties pivots; ours has n each side, strictly higher than the left;
- revision: the peer deletes the lesser of two consecutive same-type swings,
  which a later bar can decide. We report agreement raw, and after applying
  that same alternation rule to our swings (for comparison only: it needs the
  future, so the engine never does it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.smc import compute_features  # noqa: E402
from schemas.strategy import StrategyConfig  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "binance-usdm"


def ours(frame: pl.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pivot row indices of our confirmed swing highs and lows."""
    f = compute_features(frame, "1h", StrategyConfig(swing_length=n)).with_row_index()
    f = f.with_columns(pivot=pl.col("index") - n)
    return (
        f.filter(pl.col("swing_high_confirmed"))["pivot"].to_numpy(),
        f.filter(pl.col("swing_low_confirmed"))["pivot"].to_numpy(),
    )


def peer(frame: pl.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pivot row indices of the peer's swing highs and lows, artificial edges removed."""
    from smartmoneyconcepts import smc

    out = smc.swing_highs_lows(frame.to_pandas(), swing_length=n)["HighLow"].to_numpy()
    inside = np.arange(len(out))
    inside = (inside > 0) & (inside < len(out) - 1)
    return np.flatnonzero((out == 1) & inside), np.flatnonzero((out == -1) & inside)


def alternate(
    highs: np.ndarray, lows: np.ndarray, high: np.ndarray, low: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keep, of each run of consecutive same-type swings, the most extreme (ties: the first)."""
    events = sorted([(int(i), 1) for i in highs] + [(int(i), -1) for i in lows])
    kept: list[tuple[int, int]] = []
    for i, kind in events:
        if kept and kept[-1][1] == kind:
            j = kept[-1][0]
            better = high[i] > high[j] if kind == 1 else low[i] < low[j]
            if better:
                kept[-1] = (i, kind)
            continue
        kept.append((i, kind))
    return (
        np.array([i for i, k in kept if k == 1], dtype=np.int64),
        np.array([i for i, k in kept if k == -1], dtype=np.int64),
    )


def window_explains(pivots: np.ndarray, values: np.ndarray, n: int, up: bool) -> int:
    """How many peer-only pivots fail OUR window only through its definition: the extra
    (n-th) left bar reaches the pivot, or a left bar ties it (ours needs strictly beyond)."""
    count = 0
    for p in pivots:
        left = values[max(p - n, 0) : p]
        if len(left) and ((left.max() >= values[p]) if up else (left.min() <= values[p])):
            count += 1
    return count


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """(common, only in a, only in b)."""
    sa, sb = set(a.tolist()), set(b.tolist())
    return len(sa & sb), len(sa - sb), len(sb - sa)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swing-length", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args()
    n = args.swing_length
    totals = np.zeros(6, dtype=np.int64)
    explained = 0
    print(f"swing_length={n}; pivots compared at the pivot bar; peer's edge rows excluded")
    print(
        f"{'market':<14}{'raw ours&peer':>15}{'ours only':>10}{'peer only':>10}"
        f"{'alt ours&peer':>15}{'ours only':>10}{'peer only':>10}"
    )
    for path in sorted(args.data_dir.glob("*_1h.parquet")):
        frame = pl.read_parquet(path)
        last = frame.height - n  # neither side can know a pivot in the last n bars
        oh, ol = ours(frame, n)
        ph, pl_ = peer(frame, n)
        ph, pl_ = ph[ph < last], pl_[pl_ < last]
        high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
        ah, al = alternate(oh, ol, high, low)
        raw = np.add(agreement(np.r_[oh, ol + 10**7], np.r_[ph, pl_ + 10**7]), 0)
        alt = np.add(agreement(np.r_[ah, al + 10**7], np.r_[ph, pl_ + 10**7]), 0)
        totals += np.r_[raw, alt]
        peer_only_h = np.setdiff1d(ph, oh)
        peer_only_l = np.setdiff1d(pl_, ol)
        explained += window_explains(peer_only_h, high, n, True)
        explained += window_explains(peer_only_l, low, n, False)
        print(
            f"{path.name.removesuffix('_1h.parquet'):<14}{raw[0]:>15}{raw[1]:>10}{raw[2]:>10}"
            f"{alt[0]:>15}{alt[1]:>10}{alt[2]:>10}"
        )
    common, o_only, p_only, a_common, a_o_only, a_p_only = totals
    print(
        f"{'ALL':<14}{common:>15}{o_only:>10}{p_only:>10}{a_common:>15}{a_o_only:>10}{a_p_only:>10}"
    )
    print(
        f"raw: {common / (common + p_only):.1%} of the peer's swings are ours, "
        f"{common / (common + o_only):.1%} of ours are the peer's"
    )
    print(
        f"of the {p_only} peer-only swings, {explained} are explained by the window "
        "definition (a tie on the left, or the n-th left bar, which the peer does not look at)"
    )
    print(
        f"after the peer's alternation rule on ours: {a_common / (a_common + a_p_only):.1%} "
        f"of the peer's swings are ours, "
        f"{a_common / (a_common + a_o_only):.1%} of ours are the peer's"
    )


if __name__ == "__main__":
    main()
