"""External anchor for `make bench-backtest`: backtesting.py 0.6.6 on the same hourly bars.

Runs in the bench-only venv (.local/bench-venv), never in the project's. A strategy that
trades (an SMA cross, so its engine does real work) over every market's 1h candles of the
shared data; prints bars per second as `ANCHOR bars=N seconds=S`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

DATA = Path(os.environ.get("SMC_TRADER_DATA_DIR", "../shared/data/binance-usdm"))


class SmaCross(Strategy):
    def init(self) -> None:
        self.fast = self.I(SMA, self.data.Close, 24)
        self.slow = self.I(SMA, self.data.Close, 96)

    def next(self) -> None:
        if crossover(self.fast, self.slow):
            self.position.close()
            self.buy()
        elif crossover(self.slow, self.fast):
            self.position.close()
            self.sell()


def frame(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path).set_index("ts")
    return df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]


def main() -> None:
    warnings.filterwarnings("ignore")
    files = sorted(DATA.glob("*USDT_1h.parquet"))
    data = [frame(p) for p in files]
    bars, seconds, trades = 0, 0.0, 0
    for df in data:
        start = time.perf_counter()
        stats = Backtest(df, SmaCross, cash=1e9, commission=0.0005).run()
        seconds += time.perf_counter() - start
        bars += len(df)
        trades += int(stats["# Trades"])
    print(f"ANCHOR bars={bars} seconds={seconds:.3f} trades={trades} markets={len(data)}")


if __name__ == "__main__":
    sys.exit(main())
