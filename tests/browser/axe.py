"""Accessibility checks in the browser with axe-core, vendored in ``vendor/``.

axe-core 4.14.1 (npm ``axe-core@4.14.1``, MPL-2.0), ``package/axe.min.js`` from
``npm pack axe-core@4``; sha256-KTSJmUUM3yhJqOcLeRL8LahahJ2jnA0NU5T1HUqe2Vw= as listed in
the package's sri-history.json. Its licences are beside it in ``vendor/``.

The portal's Content-Security-Policy allows scripts from its own origin only, so axe is
not added with a script tag: Playwright's ``evaluate`` runs through the DevTools protocol,
which the page's CSP does not govern.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from playwright.sync_api import expect

AXE_VERSION = "4.14.1"
AXE_SOURCE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
#: WCAG 2.0, 2.1 and 2.2, levels A and AA
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@cache
def _source() -> str:
    return AXE_SOURCE.read_text(encoding="utf-8")


def _runs_scripts(frame) -> bool:
    """False for a frame whose sandbox forbids script: trying would log a console error."""
    if frame.parent_frame is None:
        return True
    sandbox = frame.frame_element().get_attribute("sandbox")
    return sandbox is None or "allow-scripts" in sandbox.split()


def _inject(frame) -> bool:
    """Load axe into ``frame`` unless it is there already; False where nothing can run."""
    if not _runs_scripts(frame):
        return False
    try:
        if not frame.evaluate("typeof window.axe === 'object'"):
            frame.evaluate(_source())
        return frame.evaluate(f"window.axe && window.axe.version === '{AXE_VERSION}'")
    except Exception:  # a frame that went away, or one whose sandbox forbids any script
        return False


#: rules axe itself applies only to the top-level document, never inside a frame
TOP_LEVEL_ONLY = ["aria-hidden-body", "document-title", "html-has-lang", "meta-viewport"]


def check_accessibility(page, *, framed: bool = False) -> list[dict]:
    """Run axe on the page as it is now; returns axe's violations (WCAG 2.x A and AA).

    Frames that may run script are checked too. A sandboxed frame without
    ``allow-scripts`` (the portal's message body) cannot run axe: open its address as
    a page of its own and pass ``framed=True`` to leave out the rules axe applies only
    to a top-level document, as it would inside the frame.
    """
    # While htmx settles a swap, an element that kept its id wears the old one's classes
    # for a moment (htmx-request among them): check the page as it comes to rest.
    # (A locator, not wait_for_function: that compiles its predicate with eval, which the
    # portal's CSP forbids.)
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")
           ).to_have_count(0)
    for frame in page.frames:
        _inject(frame)
    rules = {rule: {"enabled": False} for rule in TOP_LEVEL_ONLY} if framed else {}
    return page.evaluate(
        """([tags, rules]) => axe.run(document, {
            runOnly: {type: "tag", values: tags},
            rules: rules,
            resultTypes: ["violations"],
        }).then(results => results.violations)""",
        [TAGS, rules],
    )


def summary(violations: list[dict]) -> str:
    """One readable line per violation: rule, impact, help, the first element and count."""
    lines = []
    for violation in violations:
        nodes = violation.get("nodes") or [{}]
        target = nodes[0].get("target")
        lines.append(
            f"{violation['id']} [{violation.get('impact')}] {violation['help']}: "
            f"{target} ({len(violation.get('nodes', []))} element(s)) "
            f"{violation.get('helpUrl', '')}"
        )
        summary_text = nodes[0].get("failureSummary")
        if summary_text:
            lines.extend("    " + line for line in summary_text.splitlines())
    return "\n".join(lines)
