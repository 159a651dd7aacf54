"""What commenters read, in English and Welsh: a small message catalogue for the embed, the
mail commenters get and the pages its links open.

A language is chosen by the host page (its ``lang`` or a ``data-lang``), passed to the fragment as
``?lang=``; a comment keeps the language of the form it was sent from, for its mail. Unknown
languages fall back to English. Field error messages from validation are in English; Welsh pages
show the catalogue's message for the field instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Callable, Mapping

DEFAULT_LANGUAGE = "en"

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "comments_count_0": "No comments yet",
        "comments_count_1": "1 comment",
        "comments_count_n": "{n} comments",
        "no_comments": "There are no comments yet.",
        "official_badge": "Blog team",
        "reply": "Reply",
        "reply_hidden": "to {name}",
        "replying_to": "Replying to {name}.",
        "cancel_reply": "Cancel reply",
        "show_more": "Show more comments",
        "closed": "Comments are closed on this post.",
        "closes_on": "Comments close on {when}.",
        "opens_on": "Comments open on {when}.",
        "at_time": "{date} at {time}",
        # What a banned sender is told where the site refuses bans openly and gave no text.
        "banned": "You cannot comment on this blog.",
        "form_heading": "Leave a comment",
        "error_summary_title": "There is a problem",
        "error_prefix": "Error:",
        "name_label": "Name",
        "email_label": "Email address",
        "privacy_hint": "We only ask for your email address so we know you're a real person.",
        "privacy_link": "Read our privacy notice",
        "not_published": "We will not publish it.",
        "body_label": "Comment",
        "characters_limit": "You can enter up to {n} characters",
        "characters_left": "You have {n} characters remaining",
        "characters_over": "You have {n} characters too many",
        "submit": "Submit comment",
        "sending": "Sending your comment…",
        "moderation_note": "Comments are checked by the blog team before they are published.",
        "received": "Thank you. Your comment will be published once a moderator has approved it.",
        "received_check_email": (
            "Thank you. Your comment will be published once a moderator has approved it. If we "
            "have sent you an email, check your email and open its link to confirm your address "
            "first: until then, the moderators do not see your comment."
        ),
        "notify_legend": "Email me (optional)",
        "notify_label": "when my comment is approved or rejected",
        "notify_replies_label": "when someone replies to my comment",
        "failed": "Your comment could not be sent. Check your connection and try again.",
        "back_to": "Back to {title}",
        "the_post": "the post",
        "page_title": "Comments",
        "page_title_on": "Comments on {title}",
        "error_title_prefix": "Error: ",
        "loading": "Loading comments…",
        "load_failed": "Comments could not be loaded.",
        "iframe_title": "Comments",
        "unsent_intro": (
            "Your comment has not been sent. It is below, as you wrote it: send it again in a "
            "moment, or copy it to keep it."
        ),
        "unsent_label": "Your comment",
        "send_again": "Send your comment again",
        "problem_continues": "If the problem continues, contact the blog team.",
        "go_back": "Go back and try again. If the problem continues, contact the blog team.",
        "skip_link": "Skip to main content",
        "skip_to_form": "Skip to the comment form",
        "error_count_1": "1 error",
        "error_count_n": "{n} errors",
        "wait_seconds": "You can send another comment in {n} seconds.",
        "wait_minutes": "You can send another comment in {n} minutes.",
        "reply_received": (
            "Thank you. Your reply will be published once a moderator has approved it."
        ),
        "reply_received_check_email": (
            "Thank you. Your reply will be published once a moderator has approved it. If we "
            "have sent you an email, check your email and open its link to confirm your address "
            "first: until then, the moderators do not see your reply."
        ),
        # Pinned comments and permalinks; the commenter's own comment, shown to them only.
        "pinned_badge": "Pinned by the blog team",
        "first_comments": "Show the first comments",
        "awaiting_moderation": "Your comment, awaiting moderation",
        # Readers' reports of published comments (moderation/reports.py).
        "report": "Report",
        "report_hidden": "the comment by {name}",
        "report_title": "Report a comment",
        "report_comment_by": "The comment by {name}",
        "report_intro": (
            "Tell the blog team what is wrong with this comment. We do not ask who you are."
        ),
        "report_legend": "Why are you reporting this comment?",
        "report_reason_personal_data": "It contains someone's personal information",
        "report_reason_abusive": "It is abusive or offensive",
        "report_reason_spam": "It is spam or advertising",
        "report_reason_off_topic": "It is off topic",
        "report_reason_other": "Something else",
        "report_detail_label": "More detail (optional)",
        "report_detail_hint": "Up to 500 characters.",
        "report_submit": "Send report",
        "report_received": ("Thank you for your report. The blog team will look at the comment."),
        "report_rate_limited": (
            "You have sent several reports in a short time. Wait a little, then try again."
        ),
        # Mail to commenters (confirm, approved, rejected, reply) and the pages of its links.
        "mail_why": "You are receiving this because you asked to be told about your comment.",
        "mail_stop": "Stop these emails",
        "mail_on": "on",
        "mail_confirm_subject": "Confirm your email address to send your comment to {site}",
        "mail_confirm_title": "Confirm your email address",
        "mail_confirm_thanks": "Thank you for your comment on {site}.",
        "mail_confirm_ask": (
            "To send it to the moderators, confirm that this is your email address:"
        ),
        "mail_confirm_button": "Confirm my email address",
        "mail_confirm_once": (
            "The link works once, for {hours} hours. If you did not write this comment, ignore "
            "this email: the comment will be deleted."
        ),
        "mail_approved_subject": "Your comment on {title} is published",
        "mail_approved_title": "Your comment is published",
        "mail_approved_text": "Your comment on {site} has been approved and published.",
        "mail_see_it": "See it on the post",
        "mail_rejected_subject": "Your comment on {title} was not published",
        "mail_rejected_title": "Your comment was not published",
        "mail_rejected_text": "Your comment on {site} was not published.",
        "mail_reason": "The reason, from our comment policy: {reason}",
        "mail_read_policy": "Read our comment policy",
        "mail_reply_subject": "A reply to your comment on {title}",
        "mail_reply_title": "A reply to your comment",
        "mail_reply_official": "The blog team replied to your comment on {site}.",
        "mail_reply_someone": "Someone replied to your comment on {site}.",
        "mail_read_reply": "Read the reply on the post",
        "confirmed_heading": "Thank you: your email address is confirmed",
        "confirmed_published": "Your comment is published.",
        "confirmed_queued": (
            "Your comment has gone to the moderators. It will be published once one of them has "
            "approved it."
        ),
        "back_to_post": "Back to the post",
        "confirm_wrote": "Confirm that you wrote this comment on {site}:",
        "unsubscribe_title": "Stop emails about your comments",
        "unsubscribe_heading": "Stop emails about your comments?",
        "unsubscribe_explain": (
            "You will no longer be told when your comments on this blog are approved, rejected or "
            "replied to."
        ),
        "unsubscribed_heading": "You will get no more emails about your comments",
        "unsubscribed_again": "You can ask for them again when you next comment.",
        # Why a mailed link did not work (links.BadLink).
        "link_forged": "This link is not valid. Check that you copied all of it.",
        "link_expired": "This link has expired.",
        "link_used": "This link has already been used.",
        "link_not_yours": "You can no longer moderate this comment.",
        "link_confirm_gone": "This comment is no longer waiting: it was not confirmed in time.",
        "link_confirm_used": "This link has already been used: your comment is confirmed.",
        "link_unsubscribe_gone": "There is nothing to unsubscribe from any more.",
    },
    "cy": {
        "comments_count_0": "Dim sylwadau eto",
        "comments_count_1": "1 sylw",
        "comments_count_n": "{n} sylw",
        "no_comments": "Does dim sylwadau eto.",
        "official_badge": "Tîm y blog",
        "reply": "Ateb",
        "reply_hidden": "{name}",
        "replying_to": "Yn ateb {name}.",
        "cancel_reply": "Canslo'r ateb",
        "show_more": "Dangos rhagor o sylwadau",
        "closed": "Mae'r sylwadau ar gau ar y blogbost hwn.",
        "closes_on": "Bydd y sylwadau'n cau ar {when}.",
        "opens_on": "Bydd y sylwadau'n agor ar {when}.",
        "at_time": "{date} am {time}",
        "banned": "Ni allwch adael sylwadau ar y blog hwn.",
        "form_heading": "Gadael sylw",
        "error_summary_title": "Mae problem wedi codi",
        "error_prefix": "Gwall:",
        "name_label": "Enw",
        "email_label": "Cyfeiriad e-bost",
        "privacy_hint": (
            "Dim ond er mwyn i ni wybod eich bod yn berson go iawn yr ydym yn gofyn am eich "
            "cyfeiriad e-bost."
        ),
        "privacy_link": "Darllenwch ein hysbysiad preifatrwydd",
        "not_published": "Ni fyddwn yn ei gyhoeddi.",
        "body_label": "Sylw",
        "characters_limit": "Gallwch roi hyd at {n} nod",
        "characters_left": "Mae gennych {n} nod yn weddill",
        "characters_over": "Mae gennych {n} nod yn ormod",
        "submit": "Cyflwyno sylw",
        "sending": "Yn anfon eich sylw…",
        "moderation_note": "Mae tîm y blog yn gwirio sylwadau cyn eu cyhoeddi.",
        "received": (
            "Diolch. Bydd eich sylw yn cael ei gyhoeddi unwaith y bydd cymedrolwr "
            "wedi'i gymeradwyo."
        ),
        "received_check_email": (
            "Diolch. Bydd eich sylw yn cael ei gyhoeddi unwaith y bydd cymedrolwr wedi'i "
            "gymeradwyo. Os ydym wedi anfon e-bost atoch, gwiriwch eich e-bost ac agorwch y "
            "ddolen ynddo i gadarnhau eich cyfeiriad yn gyntaf: tan hynny, ni fydd y "
            "cymedrolwyr yn gweld eich sylw."
        ),
        "notify_legend": "Anfonwch e-bost ataf (dewisol)",
        "notify_label": "pan fydd fy sylw yn cael ei gymeradwyo neu ei wrthod",
        "notify_replies_label": "pan fydd rhywun yn ateb fy sylw",
        "failed": (
            "Nid oedd modd anfon eich sylw. Gwiriwch eich cysylltiad a rhowch gynnig arall arni."
        ),
        "back_to": "Yn ôl i {title}",
        "the_post": "y blogbost",
        "page_title": "Sylwadau",
        "page_title_on": "Sylwadau ar {title}",
        "error_title_prefix": "Gwall: ",
        "loading": "Yn llwytho sylwadau…",
        "load_failed": "Nid oedd modd llwytho'r sylwadau.",
        "iframe_title": "Sylwadau",
        "unsent_intro": (
            "Nid yw eich sylw wedi'i anfon. Mae isod, fel y gwnaethoch ei ysgrifennu: anfonwch ef "
            "eto mewn munud, neu copïwch ef i'w gadw."
        ),
        "unsent_label": "Eich sylw",
        "send_again": "Anfon eich sylw eto",
        "problem_continues": "Os bydd y broblem yn parhau, cysylltwch â thîm y blog.",
        "go_back": (
            "Ewch yn ôl a rhowch gynnig arall arni. Os bydd y broblem yn parhau, cysylltwch â "
            "thîm y blog."
        ),
        "skip_link": "Neidio i'r prif gynnwys",
        "skip_to_form": "Neidio i'r ffurflen sylwadau",
        "error_count_1": "1 gwall",
        "error_count_n": "{n} gwall",
        "wait_seconds": "Gallwch anfon sylw arall ymhen {n} eiliad.",
        "wait_minutes": "Gallwch anfon sylw arall ymhen {n} munud.",
        "reply_received": (
            "Diolch. Bydd eich ateb yn cael ei gyhoeddi unwaith y bydd cymedrolwr "
            "wedi'i gymeradwyo."
        ),
        "reply_received_check_email": (
            "Diolch. Bydd eich ateb yn cael ei gyhoeddi unwaith y bydd cymedrolwr wedi'i "
            "gymeradwyo. Os ydym wedi anfon e-bost atoch, gwiriwch eich e-bost ac agorwch y "
            "ddolen ynddo i gadarnhau eich cyfeiriad yn gyntaf: tan hynny, ni fydd y "
            "cymedrolwyr yn gweld eich ateb."
        ),
        "pinned_badge": "Wedi'i binio gan dîm y blog",
        "first_comments": "Dangos y sylwadau cyntaf",
        "awaiting_moderation": "Eich sylw, yn aros i gael ei gymedroli",
        "report": "Rhoi gwybod",
        "report_hidden": "am y sylw gan {name}",
        "report_title": "Rhoi gwybod am sylw",
        "report_comment_by": "Y sylw gan {name}",
        "report_intro": (
            "Dywedwch wrth dîm y blog beth sydd o'i le ar y sylw hwn. Nid ydym yn gofyn pwy "
            "ydych chi."
        ),
        "report_legend": "Pam ydych chi'n rhoi gwybod am y sylw hwn?",
        "report_reason_personal_data": "Mae'n cynnwys gwybodaeth bersonol rhywun",
        "report_reason_abusive": "Mae'n sarhaus neu'n dramgwyddus",
        "report_reason_spam": "Sbam neu hysbyseb ydyw",
        "report_reason_off_topic": "Nid yw'n berthnasol i'r blogbost",
        "report_reason_other": "Rhywbeth arall",
        "report_detail_label": "Rhagor o fanylion (dewisol)",
        "report_detail_hint": "Hyd at 500 nod.",
        "report_submit": "Anfon adroddiad",
        "report_received": ("Diolch am roi gwybod. Bydd tîm y blog yn edrych ar y sylw."),
        "report_rate_limited": (
            "Rydych wedi anfon sawl adroddiad mewn amser byr. Arhoswch ychydig, yna rhowch "
            "gynnig arall arni."
        ),
        "mail_why": "Rydych yn cael yr e-bost hwn am i chi ofyn am gael gwybod am eich sylw.",
        "mail_stop": "Atal y negeseuon e-bost hyn",
        "mail_on": "ar",
        "mail_confirm_subject": "Cadarnhewch eich cyfeiriad e-bost i anfon eich sylw at {site}",
        "mail_confirm_title": "Cadarnhewch eich cyfeiriad e-bost",
        "mail_confirm_thanks": "Diolch am eich sylw ar {site}.",
        "mail_confirm_ask": (
            "I'w anfon at y cymedrolwyr, cadarnhewch mai dyma eich cyfeiriad e-bost:"
        ),
        "mail_confirm_button": "Cadarnhau fy nghyfeiriad e-bost",
        "mail_confirm_once": (
            "Mae'r ddolen yn gweithio unwaith, am {hours} awr. Os nad chi ysgrifennodd y sylw hwn, "
            "anwybyddwch yr e-bost hwn: bydd y sylw yn cael ei ddileu."
        ),
        "mail_approved_subject": "Mae eich sylw ar {title} wedi'i gyhoeddi",
        "mail_approved_title": "Mae eich sylw wedi'i gyhoeddi",
        "mail_approved_text": "Mae eich sylw ar {site} wedi'i gymeradwyo a'i gyhoeddi.",
        "mail_see_it": "Ei weld ar y blogbost",
        "mail_rejected_subject": "Ni chafodd eich sylw ar {title} ei gyhoeddi",
        "mail_rejected_title": "Ni chafodd eich sylw ei gyhoeddi",
        "mail_rejected_text": "Ni chafodd eich sylw ar {site} ei gyhoeddi.",
        "mail_reason": "Y rheswm, o'n polisi sylwadau: {reason}",
        "mail_read_policy": "Darllenwch ein polisi sylwadau",
        "mail_reply_subject": "Ateb i'ch sylw ar {title}",
        "mail_reply_title": "Ateb i'ch sylw",
        "mail_reply_official": "Mae tîm y blog wedi ateb eich sylw ar {site}.",
        "mail_reply_someone": "Mae rhywun wedi ateb eich sylw ar {site}.",
        "mail_read_reply": "Darllen yr ateb ar y blogbost",
        "confirmed_heading": "Diolch: mae eich cyfeiriad e-bost wedi'i gadarnhau",
        "confirmed_published": "Mae eich sylw wedi'i gyhoeddi.",
        "confirmed_queued": (
            "Mae eich sylw wedi mynd at y cymedrolwyr. Bydd yn cael ei gyhoeddi unwaith y bydd un "
            "ohonynt wedi'i gymeradwyo."
        ),
        "back_to_post": "Yn ôl i'r blogbost",
        "confirm_wrote": "Cadarnhewch mai chi ysgrifennodd y sylw hwn ar {site}:",
        "unsubscribe_title": "Atal negeseuon e-bost am eich sylwadau",
        "unsubscribe_heading": "Atal negeseuon e-bost am eich sylwadau?",
        "unsubscribe_explain": (
            "Ni fyddwch yn cael gwybod mwyach pan fydd eich sylwadau ar y blog hwn yn cael eu "
            "cymeradwyo, eu gwrthod neu eu hateb."
        ),
        "unsubscribed_heading": "Ni fyddwch yn cael rhagor o negeseuon e-bost am eich sylwadau",
        "unsubscribed_again": "Gallwch ofyn amdanynt eto y tro nesaf y byddwch yn gadael sylw.",
        "link_forged": "Nid yw'r ddolen hon yn ddilys. Gwiriwch eich bod wedi copïo'r cyfan ohoni.",
        "link_expired": "Mae'r ddolen hon wedi dod i ben.",
        "link_used": "Mae'r ddolen hon eisoes wedi'i defnyddio.",
        "link_not_yours": "Ni allwch gymedroli'r sylw hwn mwyach.",
        "link_confirm_gone": (
            "Nid yw'r sylw hwn yn aros mwyach: ni chafodd ei gadarnhau mewn pryd."
        ),
        "link_confirm_used": (
            "Mae'r ddolen hon eisoes wedi'i defnyddio: mae eich sylw wedi'i gadarnhau."
        ),
        "link_unsubscribe_gone": "Nid oes dim i'w atal mwyach.",
    },
}

# What went wrong, for an error page the embed's form led to, by the error's code (the "code" of
# the JSON error shape). English pages show the service's own message instead.
ERROR_MESSAGES: dict[str, dict[str, str]] = {
    "cy": {
        "malformed": "Nid oedd modd darllen y cais.",
        "not_found": "Heb ei ganfod.",
        "origin_not_allowed": "Nid yw'r wefan hon yn derbyn sylwadau o'r cyfeiriad hwnnw.",
        "thread_closed": CATALOGUE["cy"]["closed"],
        "too_large": "Mae'r cais yn rhy fawr.",
        # The embed's limit on comments (screening.RATE_LIMITED), not the login's on attempts.
        "rate_limited": (
            "Rydych wedi anfon sawl sylw mewn amser byr. Arhoswch ychydig, yna rhowch gynnig arall "
            "arni."
        ),
        "internal_error": (
            "Aeth rhywbeth o'i le ar ein hochr ni. Rhowch gynnig arall arni yn nes ymlaen."
        ),
        "unavailable": (
            "Nid yw'r gwasanaeth ar gael am eiliad. Rhowch gynnig arall arni cyn bo hir."
        ),
        "storage_full": (
            "Ni all y gwasanaeth gadw unrhyw beth ar hyn o bryd. Rhowch gynnig arall arni yn nes "
            "ymlaen."
        ),
    },
}

# Field errors in languages other than English: one plain instruction per field.
FIELD_ERRORS: dict[str, dict[str, str]] = {
    "cy": {
        "author_name": "Rhowch eich enw",
        "author_email": "Rhowch gyfeiriad e-bost yn y fformat cywir, fel enw@enghraifft.com",
        "body": "Rhowch eich sylw (hyd at 10,000 nod)",
        "parent_id": "Nid oes modd dod o hyd i'r sylw rydych yn ei ateb",
        "post_url": "Rhaid i gyfeiriad y blogbost fod ar y wefan hon",
        "post_title": "Rhaid i deitl y blogbost fod yn 300 nod neu lai",
        "post": "Rhowch y blogbost",
        "reason": "Dewiswch pam rydych yn rhoi gwybod am y sylw hwn",
        "detail": "Rhaid i'r manylion fod yn 500 nod neu lai",
    }
}


# Month names for dates in a reader's language (strftime's %B follows the process's locale).
MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December",
    ),
    "cy": (
        "Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf", "Awst", "Medi",
        "Hydref", "Tachwedd", "Rhagfyr",
    ),
}  # fmt: skip
DEFAULT_TIME_ZONE = "Europe/London"


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA zone names this system knows (read once: it walks the zone database)."""
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def time_zone(name: str | None) -> dt.tzinfo:
    """A zone by its IANA name; an unknown one (never stored: sites.py checks) is UK time."""
    for candidate in (name or DEFAULT_TIME_ZONE, DEFAULT_TIME_ZONE):
        if candidate in time_zones():
            return zoneinfo.ZoneInfo(candidate)
    return dt.UTC  # pragma: no cover - a system without zone data


