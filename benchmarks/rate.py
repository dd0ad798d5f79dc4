"""Scenario 4: how close BulkSender's rate limiter keeps to the configured rate.

achieved = (completions - 1) / (last completion - first completion), over the ``sent`` outcomes
of one run of ``rate * seconds + 1`` messages; error % = (achieved / rate - 1) * 100. The
limiter's initial burst (``max(1, rate / 10)`` permits) is inside that window, as a user sees
it; ``steady`` leaves it out: (completions - burst) / (last - burst-th completion).
"""

from __future__ import annotations

import time

from dialog360_async import BulkSender, Dialog360Client, Outcome

from ._common import KEY, location_messages, recipients
from ._stats import Result, Row, log, verdict

CASES = ((80.0, 10.0), (1000.0, 5.0))
CONCURRENCY = 32
TOLERANCE_PCT = 2.0


async def _one(client: Dialog360Client, rate: float, seconds: float) -> dict[str, float]:
    count = int(rate * seconds) + 1
    done: list[float] = []

    def record(outcome: Outcome) -> None:
        if outcome.ok:
            done.append(time.monotonic())

    sender = BulkSender(client, concurrency=CONCURRENCY, rate_limit=rate, on_outcome=record)
    summary = await sender.send_all(location_messages(recipients(count), count))
    if summary.sent != count:
        raise RuntimeError(f"rate run failed:\n{summary}")
    burst = max(1, int(rate / 10))
    achieved = (len(done) - 1) / (done[-1] - done[0])
    steady = (len(done) - burst) / (done[-1] - done[burst - 1])
    return {
        "rate": rate,
        "messages": count,
        "seconds": done[-1] - done[0],
        "achieved_msg_s": achieved,
        "error_pct": (achieved / rate - 1) * 100,
        "steady_msg_s": steady,
        "steady_error_pct": (steady / rate - 1) * 100,
    }


async def run(url: str, quick: bool) -> Result:
    result = Result()
    async with Dialog360Client(KEY, base_url=url) as client:
        for rate, seconds in CASES:
            log(f"rate: rate_limit={rate:g} for {seconds:g} s")
            got = await _one(client, rate, seconds)
            log(f"  achieved {got['achieved_msg_s']:.2f} msg/s ({got['error_pct']:+.2f} %)")
            result.details[f"{rate:g}"] = got
            shown = (
                f"{got['achieved_msg_s']:.2f} msg/s over {got['seconds']:.2f} s: "
                f"{got['error_pct']:+.2f} % (steady {got['steady_error_pct']:+.2f} %)"
            )
            ok = abs(got["error_pct"]) <= TOLERANCE_PCT
            target = f"within +-{TOLERANCE_PCT:g} %"
            result.rows.append(Row("4 rate", f"rate_limit={rate:g}", shown, target, verdict(ok)))
    result.metrics["rate_error_pct_80"] = result.details["80"]["error_pct"]
    result.metrics["rate_error_pct_1000"] = result.details["1000"]["error_pct"]
    return result
