"""The text part made from the editor's HTML (app/mail/rich_text.py)."""

import pytest

from app.mail.rich_text import to_text
from app.mail.sanitize import clean_composed, clean_html


@pytest.mark.parametrize(("html", "text"), [
    ("<div>a <b>bold</b> and <i>italic</i> word</div>", "a bold and italic word"),
    ("<div>one</div><div><br></div><div>two</div>", "one\n\ntwo"),
    ("<p>one</p><p>two</p>", "one\n\ntwo"),
    ("line<br>break<br>", "line\nbreak"),
    ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
    ("<ol><li>a</li><li>b<ul><li>c</li></ul></li></ol>", "1. a\n2. b\n   - c"),
    ('<a href="https://x.test/p">the page</a>', "the page <https://x.test/p>"),
    ('<a href="https://x.test/">https://x.test/</a>', "https://x.test/"),
    ('<a href="mailto:a@x.test">a@x.test</a>', "a@x.test"),
    ("<blockquote>a<br>b<blockquote>c</blockquote></blockquote>d", "> a\n> b\n>> c\nd"),
    ("<div>x&nbsp;&amp;&lt;y&gt;</div>", "x &<y>"),
    ("<div>  spaced\n  words </div>", "spaced words"),
    ("", ""),
])
def test_editor_html_as_text(html, text):
    assert to_text(clean_composed(html)) == text


def test_received_html_quotes_readably():
    html = ("<h1>Title</h1><table><tr><td>a</td><td>b</td></tr></table>"
            "<pre>  kept\n    as is</pre><p>end</p>")
    assert to_text(clean_html(html)[0]) == "Title\n\na  b\n\n  kept\n    as is\n\nend"


def test_composed_allowlist_is_narrow():
    cleaned = clean_composed('<h1 style="color:red" class="x">T</h1><img src="cid:a">'
                             '<table><tr><td>c</td></tr></table><a href="https://x.test" '
                             'title="t">l</a>')
    assert cleaned == ('T\nc<a href="https://x.test" target="_blank" '
                       'rel="noopener noreferrer">l</a>')
