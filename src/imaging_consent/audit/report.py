"""The audit trail as one HTML page a patient can read (``audit --format html``).

"Who saw my images, when, why, what happened": a summary in plain words, the grants in force,
a plot of accesses over time, and every event newest first, break-glass rows highlighted and
explained. The file is self-contained: the style is inline, the plot a PNG ``data:`` URI
(matplotlib, Agg, imported only when a plot is drawn), no script, font or image is fetched.
Every value is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

from imaging_consent.access_log import AccessEvent
from imaging_consent.audit.events import (
    AuditItem,
    Counts,
    counts,
    grant_status,
    iso_utc,
    newest_first,
    outcome,
    purpose_label,
    refusal_reason,
    source_line,
)
from imaging_consent.consent import ALL_STUDIES, ConsentEvent, Grant
from imaging_consent.index import AuditTrail

__all__ = ["BATCHED_TEXT", "BREAK_GLASS_TEXT", "audit_html", "buckets"]

#: What a break-glass row means, shown beside each one.
BREAK_GLASS_TEXT = (
    "An emergency clinician opened your study without your consent. It is recorded and the "
    "site must review it."
)
#: What a batched record means, shown beside each one.
BATCHED_TEXT = (
    "Recorded by the gateway in a batch whose fingerprint (a Merkle root) is on the chain: "
    "this record can be proven part of that batch. The gateway, not the chain, checked your "
    "consent for it."
)
_SERIES = (("granted", "released", "#2b6cb0"), ("denied", "refused", "#a0a0a0"),
           ("break_glass", "break-glass", "#c53030"))  # fmt: skip

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1a202c;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem}
.meta{color:#4a5568;font-size:.9rem}.summary{font-size:1.1rem}
.alert{background:#fff5f5;border-left:.4rem solid #c53030;padding:.6rem 1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #e2e8f0;padding:.4rem .5rem;text-align:left;vertical-align:top}
th{background:#edf2f7}td:first-child{white-space:nowrap}
tr.break-glass td{background:#fed7d7}
tr.break-glass td:first-child{border-left:.4rem solid #c53030}
.tag{display:inline-block;border-radius:.3rem;padding:0 .4rem;font-size:.8rem;font-weight:600}
.tag.released{background:#bee3f8}.tag.refused{background:#e2e8f0}
.tag.break-glass{background:#c53030;color:#fff}.tag.batched{background:#fefcbf}
.note{color:#4a5568;font-size:.85rem}
code{font-size:.8rem;word-break:break-all}
img.plot{max-width:100%;height:auto;border:1px solid #e2e8f0}
"""


def _code(value: str) -> str:
    return f"<code>{escape(value)}</code>"


def _study(scope: bytes) -> str:
    return "all your studies" if scope == ALL_STUDIES else "study " + _code("0x" + scope.hex())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _summary(tally: Counts, flagged: int) -> str:
    total = tally.released + tally.refused + tally.break_glass
    if total == 0:
        return (
            '<p class="summary">Nobody has asked for your images: no access, refusal or '
            "emergency access is recorded.</p>"
        )
    text = (
        f'<p class="summary">{escape(_plural(total, "request"))} for your images: '
        f"<strong>{tally.released}</strong> released with your consent, "
        f"<strong>{tally.refused}</strong> refused, "
        f"<strong>{tally.break_glass}</strong> emergency (break-glass) "
        f"{'access' if tally.break_glass == 1 else 'accesses'}.</p>"
    )
    if tally.batched:
        text += f'<p class="note">{_plural(tally.batched, "record")} of these came in batches.</p>'
    if flagged:
        text += f'<p class="alert"><strong>{_plural(flagged, "emergency access")}</strong>: '
        text += f"{escape(BREAK_GLASS_TEXT)}</p>"
    return text


def _grant_sentence(grant: Grant, now: int) -> str:
    purposes = ", ".join(
        purpose_label(p, p.value) for p in sorted(grant.purposes, key=lambda p: p.value)
    )
    data = "identified images" if grant.identified else "de-identified images only"
    start = f"from {iso_utc(grant.not_before)}" if grant.not_before else "from the start"
    end = f"until {iso_utc(grant.expires_at)}" if grant.expires_at else "with no end date"
    return (
        f"<li>{_code(grant.grantee)} may see {_study(grant.scope)} for {escape(purposes)}; "
        f"{escape(data)}, {escape(start)} {escape(end)} "
        f"(<strong>{escape(grant_status(grant, now))}</strong>).</li>"
    )


