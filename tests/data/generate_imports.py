"""Write large, real-shaped WordPress (WXR 1.2) and Disqus exports for import tests and
measurements.

    python -m tests.data.generate_imports wordpress big.xml --posts 10000 --comments 30
    python -m tests.data.generate_imports disqus big.xml --posts 10000 --comments 30

Posts carry bodies of ``--body-kb`` KB (real WXR files are mostly post content). Comments mix
statuses, nest replies (some written before their parent), and include pingbacks, non-ASCII text
and markup for the sanitiser. Files are written as they are generated, in bounded memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

ORIGIN = "https://levellingupadvisorycouncil.blog.gov.uk"
WORDS = [
    *("council", "town", "high", "street", "growth", "investment", "skills", "jobs"),
    *("transport", "housing", "community", "Merthyr", "Tudful", "café", "naïve", "Ødegård"),
    *("日本", "regeneration", "levelling", "up"),
]
START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _body(rng: random.Random) -> str:
    text = _sentence(rng, rng.randint(8, 30))
    roll = rng.random()
    if roll < 0.2:
        text += "\n\n" + _sentence(rng, 12) + " See https://example.gov.uk/report"
    elif roll < 0.25:
        text += ' <script>alert("x")</script><a href="javascript:alert(1)">x</a> <b>bold</b>'
    return text


def _filler(rng: random.Random, size: int, pool: list[str]) -> str:
    """A post body of about ``size`` bytes, from a pool of paragraphs (bodies are not imported)."""
    paragraphs = []
    total = 0
    while total < size:
        paragraph = rng.choice(pool)
        paragraphs.append(paragraph)
        total += len(paragraph.encode())
    return "".join(paragraphs)


def _comments(rng: random.Random, post: int, count: int, first_id: int) -> Iterator[dict[str, str]]:
    """Comments of one post: about a third are replies, and every tenth reply is written first."""
    made: list[dict[str, str]] = []
    for n in range(count):
        comment_id = first_id + n
        parent = "0"
        if made and rng.random() < 0.35:
            parent = rng.choice(made)["id"]
        moment = START + dt.timedelta(days=post % 3000, minutes=n * 7)
        status = rng.choices(["1", "0", "spam", "trash"], weights=[85, 5, 8, 2])[0]
        kind = "pingback" if rng.random() < 0.02 else "comment"
        made.append(
            {
                "id": str(comment_id),
                "parent": parent,
                "date": moment.strftime("%Y-%m-%d %H:%M:%S"),
                "iso": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "status": status,
                "kind": kind,
                "name": f"Reader {comment_id % 5000} Ølsen",
                "email": f"reader{comment_id % 5000}@example.com",
                "ip": f"203.0.{comment_id % 250}.{comment_id % 200}",
                "body": _body(rng),
            }
        )
    # A reply before its parent, as exports ordered by date sometimes have it.
    for index in range(1, len(made)):
        if made[index]["parent"] == made[index - 1]["id"] and rng.random() < 0.3:
            made[index - 1], made[index] = made[index], made[index - 1]
    yield from made


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def write_wordpress(
    out: TextIO, *, posts: int, comments: int, body_kb: int = 4, seed: int = 1
) -> int:
    """Write a WXR file; return how many comments it holds."""
    rng = random.Random(seed)
    out.write(
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:wfw="http://wellformedweb.org/CommentAPI/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">\n'
        "<channel>\n\t<title>Generated blog</title>\n\t<link>" + ORIGIN + "</link>\n"
        "\t<wp:wxr_version>1.2</wp:wxr_version>\n"
        f"\t<wp:base_site_url>{ORIGIN}</wp:base_site_url>\n"
    )
    written = 0
    next_id = 1
    pool = [f"<p>{_sentence(rng, 60)}</p>\n" for _ in range(64)]
    for post in range(1, posts + 1):
        day = START + dt.timedelta(days=post % 3000)
        path = f"/{day:%Y/%m/%d}/post-{post}/"
        out.write(
            "\t<item>\n"
            f"\t\t<title>{_cdata(f'Post {post}: ' + _sentence(rng, 5))}</title>\n"
            f"\t\t<link>{ORIGIN}{path}</link>\n"
            f"\t\t<dc:creator>{_cdata('editor')}</dc:creator>\n"
            f'\t\t<guid isPermaLink="false">{ORIGIN}/?p={post}</guid>\n'
            f"\t\t<content:encoded>{_cdata(_filler(rng, body_kb * 1024, pool))}</content:encoded>\n"
            f"\t\t<excerpt:encoded>{_cdata('')}</excerpt:encoded>\n"
            f"\t\t<wp:post_id>{post}</wp:post_id>\n"
            f"\t\t<wp:post_date>{_cdata(f'{day:%Y-%m-%d} 09:00:00')}</wp:post_date>\n"
            f"\t\t<wp:post_date_gmt>{_cdata(f'{day:%Y-%m-%d} 09:00:00')}</wp:post_date_gmt>\n"
            f"\t\t<wp:comment_status>{_cdata('open')}</wp:comment_status>\n"
            f"\t\t<wp:status>{_cdata('publish')}</wp:status>\n"
            f"\t\t<wp:post_type>{_cdata('post')}</wp:post_type>\n"
        )
        for c in _comments(rng, post, comments, next_id):
            out.write(
                "\t\t<wp:comment>\n"
                f"\t\t\t<wp:comment_id>{c['id']}</wp:comment_id>\n"
                f"\t\t\t<wp:comment_author>{_cdata(c['name'])}</wp:comment_author>\n"
                f"\t\t\t<wp:comment_author_email>{_cdata(c['email'])}</wp:comment_author_email>\n"
                "\t\t\t<wp:comment_author_url></wp:comment_author_url>\n"
                f"\t\t\t<wp:comment_author_IP>{_cdata(c['ip'])}</wp:comment_author_IP>\n"
                f"\t\t\t<wp:comment_date>{_cdata(c['date'])}</wp:comment_date>\n"
                f"\t\t\t<wp:comment_date_gmt>{_cdata(c['date'])}</wp:comment_date_gmt>\n"
                f"\t\t\t<wp:comment_content>{_cdata(c['body'])}</wp:comment_content>\n"
                f"\t\t\t<wp:comment_approved>{_cdata(c['status'])}</wp:comment_approved>\n"
                f"\t\t\t<wp:comment_type>{_cdata(c['kind'])}</wp:comment_type>\n"
                f"\t\t\t<wp:comment_parent>{c['parent']}</wp:comment_parent>\n"
                "\t\t\t<wp:comment_user_id>0</wp:comment_user_id>\n"
                "\t\t</wp:comment>\n"
            )
            written += 1
        next_id += comments
        out.write("\t</item>\n")
    out.write("</channel>\n</rss>\n")
    return written


def write_disqus(out: TextIO, *, posts: int, comments: int, seed: int = 1) -> int:
    """Write a Disqus export (threads after their posts, as Disqus sometimes orders them)."""
    rng = random.Random(seed)
    out.write(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals">\n'
        '  <category dsq:id="1"><forum>generated</forum><title>General</title>'
        "<isDefault>true</isDefault></category>\n"
    )
    written = 0
    next_id = 1
    for post in range(1, posts + 1):
        thread_id = 100000 + post
        for c in _comments(rng, post, comments, next_id):
            parent = (
                f'    <parent dsq:id="{int(c["parent"]) + 5000000}" />\n'
                if c["parent"] != "0"
                else ""
            )
            message = "".join(f"<p>{p}</p>" for p in c["body"].split("\n\n"))
            out.write(
                f'  <post dsq:id="{int(c["id"]) + 5000000}">\n    <id />\n'
                f"    <message>{_cdata(message)}</message>\n"
                f"    <createdAt>{c['iso']}</createdAt>\n"
                f"    <isDeleted>{'true' if c['status'] == 'trash' else 'false'}</isDeleted>\n"
                f"    <isSpam>{'true' if c['status'] == 'spam' else 'false'}</isSpam>\n"
                f"    <author><email>{c['email']}</email><name>{c['name']}</name>"
                "<isAnonymous>false</isAnonymous></author>\n"
                f"    <ipAddress>{c['ip']}</ipAddress>\n"
                f'    <thread dsq:id="{thread_id}" />\n{parent}  </post>\n'
            )
            written += 1
        next_id += comments
        day = START + dt.timedelta(days=post % 3000)
        out.write(
            f'  <thread dsq:id="{thread_id}">\n    <id>{post}</id>\n    <forum>generated</forum>\n'
            f"    <link>{ORIGIN}/{day:%Y/%m/%d}/post-{post}/</link>\n"
            f"    <title>Post {post}</title>\n    <createdAt>{day:%Y-%m-%dT09:00:00Z}</createdAt>\n"
            "    <isClosed>false</isClosed>\n    <isDeleted>false</isDeleted>\n  </thread>\n"
        )
    out.write("</disqus>\n")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=["wordpress", "disqus"])
    parser.add_argument("output", type=Path)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--comments", type=int, default=30, help="comments per post")
    parser.add_argument("--body-kb", type=int, default=4, help="WordPress post body size")
    args = parser.parse_args()
    with args.output.open("w", encoding="utf-8") as out:
        if args.kind == "wordpress":
            count = write_wordpress(
                out, posts=args.posts, comments=args.comments, body_kb=args.body_kb
            )
        else:
            count = write_disqus(out, posts=args.posts, comments=args.comments)
    size = args.output.stat().st_size
    print(f"{args.output}: {size / 1e6:.1f} MB, {args.posts} posts, {count} comments")


if __name__ == "__main__":
    main()
