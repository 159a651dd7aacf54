"""The monthly report page under /moderate/report, and its CSV (moderation.monthly_report).

Registered inside the moderate blueprint, so its login checks guard it. Every moderator may see
the report of the sites they moderate, as with the audit log it is counted from.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request
from flask.typing import ResponseReturnValue

from moderation import monthly_report
from moderation.monthly_report import Month
from moderation.web.context import now
from moderation.web.sessions import get_session

bp = Blueprint("report", __name__, url_prefix="/report")


@bp.get("/")
def show() -> ResponseReturnValue:
    db = get_session()
    sites = monthly_report.report_sites(db, g.moderator)
    slug = request.args.get("site") or (sites[0].slug if sites else "")
    if not slug:
        return render_template("moderate/report.html", report=None, sites=sites)
    moment = now()
    raw = request.args.get("month")
    month = Month.parse(raw) if raw else None
    report = monthly_report.monthly_report(db, g.moderator, slug, month, now=moment)
    if request.args.get("format") == "csv":
        name = f"report-{report.site_slug}-{report.month.value}.csv"
        return Response(
            monthly_report.report_csv(report),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return render_template(
        "moderate/report.html",
        report=report,
        sites=sites,
        duration=monthly_report.describe_duration,
        now=moment,
    )
