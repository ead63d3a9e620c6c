"""Plotly figures: the funnel and its companions."""

from __future__ import annotations

import plotly.graph_objects as go

from core.funnel import Funnel
from core.statuses import Stage

FUNNEL_COLOURS = ["#3b82f6", "#06b6d4", "#10b981", "#f59e0b", "#ef4444"]


def funnel_figure(funnel: Funnel, *, height: int = 380) -> go.Figure:
    stages = list(Stage)
    counts = [funnel.count(s) for s in stages]
    text = []
    for stage, count in zip(stages, counts, strict=True):
        of_sent = funnel.pct_of_sent(stage)
        of_previous = funnel.pct_of_previous(stage)
        parts = [f"{count:,}"]
        if of_sent is not None and stage is not Stage.SENT:
            parts.append(f"{of_sent:.1f}% of sent")
        if of_previous is not None:
            parts.append(f"{of_previous:.1f}% of previous")
        text.append(" · ".join(parts))
    figure = go.Figure(
        go.Funnel(
            y=[s.label for s in stages],
            x=counts,
            text=text,
            textinfo="text",
            marker={"color": FUNNEL_COLOURS},
            connector={"line": {"color": "#cbd5e1"}},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    figure.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=height)
    return figure
