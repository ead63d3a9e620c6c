"""The overview's charts say what they show in the marketer's terms."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core.funnel import Funnel
from dashboard.charts import DAY_MS, FEW_SENT, funnel_figure, hours_figure, tag_figure, trend_figure


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


def test_tags_read_flat_best_first_and_a_small_tag_is_pale() -> None:
    tags = pd.DataFrame({"tag": ["Raya", "Merdeka", "Test"], "sent": [900, 1_200, FEW_SENT - 26],
                         "replied_rate": [14.0, 9.5, 50.0], "replied_low": [11.9, 8.0, 15.0],
                         "replied_high": [16.4, 11.3, 85.0]})
    [bars] = tag_figure(tags, stage="replied").data
    assert bars.orientation == "h"
    assert list(bars.y) == ["Merdeka (1,200 sent)", "Raya (900 sent)", "Test (4 sent)"]  # best at the top
    assert list(bars.x) == [9.5, 14.0, 50.0]
    pale, strong = bars.marker.color[2], bars.marker.color[0]
    assert pale != strong and bars.marker.color[1] == strong
    assert list(bars.error_x.array) == [11.3 - 9.5, 16.4 - 14.0, 85.0 - 50.0]


def test_the_heatmap_says_what_it_counts() -> None:
    activity = pd.DataFrame({"what": ["replied", "read"], "weekday": ["Mon", "Tue"], "hour_of_day": [9, 10],
                             "n": [4, 7]})
    [cells] = hours_figure(activity, what="replied").data
    assert cells.colorbar.title.text == "replies"
    assert cells.z[0][9] == 4 and sum(map(sum, cells.z)) == 4


def test_a_single_day_of_trend_reads_as_a_day() -> None:
    trend = pd.DataFrame({"day": pd.to_datetime(["2026-11-26"]), "sent": [26], "read_rate": [50.0],
                          "reply_rate": [10.0]})
    axis = trend_figure(trend).layout.xaxis
    assert axis.tickformat == "%d %b" and axis.dtick == 86_400_000
    assert [pd.Timestamp(x) for x in axis.range] == [pd.Timestamp("2026-11-25"), pd.Timestamp("2026-11-27")]


@pytest.mark.parametrize(
    ("funnel", "zeros"),
    [
        (Funnel(total=87, sent=86, received=78, read=46, replied=11, closed=0, failed=1), ["Closed"]),
        (Funnel(total=5, sent=5, received=4, read=0, replied=0, closed=0), ["Read", "Replied", "Closed"]),
        (Funnel(total=5, waiting=5), ["Sent", "Received", "Read", "Replied", "Closed"]),  # nothing sent yet
    ],
)
def test_a_stage_nobody_reached_says_0_as_plainly_as_the_others(funnel: Funnel, zeros: list[str]) -> None:
    """Its bar has no width to show it: every stage's count stands under its name, at the left."""
    figure = funnel_figure(funnel)
    bars = figure.data[0]
    assert bars.textinfo == "none", "nothing drawn on or beside a bar, where it had no room"
    for stage, count, label in zip(bars.y, bars.x, figure.layout.yaxis.ticktext, strict=True):
        assert label == f"{stage}<br><b>{count:,}</b>"
        assert (count == 0) == (stage in zeros), stage


def _days(*days: str) -> pd.DataFrame:
    return pd.DataFrame({"day": pd.to_datetime(list(days)), "sent": [300] * len(days),
                         "read_rate": [50.0] * len(days), "reply_rate": [10.0] * len(days)})


@pytest.mark.parametrize("days", [["2026-11-10", "2026-11-20"], ["2026-11-01", "2026-11-02", "2026-11-30"]])
def test_a_days_bar_is_a_day_wide_however_far_apart_the_sends(days: list[str]) -> None:
    """Plotly sizes bars by the closest two: a send every ten days was drawn ten days wide."""
    [bars] = [trace for trace in trend_figure(_days(*days)).data if trace.type == "bar"]
    assert bars.width == pytest.approx(0.8 * DAY_MS)


