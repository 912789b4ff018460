"""Each built-in notification's HTML as a mail client shows it: Chromium at 1280 and
360 px wide, in the light and the dark scheme, with and without the tenant's logo.

The HTML is the very mail `mail_templates.build` makes; its ``cid:`` logo is handed to
the page as the image it names, as a mail client resolves it from the mail's own part.
Screenshots: tests/artifacts/test_each_notification_*.png.
"""

from __future__ import annotations

import base64

import pytest

from app.delivery import mail_templates

WIDTHS = {"wide": 1280, "phone": 360}


def sample(kind: str) -> dict:
    """The sample values of ``kind``, less those build() fills in itself."""
    return {name: mail_templates.SAMPLES[name] for name in mail_templates.KINDS[kind]
            if name not in mail_templates.EVERY_KIND_AT_SENDING}


@pytest.fixture
def logo_png(browser) -> bytes:
    """A wordmark logo, drawn by Chromium itself: dark on transparent, the hard case on a
    dark background."""
    context = browser.new_context(viewport={"width": 400, "height": 120})
    try:
        tab = context.new_page()
        tab.set_content('<div id="logo" style="display:inline-block;padding:6px 10px;'
                        'font:700 34px/1 sans-serif;color:#0b3d2e;letter-spacing:-1px">'
                        '<span style="color:#16a34a">&#9679;</span> ACME</div>')
        return tab.locator("#logo").screenshot(omit_background=True)
    finally:
        context.close()


def shown(message) -> str:
    """The HTML part with every cid: image replaced by a data: URL of its part."""
    html_part = message.get_body(("html",))
    html = html_part.get_content()
    for part in message.walk():
        if part["Content-ID"]:
            cid = part["Content-ID"].strip("<>")
            data = base64.b64encode(part.get_payload(decode=True)).decode()
            html = html.replace(f"cid:{cid}", f"data:{part.get_content_type()};base64,{data}")
    return html


def views(page, html: str):
    """``html`` shown in the light and the dark scheme at each of :data:`WIDTHS`: each
    time nothing is wider than the screen (no sideways scrolling on a phone) and the call
    to act is on screen; yields (scheme, label) to look further."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for label, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            page.set_content(html)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert page.locator(".ccm-button a").is_visible()
            yield scheme, label


@pytest.mark.parametrize("kind", sorted(mail_templates.KINDS))
@pytest.mark.parametrize("with_logo", [False, True], ids=["text-header", "logo"])
def test_each_notification_reads_well_wide_narrow_and_dark(app, make_tenant, page, screenshot,
                                                          logo_png, kind, with_logo):
    tenant = make_tenant("acme", name="Acme Corp")
    if with_logo:
        tenant.logo, tenant.logo_type = logo_png, "image/png"
    message = mail_templates.build(kind, "pat@example.com", tenant, **sample(kind))
    html = shown(message)
    assert "cid:" not in html
    for scheme, label in views(page, html):
        # The preheader is for the inbox list only.
        assert not page.locator("body > div").first.is_visible()
        sources = page.eval_on_selector_all("img", "images => images.map(i => i.src)")
        assert all(source.startswith("data:image/png") for source in sources)
        if with_logo:
            logo = page.get_by_role("img", name="Acme Corp")
            assert logo.evaluate("image => image.naturalWidth") > 0
        else:
            assert page.locator(".ccm-head").inner_text().startswith("Acme Corp")
        card = page.locator(".ccm-card").evaluate(
            "card => getComputedStyle(card).backgroundColor")
        assert (card == "rgb(24, 33, 43)") == (scheme == "dark"), card
        screenshot(page, f"{scheme}-{label}")



@pytest.mark.parametrize("language", ["de", "ar"])
@pytest.mark.parametrize("kind", ["secure_message", "password", "activation"])
def test_a_notification_in_german_and_in_arabic_fits_a_phone(app, make_tenant, make_user, page,
                                                            screenshot, kind, language):
    """German's long words and Arabic's right-to-left: nothing wider than 360 px, the
    Arabic page laid out from the right (the label column on the right of its value).
    The activation link is the one leading to a passkey, its longest wording."""
    tenant = make_tenant("acme", name="Acme Corp", time_zone="Europe/Berlin")
    make_user(tenant, "pat@example.com", language=language)
    values = {**sample(kind), **({"passkey": True} if kind == "activation" else {})}
    message = mail_templates.build(kind, "pat@example.com", tenant, **values)
    assert message["Content-Language"] == language
    html = shown(message)
    for scheme, label in views(page, html):
        direction = page.evaluate("getComputedStyle(document.body).direction")
        assert direction == ("rtl" if language == "ar" else "ltr")
        if WIDTHS[label] == 1280:  # label and value side by side: the label first in reading
            label_box = page.locator(".ccm-label").first.bounding_box()
            value_box = page.locator(".ccm-value").first.bounding_box()
            assert (label_box["x"] > value_box["x"]) == (language == "ar")
        screenshot(page, f"{scheme}-{label}")
