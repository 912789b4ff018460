"""A request body over the portal's limit gets the "Too large" page (413) wherever it is sent."""

import re

import pytest

from app.domain import composing

LIMIT = 10_000  # MAX_CONTENT_LENGTH for these tests: the default is about 70 MB


def posted_paths(app) -> list[str]:
    """Every path that takes a POST, with made-up values in place of its variables."""
    return sorted({re.sub(r"<[^>]+>", "1", rule.rule) for rule in app.url_map.iter_rules()
                   if "POST" in rule.methods})


def test_the_limits_are_set_by_default(app):
    assert app.config["MAX_CONTENT_LENGTH"] > app.config["MAX_MESSAGE_BYTES"]
    # A multipart form carries the composer's longest text even at 4 bytes a character.
    assert app.config["MAX_FORM_MEMORY_SIZE"] >= composing.MAX_BODY * 4


@pytest.mark.parametrize("how", ["form", "multipart form", "htmx form", "raw bytes",
                                 "form just over"])
def test_every_form_answers_413_with_the_too_large_page(app, client, how):
    app.config["MAX_CONTENT_LENGTH"] = LIMIT
    paths = posted_paths(app)
    assert "/compose/draft" in paths and "/sign-in" in paths and len(paths) > 20
    size = LIMIT + 1 if how == "form just over" else 3 * LIMIT
    for path in paths:
        if how == "raw bytes":
            response = client.post(path, data=b"\xff" * size,
                                   content_type="application/octet-stream")
        else:
            response = client.post(
                path, data={"body": "x" * (size - len("body="))},
                content_type="multipart/form-data" if how == "multipart form" else None,
                headers={"HX-Request": "true"} if how == "htmx form" else None)
        page = response.get_data(as_text=True)
        assert response.status_code == 413, path
        assert "<h1>Too large</h1>" in page, path
        assert "What you sent is larger than this portal accepts." in page, path


@pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_throttled_forms_answer_413_too(app, client):
    """The reset form's throttle is keyed by the address in the form it cannot read."""
    app.config["MAX_CONTENT_LENGTH"] = LIMIT
    for path in ("/password/forgot", "/t/acme/password/forgot", "/sign-in"):
        response = client.post(path, data={"email": "x" * LIMIT})
        assert response.status_code == 413, path
        assert "<h1>Too large</h1>" in response.get_data(as_text=True)


def test_a_text_field_over_the_form_memory_limit_answers_413(app, client):
    app.config["MAX_FORM_MEMORY_SIZE"] = 1_000
    response = client.post("/sign-in", data={"email": "x" * 2_000},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert "<h1>Too large</h1>" in response.get_data(as_text=True)


def test_too_many_form_parts_answer_413(client):
    fields = {f"f{n}": "x" for n in range(1_001)}  # Flask's MAX_FORM_PARTS is 1,000
    response = client.post("/compose/", data=fields, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "<h1>Too large</h1>" in response.get_data(as_text=True)