def _grants(trail: AuditTrail) -> str:
    if not trail.grants:
        return "<p>You have no consent in place: nobody may see your images with your consent.</p>"
    items = "".join(_grant_sentence(g, trail.now) for g in trail.grants)
    return f"<ul>{items}</ul>"


def _access_cells(event: AccessEvent) -> tuple[str, str, str, str]:
    label = outcome(event)
    what = f'<span class="tag {label}">{escape(label)}</span>'
    notes: list[str] = []
    if event.kind == "break_glass":
        notes.append(escape(BREAK_GLASS_TEXT))
    elif event.kind == "denied":
        notes.append("Refused, nothing was sent: " + escape(refusal_reason(event)) + ".")
    else:
        data = "identified" if event.identified else "de-identified"
        notes.append(f"Released ({escape(data)} images) under your consent.")
    if event.batched:
        what += ' <span class="tag batched">batched</span>'
        notes.append(escape(BATCHED_TEXT))
    why = escape(purpose_label(event.purpose, event.purpose_code))
    return what, _code(event.accessor), why, " ".join(notes)


def _consent_cells(event: ConsentEvent) -> tuple[str, str, str, str]:
    why = ", ".join(
        purpose_label(p, p.value) for p in sorted(event.purposes, key=lambda p: p.value)
    )
    note = f"Changed by {escape(event.acted_by)}."
    if event.kind == "granted":
        note = ("Identified" if event.identified else "De-identified") + " images. " + note
    return escape(event.label), _code(event.grantee), escape(why), note


def _row(item: AuditItem) -> str:
    if isinstance(item, AccessEvent):
        what, who, why, notes = _access_cells(item)
        study = _code("0x" + item.study_key.hex())
        css = ' class="break-glass"' if item.kind == "break_glass" else ""
    else:
        what, who, why, notes = _consent_cells(item)
        study, css = _study(item.scope), ""
    cells = (escape(iso_utc(item.timestamp)), what, who, study, why, notes, _code(item.tx_hash))
    return f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _events(trail: AuditTrail) -> str:
    items = newest_first(trail)
    if not items:
        return "<p>No consent change and no access is recorded yet.</p>"
    head = "".join(
        f'<th scope="col">{h}</th>'
        for h in ("When (UTC)", "What happened", "Who", "Study", "Why", "What it means", "Record")
    )
    rows = "".join(_row(item) for item in items)
    return f'<table id="events"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def buckets(timestamps: list[int]) -> tuple[str, timedelta]:
    """The bucket for a plot of ``timestamps``: by hour within two days, by day within 120
    days, by week within three years, else by 30 days. Returns its name and length."""
    span = max(timestamps) - min(timestamps) if timestamps else 0
    for limit, name, length in (
        (2 * 86400, "hour", timedelta(hours=1)),
        (120 * 86400, "day", timedelta(days=1)),
        (3 * 365 * 86400, "week", timedelta(weeks=1)),
    ):
        if span <= limit:
            return name, length
    return "30 days", timedelta(days=30)


