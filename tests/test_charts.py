"""The overview's charts say what they show in the marketer's terms."""

from __future__ import annotations

import pandas as pd

from dashboard.charts import trend_figure


def test_the_trend_reads_rates_on_a_round_percent_axis_of_its_own() -> None:
    trend = pd.DataFrame({"day": pd.to_datetime(["2026-11-01", "2026-11-02"]), "sent": [480, 1_370],
                          "read_rate": [61.2, 67.4], "reply_rate": [12.0, 14.3]})
    figure = trend_figure(trend)

    bars, read, replied = figure.data
    assert (bars.name, read.name, replied.name) == ("Sent", "Read %", "Replied %")
    assert bars.yaxis in (None, "y") and read.yaxis == replied.yaxis == "y2", "rates beside the counts"
    percent = figure.layout.yaxis2
    assert tuple(percent.range) == (0, 100) and percent.ticksuffix == "%"
    assert (percent.tickmode, percent.tick0, percent.dtick) == ("linear", 0, 25)  # 0, 25, 50, 75, 100 %
