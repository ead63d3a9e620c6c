"""Plotly figures: the funnel and its companions."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.funnel import Funnel
from core.statuses import Stage
from core.words import percent_words

FUNNEL_COLOURS = ["#3b82f6", "#06b6d4", "#10b981", "#f59e0b", "#ef4444"]
# Plotly's tool bar (download, zoom, full screen) shows in a chart's top right corner while it is
# hovered, or once it is tapped on a phone, where it spans most of the chart's width: a band this
# high is kept clear for it at the top of every chart, or it hides the first bar's words, the
# legend or the colour bar's title.
MODEBAR_ROOM = 32


def funnel_figure(funnel: Funnel, *, height: int = 380) -> go.Figure:
    """Each stage's bar, with its name and count at its left and its shares of sent and of the
    stage before at its right, level with it.

    The words are the labels of the two axes, whose room Plotly measures and keeps at any
    width. On the bars, they ran past a phone's screen or over one another: a middle bar
    about a third of the plot wide had room for a stage's three lines neither inside nor
    beside it, and a count too long for its bar, drawn beside it, ran into the shares."""
    stages = list(Stage)
    counts = [funnel.count(s) for s in stages]
    labels = [s.label for s in stages]
    shares = [_shares_words(funnel, s) for s in stages]
    figure = go.Figure(
        go.Funnel(
            y=labels,
            x=counts,
            textinfo="none",
            marker={"color": FUNNEL_COLOURS},
            connector={"line": {"color": "#cbd5e1"}},
            # On a phone the shares are a long way from the bar touched: they come with its count.
            hovertext=[f"{label}: {count:,}" + (f"<br>{words}" if words else "")
                       for label, count, words in zip(labels, counts, shares, strict=True)],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    # Plotly draws an axis only under a trace: an unseen one holds the right-hand axis. Both
    # list the stages top down over the same range, so each stage's words are level with its bar.
    figure.add_scatter(x=[0] * len(labels), y=labels, yaxis="y2", mode="markers", marker={"opacity": 0},
                       hoverinfo="skip", showlegend=False)
    rows = {"type": "category", "categoryorder": "array", "categoryarray": labels, "tickmode": "array",
            "tickvals": labels, "range": [len(labels) - 0.5, -0.5], "automargin": True, "fixedrange": True}
    figure.update_layout(
        # A stage nobody reached says 0 as plainly as the others: its bar has no width to show it.
        yaxis={**rows, "ticktext": [f"{label}<br><b>{count:,}</b>" for label, count in zip(labels, counts,
                                                                                          strict=True)],
               "tickfont": {"size": 15}},
        yaxis2={**rows, "ticktext": shares, "tickfont": {"size": 13}, "overlaying": "y", "side": "right",
                "showgrid": False},
    )
    figure.update_xaxes(visible=False, fixedrange=True)  # the counts say it; the scale said nothing
    figure.update_layout(margin={"l": 10, "r": 10, "t": MODEBAR_ROOM, "b": 10}, height=height, funnelgap=0.1,
                         showlegend=False)
    return figure


def _shares_words(funnel: Funnel, stage: Stage) -> str:
    """A stage's share of sent and of the stage before, each on a line of its own (on one line
    they took half a phone's width); nothing for Sent, and Received's previous is sent."""
    of_sent, of_previous = funnel.pct_of_sent(stage), funnel.pct_of_previous(stage)
    lines = []
    if of_sent is not None and stage is not Stage.SENT:
        lines.append(f"{percent_words(of_sent)} of sent")
    if of_previous is not None and stage is not Stage.RECEIVED:  # its previous is sent: said already
        lines.append(f"{percent_words(of_previous)} of previous")
    return "<br>".join(lines)


DAY_MS = 86_400_000  # a date axis counts in milliseconds


def trend_figure(
    trend: pd.DataFrame, *, start: dt.date | None = None, end: dt.date | None = None
) -> go.Figure:
    """Messages sent per day (bars) with the share read and replied to (lines), across the
    dates chosen (`start` to `end`) when there are some."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    # A day wide, whatever the gaps: Plotly otherwise sizes bars by the closest two, and a
    # send every few days drew each as a bar several days wide.
    figure.add_bar(x=trend["day"], y=trend["sent"], name="Sent", marker_color="#93c5fd", width=0.8 * DAY_MS)
    figure.add_scatter(
        x=trend["day"],
        y=trend["read_rate"],
        name="Read %",
        mode="lines+markers",
        line={"color": "#10b981"},
        secondary_y=True,
    )
    figure.add_scatter(
        x=trend["day"],
        y=trend["reply_rate"],
        name="Replied %",
        mode="lines+markers",
        line={"color": "#f59e0b"},
        secondary_y=True,
    )
    # Days, not hours and milliseconds: a few days would otherwise fill the axis with hours.
    figure.update_xaxes(type="date", tickformat="%d %b")
    first, last = _shown_days(trend, start=start, end=end)
    if first == last:  # a day alone, between its neighbours, reads as a day
        first, last = first - pd.Timedelta(days=1), last + pd.Timedelta(days=1)
    else:
        first, last = first - pd.Timedelta(hours=12), last + pd.Timedelta(hours=12)
    figure.update_xaxes(range=[first, last])
    if last - first <= pd.Timedelta(days=15):
        figure.update_xaxes(dtick=DAY_MS)
    figure.update_yaxes(title_text="Messages sent", secondary_y=False)
    # Its own round ticks (0, 25, 50, 75, 100 %), not the bars' grid lines carried over.
    figure.update_yaxes(title_text="% of sent", range=[0, 100], tickmode="linear", tick0=0, dtick=25,
                        ticksuffix="%", showgrid=False, secondary_y=True)
    # The legend just under the tool bar's band, measured from the chart's top (`container`):
    # placed by the plot's top instead, it rose into the band once a phone wrapped it on two lines.
    # The chart is as much taller, so the days keep the room they had.
    height = 376
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": MODEBAR_ROOM, "b": 10}, height=height,
        legend={"orientation": "h", "yref": "container", "y": 1 - MODEBAR_ROOM / height, "yanchor": "top"},
    )
    return figure


