"""Checks of a built results site (kdutils.report.site), shared by the site tests.

``static_problems``: what a reader offline would miss, read from the files (resources that are not in
the site, absolute paths). ``browser_problems``: every page opened in headless Chromium with every
request outside the site refused, then math typeset, images loaded, no console error.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

#: absolute paths of the machines the notebooks ran on must not be published
ABSOLUTE = re.compile(r"(?<![\w.~/])/(?:tmp|work|home|root|Users)/[\w.-]+")
_RESOURCE = re.compile(r'<(?:script|img|link)\b[^>]*?\b(?:src|href)="([^"]+)"', re.I)


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "assets" not in p.relative_to(site).parts)


def static_problems(site: Path) -> list[str]:
    problems = []
    for page in pages(site):
        text = page.read_text(encoding="utf-8")
        rel = page.relative_to(site)
        if rel.parts[0] in ("executed", "notebooks"):  # what a notebook printed (docs may name paths on purpose)
            for m in ABSOLUTE.finditer(text):
                problems.append(f"{rel}: absolute path {m.group(0)!r}")
        for url in _RESOURCE.findall(text):
            if url.startswith("data:"):
                continue
            if re.match(r"^[a-z]+://|^//", url):
                problems.append(f"{rel}: loads {url} from the network")
                continue
            target = (page.parent / unquote(urlparse(url).path)).resolve()
            if not target.exists():
                problems.append(f"{rel}: {url} is not in the site")
    return problems


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _serve(site: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


#: a page with a formula: the notebook source pages of 01-05 and every executed copy of them
MATH_PAGE = re.compile(r"(^|/)0[1-5]_[a-z_]+\.html$")


def browser_problems(site: Path, *, executable: str) -> tuple[list[str], dict]:
    """Open every page; returns (problems, counts: pages, pages with typeset math, images)."""
    from playwright.sync_api import sync_playwright

    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    counts = {"pages": 0, "math pages": 0, "images": 0}
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=flags)
            context = browser.new_context()
            refused: list[str] = []

            def route(r):
                if r.request.url.startswith(base):
                    r.continue_()
                else:
                    refused.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            for html_file in pages(site):
                rel = html_file.relative_to(site).as_posix()
                errors.clear()
                refused.clear()
                page.goto(base + rel, wait_until="load")
                page.wait_for_function(
                    "() => !window.MathJax || !MathJax.Hub || MathJax.Hub.queue.pending === 0 && "
                    "MathJax.Hub.queue.running === 0",
                    timeout=60_000,
                )
                page.wait_for_timeout(100)
                imgs = page.evaluate(
                    "() => Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
                )
                counts["images"] += len(imgs)
                problems += [f"{rel}: image {src[:80]} did not load" for src, ok in imgs if not ok]
                typeset = page.evaluate(
                    "() => document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_MathML, .MathJax_CHTML, mjx-container').length"
                )
                if MATH_PAGE.search(rel):
                    if not typeset:
                        problems.append(f"{rel}: no formula typeset by MathJax")
                    counts["math pages"] += 1
                if page.evaluate("() => !!document.querySelector('.MathJax_Error, .mjx-merror')"):
                    problems.append(f"{rel}: a formula MathJax could not typeset")
                problems += [f"{rel}: console error: {e[:200]}" for e in errors]
                problems += [f"{rel}: requested {u[:120]} outside the site" for u in refused]
                counts["pages"] += 1
            browser.close()
    finally:
        server.shutdown()
    return problems, counts