def test_the_trend_spans_the_chosen_dates() -> None:
    november = {"start": dt.date(2026, 11, 1), "end": dt.date(2026, 11, 30)}
    figure = trend_figure(_days("2026-11-10", "2026-11-20"), **november)
    first, last = (pd.Timestamp(x) for x in figure.layout.xaxis.range)
    assert first <= pd.Timestamp("2026-11-01") - pd.Timedelta(hours=10)  # the 1st's bar whole
    assert pd.Timestamp("2026-11-30") + pd.Timedelta(hours=10) <= last < pd.Timestamp("2026-12-01")


def test_the_trend_keeps_a_send_after_the_chosen_dates_in_view() -> None:
    """A blast of the 20th that quiet hours held until the 21st: its bar is not cut off."""
    figure = trend_figure(_days("2026-11-21"), start=dt.date(2026, 11, 20), end=dt.date(2026, 11, 20))
    first, last = (pd.Timestamp(x) for x in figure.layout.xaxis.range)
    assert first < pd.Timestamp("2026-11-20") and last > pd.Timestamp("2026-11-21") + pd.Timedelta(hours=10)
    assert figure.layout.xaxis.dtick == DAY_MS, "days, not hours"


def test_tags_compared_by_opting_out_say_so_in_red() -> None:
    tags = pd.DataFrame({"tag": ["Raya", "CNY"], "sent": [900, 1_200],
                         "replied_rate": [14.0, 2.0], "replied_low": [11.9, 1.3], "replied_high": [16.4, 3.0],
                         "opted_out_rate": [0.5, 9.0], "opted_out_low": [0.2, 7.5],
                         "opted_out_high": [1.3, 10.8]})
    replied, opted_out = tag_figure(tags, stage="replied"), tag_figure(tags, stage="opted_out")
    assert opted_out.layout.xaxis.title.text == "% opted out"
    assert list(opted_out.data[0].y) == ["Raya (900 sent)", "CNY (1,200 sent)"], "the most at the top"
    assert set(opted_out.data[0].marker.color).isdisjoint(replied.data[0].marker.color)


def _compared() -> pd.DataFrame:
    """Two tags with many sent and one with few: dark bars and a pale one."""
    return pd.DataFrame({"tag": ["Raya", "Merdeka", "Test"], "sent": [900, 1_200, FEW_SENT - 26],
                         "replied_rate": [14.0, 9.5, 50.0], "replied_low": [11.9, 8.0, 15.0],
                         "replied_high": [16.4, 11.3, 85.0], "opted_out_rate": [0.5, 9.04, 25.0],
                         "opted_out_low": [0.2, 7.5, 4.0], "opted_out_high": [1.3, 10.8, 64.0]})


@pytest.mark.parametrize(("stage", "said"), [
    ("replied", [("Merdeka (1,200 sent)", "9.5%"), ("Raya (900 sent)", "14.0%"),
                 ("Test (4 sent)", "50.0%")]),
    ("opted_out", [("Raya (900 sent)", "0.5%"), ("Merdeka (1,200 sent)", "9.0%"),
                   ("Test (4 sent)", "25.0%")]),
])
def test_each_tag_says_its_rate_just_past_its_interval(stage: str, said: list[tuple[str, str]]) -> None:
    """Only the axis had numbers: a rate took a hover to read exactly."""
    figure = tag_figure(_compared(), stage=stage)
    bars = figure.data[0]
    notes = figure.layout.annotations
    assert [(note.y, note.text) for note in notes] == said
    for note, rate, above in zip(notes, bars.x, bars.error_x.array, strict=True):
        assert note.x >= rate + above, "beside the bar, clear of the interval line"
        assert (note.xanchor, note.showarrow) == ("left", False) and note.xshift > 0


def _contrast(one: str, other: str) -> float:
    """How far apart two colours read (WCAG): 3 or more for a line to stand out."""
    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("stage", ["replied", "opted_out"])