def _shown_days(
    trend: pd.DataFrame, *, start: dt.date | None, end: dt.date | None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last day the axis shows: the days with sends, and all the chosen dates.
    Sends can fall after the chosen dates (a blast of the 20th that quiet hours held to the
    21st), so the chosen dates widen the axis but never cut it."""
    days = pd.to_datetime(trend["day"])
    first, last = days.min(), days.max()
    if start is not None:
        first = min(first, pd.Timestamp(start))
    if end is not None:
        last = max(last, pd.Timestamp(end))
    return first, last


# Fewer sent than this and a tag's rate swings by tens of points: drawn pale.
FEW_SENT = 30


# (strong, pale) bar colours: opting out is the one rate where more is worse.
_TAG_COLOURS = {"opted_out": ("#b91c1c", "#fca5a5")}
_TAG_COLOUR = ("#0f766e", "#99d5cf")
# The 95% interval runs across the bar's end: black stands out on the dark bars as well as the
# pale ones and the white beyond them (a grey line vanished on the dark teal).
INTERVAL_COLOUR = "#000000"


def tag_rate_words(stage: str) -> str:
    """A tag comparison's rate in words. Its "replied" leaves the opt-outs out, unlike the
    funnel's, and says so."""
    return "replied, not to opt out" if stage == "replied" else stage.replace("_", " ")


def tag_figure(tags: pd.DataFrame, *, stage: str = "replied") -> go.Figure:
    """Each tag's rate with its 95% interval, highest first, as bars across so that names read
    flat: overlapping lines mean no proven winner, and a tag with few sent is drawn pale.
    `stage` is read, replied, closed or opted_out."""
    tags = tags.sort_values(f"{stage}_rate", ascending=True, kind="stable")  # highest at the top
    rate, low, high = tags[f"{stage}_rate"], tags[f"{stage}_low"], tags[f"{stage}_high"]
    few = tags["sent"] < FEW_SENT
    strong, pale = _TAG_COLOURS.get(stage, _TAG_COLOUR)
    labels = [f"{tag} ({sent:,} sent)" for tag, sent in zip(tags["tag"], tags["sent"], strict=True)]
    figure = go.Figure(
        go.Bar(
            y=labels,
            x=rate,
            orientation="h",
            marker_color=[pale if small else strong for small in few],
            error_x={"type": "data", "symmetric": False, "array": high - rate, "arrayminus": rate - low,
                     "color": INTERVAL_COLOUR, "thickness": 2, "width": 6},
            customdata=list(zip(tags["sent"], low, high, strict=True)),
            hovertemplate="%{y}: %{x:.1f}% of %{customdata[0]:,} sent<br>"
            "likely between %{customdata[1]:.1f}% and %{customdata[2]:.1f}%<extra></extra>",
        )
    )
    # Each rate in figures, so it reads without a hover. Put just past the interval's end, not at
    # the bar's: the interval runs on past the bar, and text there would hide it. The text takes
    # the theme's colour, readable on its background.
    for label, value, end in zip(labels, rate, high, strict=True):
        figure.add_annotation(x=end, y=label, text=percent_words(value), showarrow=False, xanchor="left",
                              xshift=6, font={"size": 13})
    figure.update_xaxes(title_text=f"% {tag_rate_words(stage)}", ticksuffix="%", rangemode="tozero")
    # Room on the right for the rate of the bar whose interval reaches furthest.
    figure.update_layout(margin={"l": 10, "r": 60, "t": MODEBAR_ROOM, "b": 10},
                         height=MODEBAR_ROOM + max(210, 50 + 36 * len(tags)))
    return figure


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def hours_figure(activity: pd.DataFrame, *, what: str) -> go.Figure:
    """A weekday × hour heatmap of reads or replies, in the team's time zone."""
    chosen = activity[activity["what"] == what]
    grid = (
        chosen.pivot_table(index="weekday", columns="hour_of_day", values="n", aggfunc="sum")
        .reindex(index=WEEKDAYS, columns=range(24))
        .fillna(0)
    )
    figure = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=[f"{h:02d}:00" for h in range(24)],
            y=WEEKDAYS,
            colorscale="Teal",
            colorbar={"title": {"text": "reads" if what == "read" else "replies"}},
            hovertemplate=f"%{{y}} %{{x}}: %{{z:,.0f}} {'reads' if what == 'read' else 'replies'}"
            "<extra></extra>",
        )
    )
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": MODEBAR_ROOM, "b": 10}, height=MODEBAR_ROOM + 270,
        yaxis={"autorange": "reversed"},
    )
    return figure
