"""The old stack's stock-price workflow against lrnstak.client, on synthetic prices.

Generates a year of daily OHLCV rows for a symbol (a random walk), trains the model `<SYMBOL>_close` to
predict the close from the day's open, high, low, volume and date, with the first rows as `training_data`
and the rest as `testing_data` (scored after fitting, as the old stack did), then predicts the close of the
next trading days and prints them.

    python examples/stock_prices.py --symbol ACME        # against $LRNSTAK_API_URL, else http://127.0.0.1:5000
"""

import argparse
import sys
from datetime import date, timedelta
from typing import Any

import numpy as np

from lrnstak.client import Client, LrnstakError


def trading_days(start: date, count: int) -> list[date]:
    days: list[date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def ohlcv(symbol: str, days: int, seed: int) -> list[dict[str, Any]]:
    """Daily rows: the close is the open moved by the day's drift, high and low bracket both."""
    rng = np.random.default_rng(seed)
    opens = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, days)))
    closes = opens * (1 + rng.normal(0.0, 0.01, days))
    highs = np.maximum(opens, closes) * (1 + np.abs(rng.normal(0.0, 0.005, days)))
    lows = np.minimum(opens, closes) * (1 - np.abs(rng.normal(0.0, 0.005, days)))
    volumes = rng.integers(800_000, 1_200_000, days)
    return [
        {
            "symbol": symbol,
            "date": day.isoformat(),
            "open": round(float(o), 2),
            "high": round(float(h), 2),
            "low": round(float(lo), 2),
            "close": round(float(c), 2),
            "volume": int(v),
        }
        for day, o, h, lo, c, v in zip(
            trading_days(date(2026, 1, 2), days), opens, highs, lows, closes, volumes, strict=True
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbol", default="ACME")
    parser.add_argument("--days", type=int, default=260, help="trading days generated (the last 5 are predicted)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", help="the API (default: $LRNSTAK_API_URL, else http://127.0.0.1:5000)")
    args = parser.parse_args(argv)

    rows = ohlcv(args.symbol, args.days, args.seed)
    history, upcoming = rows[:-5], rows[-5:]
    cut = int(len(history) * 0.8)
    name = f"{args.symbol}_close"
    features = ["open", "high", "low", "volume", "date"]
    try:
        with Client(args.url) as lrnstak:
            trained = lrnstak.train(
                name,
                history[:cut],
                testing_data=history[cut:],
                target="close",
                features=features,
                algorithm=["ridge", "random_forest"],
                parameters={
                    "metadata": {"symbol": args.symbol},
                    # The date as what matters for prices: its month and its day of the week.
                    "rules": {"extract": {"date": {"type": "datetime", "elements": ["month", "day_of_week"]}}},
                },
            )
            testing = [score for score in trained.training_results["scores"] if score["iteration"] == 2]
            print(f"trained {trained.model} {trained.version} with {trained.algorithm}", end="")
            print(f" (testing mae {testing[0]['mae']:.3f})" if testing else "")
            known = [{key: row[key] for key in ("date", *features)} for row in upcoming]
            predicted = lrnstak.predict(name, known, trained.version)
    except LrnstakError as error:
        print(f"stock_prices: {error}", file=sys.stderr)
        return 1
    print(f"{'date':<10}  {'open':>8}  {'predicted close':>15}  {'actual close':>12}")
    for entry, actual in zip(predicted, upcoming, strict=True):
        print(f"{entry['date']:<10}  {entry['open']:>8.2f}  {entry['prediction']:>15.2f}  {actual['close']:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