def local_date_time(moment: dt.datetime, zone: str | None, lang: str) -> str:
    """ "12 March 2026 at 23:59" in the zone's local time, in the reader's language."""
    local = moment.astimezone(time_zone(zone))
    month = MONTHS.get(language(lang), MONTHS[DEFAULT_LANGUAGE])[local.month - 1]
    return translator(lang)(
        "at_time", date=f"{local.day} {month} {local.year}", time=f"{local:%H:%M}"
    )


def language(raw: str | None) -> str:
    """The catalogue language for a ``lang`` value like ``cy``, ``cy-GB`` or ``en``."""
    primary = (raw or "").strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in CATALOGUE else DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)`` for one language; a key missing in it falls back to English."""
    messages = CATALOGUE[language(lang)]
    english = CATALOGUE[DEFAULT_LANGUAGE]

    def t(key: str, **values: object) -> str:
        text = messages.get(key) or english[key]
        return text.format(**values) if values else text

    return t


def error_message(lang: str, code: str, english: str, key: str | None = None) -> str:
    """An error's message in ``lang``: the catalogue's ``key`` where the error names one, else
    by its code; ``english`` (the service's own) when there is none."""
    if key is not None:
        return translator(lang)(key)
    return ERROR_MESSAGES.get(language(lang), {}).get(code, english)


def count_label(lang: str, n: int) -> str:
    t = translator(lang)
    if n == 0:
        return t("comments_count_0")
    if n == 1:
        return t("comments_count_1")
    return t("comments_count_n", n=n)


def field_errors(lang: str, errors: Mapping[str, str]) -> dict[str, str]:
    """Field errors in the page's language (English messages are already specific)."""
    local = FIELD_ERRORS.get(language(lang), {})
    return {name: local.get(name, message) for name, message in errors.items()}
