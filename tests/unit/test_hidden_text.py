"""What the sender hid with inline style is left out of the sanitized HTML (the frame) and
so of its text (paper, the page without script, conversations, reply quotes): the screen
and the text agree, and visible text around it stays."""

from __future__ import annotations

import pytest

from app.mail.sanitize import clean_html, style_of, visible_text

HIDDEN = "SECRETWORD"


def both(html: str) -> tuple[str, str]:
    """(the sanitized HTML, the visible text) of ``html``."""
    return clean_html(html)[0], visible_text(html)


@pytest.mark.parametrize("style", [
    # display, as written in the wild
    "display:none", "DISPLAY:NONE", "display : none", "  display:none ; ",
    "display:none !important", "display:none!IMPORTANT", "display:/* x */none",
    "color:red;display:none", "display:none !important; display:block",
    r"d\isplay:n\one", "display:none;;", "display:\tnone",
    # visibility
    "visibility:hidden", "visibility:collapse", "Visibility: Hidden",
    # opacity
    "opacity:0", "opacity:0.0", "opacity:.05", "opacity:0%", "opacity:0 !important",
    # tiny type, in every unit and the font shorthand
    "font-size:0", "font-size:0px", "font-size:1px", "font-size:2.5px", "font-size:0pt",
    "font-size:1pt", "font-size:0.1em", "font-size:0.1rem", "font-size:1%",
    "font-size:0 !important", "FONT-SIZE:0PX", "font:0/0 a", "font: bold 0px Arial",
    "font: 400 1px/1 sans-serif",
    # a box with nothing in it that shows
    "max-height:0;overflow:hidden", "max-height:0px; overflow: hidden !important",
    "height:0;overflow-y:hidden", "width:1px;height:1px;overflow:hidden",
    "max-width:0;overflow:hidden;mso-hide:all",
    # moved off the page
    "position:absolute;left:-9999px", "position:fixed; top:-5000px",
    # Outlook's own
    "mso-hide:all", "MSO-HIDE: ALL",
])
def test_hidden_text_is_on_neither_screen_nor_paper(style):
    html = f'<p>Before</p><div style="{style}">{HIDDEN}</div><p>After</p>'
    screen, text = both(html)
    assert HIDDEN not in screen
    assert text.split() == ["Before", "After"]  # an emptied block may leave a blank line


@pytest.mark.parametrize("html", [
    f"<div hidden>{HIDDEN}</div>",
    f'<div style="display:none"><table><tr><td><p><b>{HIDDEN}</b></p></td></tr></table></div>',
    f'<div style="display:none"><div style="display:block">{HIDDEN}</div></div>',
    f'<div style="opacity:0.3"><span style="opacity:0.3">{HIDDEN}</span></div>',
    f'<div style="font-size:1em"><span style="font-size:10%">{HIDDEN}</span></div>',
    f'<div style="visibility:hidden"><p>{HIDDEN}</p></div>',
    f'<div style="display&#58;none">{HIDDEN}</div>',      # entities are decoded first
    f"<div style='display:none'>{HIDDEN}</div>",
    f"<div style=display:none>{HIDDEN}</div>",
    f'<DIV STYLE="DISPLAY:NONE">{HIDDEN}</DIV>',
    f'<span style="display:none">{HIDDEN}',              # never closed: to the end
    f'<p>Hello<span style="font-size:0"> {HIDDEN} </span></p>',
])
def test_hiding_tricks(html):
    screen, text = both(html)
    assert HIDDEN not in screen and HIDDEN not in text


def test_the_example_of_the_review():
    assert visible_text('<div style="display:none">HIDDEN</div>visible') == "visible"


def test_a_preheader_is_not_text():
    html = ('<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;'
            'max-height:0px;max-width:0px;opacity:0;overflow:hidden;mso-hide:all;">'
            "Your January statement is ready &zwnj;&nbsp;&zwnj;&nbsp;</div>"
            "<h1>Statement</h1><p>Dear Pat, your statement is attached.</p>")
    assert visible_text(html) == "Statement\nDear Pat, your statement is attached."


