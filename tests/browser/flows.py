"""Steps the browser tests share: signing in, arriving in the inbox, and measuring a page."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from support import PASSWORD


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Fill and send the sign-in form of the page the browser is on."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_in_at(page: Page, base_url: str, email: str, password: str = PASSWORD,
               slug: str = "acme") -> None:
    """Open the tenant's sign-in page and sign in there."""
    page.goto(f"{base_url}/t/{slug}/sign-in")
    sign_in(page, email, password)


def expect_inbox(page: Page, base_url: str) -> None:
    expect(page.get_by_role("heading", name="Secure messages")).to_be_visible()
    expect(page).to_have_url(f"{base_url}/inbox/")


#: the elements that reach past the right edge of the window and are not inside a
#: scrolling container of their own, innermost first (the culprits, not their parents)
OVERFLOW = """() => {
  const width = window.innerWidth;
  const root = document.scrollingElement;
  if (root.scrollWidth <= width) return null;
  const scrolls = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  // an element's own box, or the text it holds directly (a long word overflows its box)
  const right = (el) => {
    let edge = el.getBoundingClientRect().width > 0 ? el.getBoundingClientRect().right : 0;
    for (const node of el.childNodes) {
      if (node.nodeType === Node.TEXT_NODE && node.textContent.trim()) {
        const range = document.createRange();
        range.selectNodeContents(node);
        edge = Math.max(edge, range.getBoundingClientRect().right);
      }
    }
    return edge;
  };
  const wide = [...document.body.querySelectorAll("*")].filter(
    (el) => right(el) > width + 0.5 && !scrolls(el));
  const innermost = wide.filter((el) => !wide.some((other) => other !== el && el.contains(other)));
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    [...el.classList].map((c) => "." + c).join("") +
    (el.getAttribute("name") ? `[name=${el.getAttribute("name")}]` : "") +
    ` "${(el.innerText || el.value || "").trim().slice(0, 40)}"` +
    ` (right edge at ${Math.round(right(el))} px)`;
  return {scrollWidth: root.scrollWidth, offenders: innermost.slice(0, 5).map(name)};
}"""


def overflow(page: Page) -> str | None:
    """None when the page fits its window's width, else what sticks out."""
    found = page.evaluate(OVERFLOW)
    if found is None:
        return None
    return (f"{found['scrollWidth']} px wide, sticking out: "
            + "; ".join(found["offenders"] or ["(nothing found to name)"]))


#: boxes that cut off what they hold sideways (overflow hidden or clip, not a scroller the
#: reader can move): the page fits, but part of it cannot be seen. Text cut short with an
#: ellipsis on purpose, the visually hidden text for screen readers, and a field's long
#: value (the field scrolls as one types) are no loss.
CUT_OFF = """() => [...document.body.querySelectorAll("*")].filter((el) => {
    const style = getComputedStyle(el);
    return ["hidden", "clip"].includes(style.overflowX) && style.textOverflow !== "ellipsis"
      && !el.closest(".visually-hidden") && !el.matches("input, textarea, select")
      && el.clientWidth > 1
      && el.scrollWidth > el.clientWidth + 1;
  }).map((el) => el.tagName.toLowerCase() + [...el.classList].map((c) => "." + c).join("") +
    ` (shows ${el.clientWidth} of ${el.scrollWidth} px)`)"""


def cut_off(page: Page) -> list[str]:
    """The boxes on the page that hide part of what they hold, sideways."""
    return page.evaluate(CUT_OFF)


def rich_editor(page: Page, name: str):
    """The rich text editor named ``name`` (compose, reply), once its script has replaced
    the textarea: waiting for it, not the textarea the page starts with."""
    return page.locator("[data-rich-area]").and_(page.get_by_role("textbox", name=name))