def _tallies(
    accesses: tuple[AccessEvent, ...], length: timedelta
) -> tuple[datetime, dict[str, dict[int, int]]]:
    """The first bucket's start, and per outcome kind the count in each bucket (by index)."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = datetime.fromtimestamp(min(e.timestamp for e in accesses), timezone.utc)
    start = epoch + (first - epoch) // length * length
    tallies: dict[str, dict[int, int]] = {kind: {} for kind, _, _ in _SERIES}
    for event in accesses:
        slot = (datetime.fromtimestamp(event.timestamp, timezone.utc) - start) // length
        tallies[event.kind][slot] = tallies[event.kind].get(slot, 0) + 1
    return start, tallies


def _bar_style(kind: str, colour: str) -> dict[str, Any]:
    """Break-glass bars stand out by colour, a dark edge and hatching (not by colour alone)."""
    if kind == "break_glass":
        return {"facecolor": colour, "edgecolor": "#742a2a", "hatch": "//", "linewidth": 1.5}
    return {"facecolor": colour, "edgecolor": colour, "linewidth": 0}


def _plot(accesses: tuple[AccessEvent, ...]) -> tuple[str, str]:
    """A PNG bar chart of accesses per bucket, one series per outcome; (data URI, alt text)."""
    import numpy as np
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    name, length = buckets([e.timestamp for e in accesses])
    start, tallies = _tallies(accesses, length)
    slots = range(max(max(t, default=0) for t in tallies.values()) + 1)
    centres = [start + length * i + length / 2 for i in slots]
    x = np.array([int(c.timestamp()) for c in centres], dtype="datetime64[s]")
    width = np.timedelta64(int(length.total_seconds() * 0.8), "s")
    buffer = io.BytesIO()
    with rc_context({"date.converter": "concise"}):
        figure = Figure(figsize=(9, 3.2), dpi=100, layout="constrained")
        axes = figure.add_subplot()
        bottom = [0] * len(slots)
        for kind, _, colour in _SERIES:
            heights = [tallies[kind].get(i, 0) for i in slots]
            drawn = [i for i in slots if heights[i]]  # an empty bar would still draw its edge
            if drawn:
                axes.bar(
                    x[drawn], [heights[i] for i in drawn], width,
                    bottom=[bottom[i] for i in drawn], **_bar_style(kind, colour),
                )  # fmt: skip
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for i in slots:
            if tallies["break_glass"].get(i):
                axes.annotate("break-glass", (x[i], bottom[i]), xytext=(0, 3),
                              textcoords="offset points", ha="center", color="#c53030",
                              fontweight="bold", fontsize=9)  # fmt: skip
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylim(0, max(bottom) * 1.25 + 0.5)
        axes.set_ylabel(f"requests per {name}")
        axes.set_title(f"Requests for your images per {name} (UTC)")
        legend = [Patch(label=label, **_bar_style(kind, colour)) for kind, label, colour in _SERIES]
        axes.legend(handles=legend, loc="upper left", frameon=False, ncols=3)
        figure.savefig(buffer, format="png", metadata={"Software": None})
    tally = {kind: sum(t.values()) for kind, t in tallies.items()}
    alt = (
        f"Bar chart of requests per {name}: {tally['granted']} released, "
        f"{tally['denied']} refused, {tally['break_glass']} break-glass."
    )
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), alt


def _plot_section(trail: AuditTrail) -> str:
    if not trail.accesses:
        return "<p>No access to plot yet.</p>"
    uri, alt = _plot(trail.accesses)
    return f'<img class="plot" id="plot" src="{escape(uri)}" alt="{escape(alt)}">'


def audit_html(trail: AuditTrail, generated_at: int | None = None) -> str:
    """The trail as one self-contained HTML page for the patient.

    Args:
        trail: The patient's audit trail.
        generated_at: When the report was made (unix seconds); not shown if not given.
    """
    made = f" Made {escape(iso_utc(generated_at))}." if generated_at is not None else ""
    sections = (
        f"<h1>Who saw my images, when, why, and what happened</h1>"
        f'<p class="meta">Patient account {_code(trail.patient)}.{made} '
        f"{escape(source_line(trail))}</p>"
        f"<h2>In short</h2>{_summary(counts(trail), trail.flagged)}"
        f"<h2>Your consents now</h2>{_grants(trail)}"
        f"<h2>Requests over time</h2>{_plot_section(trail)}"
        f"<h2>Every event, newest first</h2>{_events(trail)}"
        "<h2>What the words mean</h2><dl>"
        f"<dt><strong>released</strong></dt><dd>Your images were sent to the requester under a "
        "consent you gave, for the purpose shown.</dd>"
        "<dt><strong>refused</strong></dt><dd>Someone asked and nothing was sent, because no "
        "consent of yours covered the request (or it had ended or been withdrawn).</dd>"
        f"<dt><strong>break-glass</strong></dt><dd>{escape(BREAK_GLASS_TEXT)}</dd>"
        f"<dt><strong>batched</strong></dt><dd>{escape(BATCHED_TEXT)}</dd>"
        "<dt><strong>Record</strong></dt><dd>The blockchain transaction that holds the event; "
        "anyone can look it up.</dd></dl>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>Who saw my images: {escape(trail.patient)}</title>"
        f"<style>{_STYLE}</style></head><body>{sections}</body></html>\n"
    )
