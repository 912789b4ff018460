"""Chromium agrees with app/mail/sanitize.py: the sanitized HTML holds no text the browser
hides, and the text the portal prints and quotes (``visible_text``) is every word the
browser shows of it, word for word."""

from __future__ import annotations

from app.mail.sanitize import clean_html, visible_text

HIDDEN = "SECRETWORD"
#: every hiding trick of tests/unit/test_hidden_text.py in one body, among visible words
TRICKS = [
    "display:none", "DISPLAY : NONE !important", r"d\isplay:n\one", "display:/**/none",
    "visibility:hidden", "visibility:collapse", "opacity:0", "opacity:.05", "font-size:0",
    "font-size:1px", "font-size:0.1em", "font:0/0 a", "font: bold 0px Arial",
    "max-height:0;overflow:hidden", "width:1px;height:1px;overflow:hidden",
    "position:absolute;left:-9999px", "mso-hide:all", "font-size:calc(0px)",
    "font-size:var(--x, 0px)", "display:none !important; display:block",
]
BODY = (
    '<div style="display:none;max-height:0;overflow:hidden;opacity:0">Preheader '
    f"{HIDDEN}</div><h1>Statement</h1>"
    # a computed size the sanitizer drops, so the word shows on screen and in text alike
    + "".join(f'<p>Visible{n} <span style="{style}">'
              f'{"Computed" if "(" in style else HIDDEN}</span></p>'
              for n, style in enumerate(TRICKS))
    + f'<div hidden>{HIDDEN}</div><div style="display&#58;none">{HIDDEN}</div>'
    + '<table style="font-size:0"><tr><td style="font-size:14px">Left</td>'
      '<td style="font-size:14px">Right</td></tr></table>'
    + '<div style="visibility:hidden">' + HIDDEN
    + ' <span style="visibility:visible">Back</span></div>'
    + '<div style="opacity:0.3"><span style="opacity:0.3">' + HIDDEN + "</span> Faint</div>"
    + "<style>.x{display:none}</style><p class=x>Styled</p>"
)

#: the words of every text node Chromium shows: laid out, visible, not transparent, and
#: in type large enough to read (as app/mail/sanitize.py judges "readable": 3 px)
SHOWN_WORDS = """() => {
    const words = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode, el = node.parentElement;
        if (!node.data.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        let box = range.getBoundingClientRect(), opacity = 1;
        let {left, top, right, bottom} = box;
        for (let up = el; up; up = up.parentElement) {
            const style = getComputedStyle(up);
            opacity *= parseFloat(style.opacity);
            if (style.overflow !== "visible") {  // a box clips what overflows it
                const clip = up.getBoundingClientRect();
                left = Math.max(left, clip.left); top = Math.max(top, clip.top);
                right = Math.min(right, clip.right); bottom = Math.min(bottom, clip.bottom);
            }
        }
        const shown = el.checkVisibility({opacityProperty: true, visibilityProperty: true})
            && parseFloat(getComputedStyle(el).fontSize) >= 3
            && right - left > 1 && bottom - top > 1 && right > 0 && bottom > 0;
        words.push({text: node.data.trim(), shown: shown && opacity >= 0.1});
    }
    return words;
}"""


def test_chromium_shows_every_word_of_the_text_and_no_other(page):
    cleaned, _ = clean_html(BODY)
    page.set_content(f"<!doctype html><html><body>{cleaned}</body></html>")
    nodes = page.evaluate(SHOWN_WORDS)
    assert [n["text"] for n in nodes if not n["shown"]] == []  # nothing left to hide
    shown = " ".join(n["text"] for n in nodes).split()
    assert shown == visible_text(BODY).split()
    assert HIDDEN not in shown and "Visible19" in shown and "Back" in shown
    assert [w for w in shown if w in ("Left", "Right")] == ["Left", "Right"]
    assert "Faint" in shown and "Styled" in shown and shown.count("Computed") == 2


def test_chromium_hides_what_the_rule_hides_in_the_original(page):
    """The rule reads the original as Chromium does: each trick hides the word there."""
    page.set_content("<!doctype html><html><body>" + "".join(
        f'<div style="{style}">{HIDDEN}{n}</div>' for n, style in enumerate(TRICKS)
        # computed sizes, which the sanitizer drops, and Outlook's own are left out
        if "(" not in style and "mso" not in style
    ) + "</body></html>")
    nodes = page.evaluate(SHOWN_WORDS)
    # shown only: 0.1em (1.6 px), which Chromium raises to its smallest type for
    # relative sizes (6 px); the rule leaves it out all the same, as the sender meant
    assert [n["text"] for n in nodes if n["shown"]] == [f"{HIDDEN}10"]