@pytest.mark.parametrize(("html", "text"), [
    # a child may show what its parent hid, as a browser shows it
    ('<table style="font-size:0"><tr><td style="font-size:14px"><p>Left</p></td>'
     '<td style="font-size:14px"><p>Right</p></td></tr></table>', "Left\nRight"),
    ('<div style="visibility:hidden">gone <span style="visibility:visible">Back</span></div>',
     "Back"),
    ('<div style="font-size:0">x<p style="font-size:1.2rem">Shown</p></div>', "Shown"),
    # the last declaration wins, as in a browser
    ('<p style="display:none;display:block">Shown</p>', "Shown"),
    ('<p style="font-size:0;font-size:12px">Shown</p>', "Shown"),
    # visible however unusual
    ('<p style="display:block">A</p><p style="display:inline-block">B</p>', "A\nB"),
    ('<p style="font-size:12px">A</p><p style="font-size:xx-small">B</p>', "A\nB"),
    ('<p style="font-size:smaller">A</p><p style="font-size:0.5em">B</p>', "A\nB"),
    ('<p style="opacity:0.5">A</p><p style="opacity:1">B</p>', "A\nB"),
    ('<p style="height:0">A</p><p style="max-height:0">B</p>', "A\nB"),  # overflow shows
    ('<p style="overflow:hidden;max-height:200px">A</p>', "A"),
    ('<p style="position:relative;left:-10px">A</p>', "A"),
    ('<p style="color:#fff">A</p><p style="font-size:1">B</p>', "A\nB"),  # 1 is no size
    ('<p style="visibility:visible">A</p>', "A"),
    ('<p style="">A</p><p style="not css at all">B</p>', "A\nB"),
    # <style> blocks and classes are removed, so nothing they say hides anything
    ("<style>.x{display:none}</style><p class=x>Shown</p>", "Shown"),
    # bleach's parser drops a tag outside the allowlist before any style is read: the
    # frame shows its text, and so does the text
    ('<section style="display:none">Shown</section>', "Shown"),
    ('<style>p{font-size:0}</style><p class="x">Shown</p>', "Shown"),
])
def test_visible_text_stays(html, text):
    screen, shown = both(html)
    assert shown == text
    for word in text.split():
        assert word in screen


def test_images_follow_visibility_but_not_type_size():
    screen, _ = both('<div style="visibility:hidden"><img src="cid:a" alt="A"></div>'
                     '<div style="font-size:0"><img src="cid:b" alt="B"></div>')
    assert 'alt="A"' not in screen and 'alt="B"' in screen


@pytest.mark.parametrize("style", [
    "font-size:calc(0px)", "font-size:var(--x, 0px)", "font:min(0px, 1em) a",
    "display:var(--d, none)",
])
def test_a_size_the_rule_cannot_read_is_not_applied_on_screen_either(style):
    screen, text = both(f'<p style="{style}">Shown</p>')
    assert text == "Shown"
    assert "(" not in screen


def test_style_is_read_as_a_browser_reads_it():
    assert style_of(r"D\isplay : N\one !important; COLOR: Red; color: blue") == {
        "display": "none", "color": "blue"}
    assert style_of("font: italic bold 0.5em/2 Georgia") == {"font-size": "0.5em"}
    assert style_of("display:none !important; display:block") == {"display": "none"}
    assert style_of("garbage; :x; y:") == {"y": ""}


# --- A body too large to sanitize: one linear pass, the same rule ----------------------

@pytest.mark.parametrize("html", [
    f'<div style="display:none">{HIDDEN}</div>',
    f'<div style="DISPLAY : none !important"><div><b>{HIDDEN}</b></div></div>',
    f"<div style='opacity:0'>{HIDDEN}</div>",
    f"<div style=display:none>{HIDDEN}</div>",
    f'<div style="display&#58;none">{HIDDEN}</div>',
    f'<div style="max-height:0;overflow:hidden;mso-hide:all">{HIDDEN}</div>',
    f'<table style="position:absolute;left:-9999px"><tr><td>{HIDDEN}</td></tr></table>',
    f"<div hidden>{HIDDEN}</div>",
    f'<p style="display:none">{HIDDEN}',
    f'<ul style="display:none"><li>{HIDDEN}<li>{HIDDEN}</ul>',
    f'<div style="display:none"/>{HIDDEN}',  # "/" does not close a div
])
def test_a_large_body_leaves_out_hidden_elements(html):
    text = visible_text(f"<p>Before</p>{html}<p>After</p>", large=True)
    assert HIDDEN not in text and "Before" in text
    assert ("After" in text) is ("/>" not in html)  # an unclosed div holds all after it


@pytest.mark.parametrize(("html", "text"), [
    ('<p style="display:none">Preheader<p>Visible</p>', "Visible"),  # a <p> ends a <p>
    ('<div style="display:none"><div>x</div>y</div>After', "After"),
    ('<div title="hidden" class="hidden">Shown</div>', "Shown"),
    ('<div style="overflow:hidden">Shown</div>', "Shown"),
    ('<div style="font-size:0"><p style="font-size:14px">Shown</p></div>', "Shown"),
    ('<img style="display:none" src="x">Shown', "Shown"),
])
def test_a_large_body_keeps_visible_text(html, text):
    assert visible_text(html, large=True) == text


def test_a_large_body_is_read_in_one_pass():
    import time
    hostile = ('<div style="display:none">x' * 50_000 + "<p style='color:red'>t</p>" * 50_000
               + "".join(f'<p style="font-size:{i}px">t</p>' for i in range(50_000)))
    started = time.perf_counter()
    visible_text(hostile, large=True)
    assert time.perf_counter() - started < 5  # about 0.3 s here
