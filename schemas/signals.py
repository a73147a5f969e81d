"""The Signals frame: the contract between the SMC engine and the auction.

The SMC engine (core/smc) produces it; the auction and risk manager consume it.
Extra columns are allowed; these are guaranteed.
"""

from __future__ import annotations

import pandera.polars as pa

from schemas.frames import UtcTs


class Signals(pa.DataFrameModel):
    symbol: str = pa.Field(description="unified symbol, e.g. BTC/USD:USD")
    ts: UtcTs = pa.Field(description="decision time: close of the bar that produced it")  # type: ignore[valid-type]
    strategy: str = pa.Field(isin=["smc", "momentum"])
    side: str = pa.Field(isin=["long", "short"])
    entry: float = pa.Field(gt=0)
    stop: float = pa.Field(gt=0, description="beyond the structure's invalidation, ATR buffer")
    tp1: float = pa.Field(gt=0)
    tp2: float = pa.Field(gt=0)
    tp3: float = pa.Field(gt=0)
    regime: str
    score: float = pa.Field(ge=0, le=1, description="auction score input, 0..1")

    class Config:
        strict = False
        coerce = True