def test_the_interval_line_shows_on_the_dark_bar_and_past_it(stage: str) -> None:
    """It crosses the end of the bar: grey on dark teal could not be seen."""
    bars = tag_figure(_compared(), stage=stage).data[0]
    for background in {*bars.marker.color, "#ffffff"}:
        assert _contrast(bars.error_x.color, background) >= 3, background


def test_the_funnels_words_stand_at_its_sides_level_with_their_bars_in_short_lines() -> None:
    """On the bars, a stage's words ran past a phone's screen beside a bar a third of the plot
    wide, and a count too long for its bar ran into the shares: each stage's name and count are
    the labels of the left axis, its shares those of a right-hand one, two short lines each."""
    totals = Funnel(total=10_013, sent=9_858, received=9_075, read=5_669, replied=1_335, closed=289)
    figure = funnel_figure(totals)
    bars, holder = figure.data
    left, right = figure.layout.yaxis, figure.layout.yaxis2
    assert [words.split("<br>") for words in left.ticktext] == [
        ["Sent", "<b>9,858</b>"], ["Received", "<b>9,075</b>"], ["Read", "<b>5,669</b>"],
        ["Replied", "<b>1,335</b>"], ["Closed", "<b>289</b>"],
    ]
    assert [words.split("<br>") for words in right.ticktext] == [
        [""],
        ["92.1% of sent"],
        ["57.5% of sent", "62.5% of previous"],
        ["13.5% of sent", "23.5% of previous"],
        ["2.9% of sent", "21.6% of previous"],
    ]
    assert (right.side, right.overlaying, left.automargin, right.automargin) == ("right", "y", True, True)
    assert (holder.yaxis, holder.marker.opacity, holder.hoverinfo) == ("y2", 0, "skip")
    assert list(left.tickvals) == list(right.tickvals) == list(bars.y) == list(holder.y), "level with its bar"
    assert list(right.range) == list(left.range) == [4.5, -0.5], "the same rows, top down"
    assert figure.layout.showlegend is False
    assert bars.hovertext[0] == "Sent: 9,858", "Sent has no shares to add"
    assert bars.hovertext[2] == "Read: 5,669<br>57.5% of sent<br>62.5% of previous", "a bar touched says all"


# Plotly's tool bar, shown on hover (or once tapped, on a phone), as Chromium draws it: 2 px from
# the chart's top, 26 px high, reaching across most of a phone's chart.
TOOL_BAR_PX = 28


def _every_chart() -> dict[str, object]:
    activity = pd.DataFrame({"what": ["replied"], "weekday": ["Mon"], "hour_of_day": [9], "n": [4]})
    return {
        "funnel": funnel_figure(Funnel(total=87, sent=86, received=78, read=46, replied=11, closed=3)),
        "blast page funnel": funnel_figure(Funnel(total=5, sent=5, received=4), height=300),
        "trend": trend_figure(_days("2026-11-01", "2026-11-02")),
        "tags": tag_figure(_compared()),
        "hours": hours_figure(activity, what="replied"),
    }


@pytest.mark.parametrize("chart", list(_every_chart()))
def test_each_chart_leaves_its_top_to_the_tool_bar(chart: str) -> None:
    """Its first bar's words, the legend or the colour bar's title were under it."""
    figure = _every_chart()[chart]
    assert figure.layout.margin.t >= TOOL_BAR_PX  # type: ignore[attr-defined]


def test_the_trends_legend_starts_below_the_tool_bar_however_many_lines_it_takes() -> None:
    """Placed from the plot's top, a legend a phone wrapped on two lines rose under the tool bar."""
    figure = trend_figure(_days("2026-11-01", "2026-11-02"))
    legend = figure.layout.legend
    assert (legend.yref, legend.yanchor) == ("container", "top"), "measured from the chart's top, down"
    assert (1 - legend.y) * figure.layout.height >= TOOL_BAR_PX
