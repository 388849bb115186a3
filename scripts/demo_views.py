"""Says whether a running `make demo` shows the sites and routes views live,
and takes their screenshots at a desk's width and a phone's.

    make demo                                   # in one terminal
    .venv/bin/python scripts/demo_views.py      # in another (needs `make bootstrap-dev`: Playwright)
    .venv/bin/python scripts/demo_views.py --screenshots docs/screenshots

It logs in as admin / admin in headless Chromium (/usr/bin/chromium), opens
each view, and waits until an event of the view's kind arrives on the page's
socket and the page shows it: a `visit` on /sites/ (the visit's row), a
`journey` on /routes/ (the journey on top of its route's list). It checks too
that the page loaded nothing from another origin and, at 390 px, does not
scroll sideways. With --screenshots it writes {view}-desktop.png and
{view}-phone.png there. Exit status 0 when every view passed.
"""

import argparse
import json
import sys
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
WIDTHS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


def shown(view: str, event: dict) -> str | None:
    """The selector of what the page shows for an event of its kind, or None
    when the event is not one the view lists (a removed visit, a speeding mark)."""
    if view == "sites" and event.get("type") == "visit" and event.get("event") in ("opened", "closed"):
        return f'.visit-item[data-id="{event["visit"]["id"]}"]'
    if view == "routes" and event.get("type") == "journey" and event.get("event") == "completed":
        return f'.journey-item[data-id="{event["journey"]["id"]}"]'
    return None


def check(browser, base: str, view: str, width: str, args) -> list[str]:
    """What went wrong on one view at one width (nothing: it is live)."""
    context = browser.new_context(base_url=base, **WIDTHS[width])
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    def listed(payload) -> str | None:
        try:
            return shown(view, json.loads(payload))
        except (ValueError, TypeError, KeyError):
            return None

    problems = []
    try:
        page.goto(f"/login/?next=/{view}/")
        page.fill("#id_username", args.user)
        page.fill("#id_password", args.password)
        with page.expect_websocket(timeout=15000) as opened:
            page.press("#id_password", "Enter")
        socket = opened.value
        page.wait_for_selector('#connection[data-state="connected"]', timeout=15000)
        # The first event of the view's kind from now on, then the page showing it.
        try:
            with socket.expect_event("framereceived", predicate=listed, timeout=args.timeout * 1000) as frame:
                pass
            selector = listed(frame.value)
            page.wait_for_selector(selector, timeout=10000)
            print(f"  {view} at {width}: an event arrived and the page shows it ({selector})")
        except PlaywrightTimeout:
            problems.append(f"{view} at {width}: no {view} event shown within {args.timeout} s")
        if width == "phone":
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            if scroll > client:
                problems.append(f"{view} at 390 px scrolls sideways ({scroll} > {client})")
        foreign = [url for url in requests if not (url.startswith(base + "/") or url.startswith("data:"))]
        if foreign:
            problems.append(f"{view} loaded from elsewhere: {foreign[:3]}")
        if args.screenshots:
            page.wait_for_timeout(1000)  # charts finish their 250 ms animation
            path = Path(args.screenshots) / f"{view}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"  wrote {path}")
    except PlaywrightError as error:
        problems.append(f"{view} at {width}: {error.message.splitlines()[0]}")
    finally:
        context.close()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the demo server (default %(default)s)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--views", default="sites,routes", help="comma-separated (default %(default)s)")
    parser.add_argument("--timeout", type=int, default=180, help="seconds to wait for each view's first event")
    parser.add_argument("--screenshots", help="a directory for {view}-desktop.png and {view}-phone.png")
    args = parser.parse_args()
    if args.screenshots:
        Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    base = args.url.rstrip("/")
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for view in args.views.split(","):
                for width in WIDTHS:
                    problems += check(browser, base, view.strip(), width, args)
        finally:
            browser.close()
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(f"The demo at {base} shows {args.views.replace(',', ' and ')} live at 1280 and 390 px.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
