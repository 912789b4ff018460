"""The text of HTML parts, as routing matches it and replies quote it."""

import pytest

from app.mail.mime import html_to_text


@pytest.mark.parametrize("html,text", [
    ("<p>Hello &amp; welcome</p><div>Line<br>two</div>", "Hello & welcome\nLine\ntwo"),
    ("<head><title>T</title><style>p { color: red }</style></head><p>shown</p>", "shown"),
    ("<script>var secret = '<p>not text</p>';</script>after", "after"),
    ("a <!-- hidden <p>comment</p> --> b", "a b"),
    ('<a title="x > y" href=\'z\'>link</a>', "link"),
    ("plain < text > and 3 &lt; 4", "plain < text > and 3 < 4"),
    ("<!DOCTYPE html><?xml x?><p>doc</p></ p>", "doc"),
    ("<p>Unclosed <b>bold", "Unclosed bold"),
    ("<SCRIPT>x</SCRIPT>Upper<BR>case", "Upper\ncase"),
    ("<script/>kept", "kept"),
])
def test_markup_is_left_out_and_text_kept(html, text):
    assert html_to_text(html) == text


@pytest.mark.parametrize(("hostile", "text"), [
    # unclosed tags and quotes (quadratic in html.parser): not markup, so kept as text
    ("<a b='" * 40_000, "<a b='" * 40_000),
    ("<!--" * 50_000, ""),                      # a comment that never ends
    ("<" * 200_000, "<" * 200_000),
    ("<script>" * 30_000 + "text", ""),         # never closed: nothing after it is text
])
def test_hostile_markup_is_read_in_one_pass(hostile, text):
    assert html_to_text(hostile) == text  # in a fraction of a second: html.parser took minutes


def test_table_cells_are_apart_and_lines_carry_no_edge_blanks():
    assert html_to_text("<table><tr><th>Price</th><td>42</td></tr>"
                        "<tr><td><p>Left</p></td><td> Right </td></tr></table>") == \
        "Price 42\n\nLeft Right"
