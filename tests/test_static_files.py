"""Static files: fingerprinted URLs cached for a year, gzip for text, everything else
still served but revalidated; the portal's security headers on all of them."""

import gzip
import hashlib
import re
from pathlib import Path

import pytest
from servers import NGINX, CcmWeb, NginxSite, ThrowawayCA, Visitor, free_port

from app.web import static_files

STATIC = Path(static_files.__file__).parents[1] / "static"
TEXT_FILES = ["css/ccm.css", "js/ccm.js", "js/htmx-2.0.11.min.js", "js/passkeys.js",
              "img/icon.svg"]


def fingerprint(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def page_assets(client) -> list[str]:
    html = client.get("/sign-in").get_data(as_text=True)
    return sorted(set(re.findall(r'(?:href|src)="(/static/[^"]+)"', html)))


def test_every_asset_a_page_names_is_fingerprinted_by_its_content(client):
    assets = page_assets(client)
    assert assets == sorted(f"/static/{name}?v={fingerprint(name)}" for name in TEXT_FILES)


@pytest.mark.parametrize("name", TEXT_FILES)
def test_a_fingerprinted_file_is_cached_for_a_year_and_compressed(client, name):
    response = client.get(f"/static/{name}?v={fingerprint(name)}",
                          headers={"Accept-Encoding": "br, gzip;q=0.8, deflate"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"  # not Cookie: one copy for all
    assert "Set-Cookie" not in response.headers
    assert gzip.decompress(response.data) == (STATIC / name).read_bytes()
    assert int(response.headers["Content-Length"]) == len(response.data) < len(
        (STATIC / name).read_bytes())
    # the portal's security headers, as on every answer
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = client.get(f"/static/{name}?v={fingerprint(name)}",
                       headers={"Accept-Encoding": "gzip",
                                "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "br", "*;q=0"])
def test_a_client_that_takes_no_gzip_gets_the_file_as_it_is(client, accept):
    name = "css/ccm.css"
    headers = {"Accept-Encoding": accept} if accept else {}
    response = client.get(f"/static/{name}?v={fingerprint(name)}", headers=headers)
    assert response.status_code == 200 and "Content-Encoding" not in response.headers
    assert response.data == (STATIC / name).read_bytes()
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"


def test_a_range_of_the_plain_file_is_served(client):
    name = "js/htmx-2.0.11.min.js"
    response = client.get(f"/static/{name}?v={fingerprint(name)}",
                          headers={"Range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.data == (STATIC / name).read_bytes()[:10]


@pytest.mark.parametrize("query", ["", "?v=0123456789ab", "?v=", "?v=../x"])
def test_an_unversioned_or_stale_url_works_but_is_revalidated(client, query):
    name = "css/ccm.css"
    response = client.get(f"/static/{name}{query}", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert gzip.decompress(response.data) == (STATIC / name).read_bytes()
    assert response.headers["Cache-Control"] == "no-cache"
    again = client.get(f"/static/{name}{query}", headers={
        "Accept-Encoding": "gzip", "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_head_answers_like_get_without_the_body(client):
    name = "js/ccm.js"
    head = client.head(f"/static/{name}?v={fingerprint(name)}",
                       headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Encoding"] == "gzip" and int(head.headers["Content-Length"])


@pytest.mark.parametrize("path", ["/static/nope.css", "/static/../config.py",
                                  "/static/%2e%2e/config.py", "/static/css",
                                  "/static/..%2fcli.py", "/static/css/ccm.css/x"])
def test_anything_else_is_not_found(client, path):
    assert client.get(path).status_code == 404


def spellings(name: str) -> list[str]:
    """Other ways to write a file's name that a careless path join would accept."""
    folder, _, base = name.rpartition("/")
    return [f"./{name}", f"{name}/.", f"{folder}/./{base}", f"{folder}//{base}",
            f"x1/../{name}", f"{folder}/../{name}", f"{folder}/x/../{base}",
            f"./././{name}", f"{name}/", f"{folder}/{base}/.", f"{folder.upper()}/{base}",
            f"{folder}/{base.upper()}", f"{folder}\\{base}", f"{folder}%2f.%2f{base}",
            f"%2e/{name}", f"{folder}/%2e/{base}", f"{name}%00", f"{name}%20",
            f"{name}::$DATA", f"{folder}/{base}."]


@pytest.mark.parametrize("name", TEXT_FILES)
def test_another_spelling_of_a_file_is_not_found_and_not_kept(app, client, name):
    files = app.extensions["ccm_static_files"]
    assert client.get(f"/static/{name}").status_code == 200
    for spelling in spellings(name):
        response = client.get(f"/static/{spelling}")
        # not the file (a 308 is Werkzeug merging "//" into the canonical URL, a 400 the
        # portal's refusal of a NUL in any URL)
        assert response.status_code in (400, 404, 308), spelling
        assert response.status_code != 308 or response.location.endswith(f"/static/{name}")
    assert set(files._versions) <= {name, *TEXT_FILES}
    assert client.get(f"/static/{name}?v={fingerprint(name)}").status_code == 200


def test_thousands_of_spellings_keep_the_cache_at_the_folders_size(app, client):
    """2000 distinct names for htmx once grew the process by 130 MB (each read, gzipped
    at level 9 and kept); now the cache holds at most one entry per real file."""
    files = app.extensions["ccm_static_files"]
    on_disk = {path.relative_to(STATIC).as_posix() for path in STATIC.rglob("*")
               if path.is_file() and not path.name.startswith(".")}
    for n in range(2000):
        name = "js/htmx-2.0.11.min.js"
        spelling = f"x{n}/../{name}" if n % 2 else "./" * (n % 50 + 1) + name
        assert client.get(f"/static/{spelling}").status_code == 404
    assert set(files._versions) <= on_disk
    assert files._names == on_disk


def test_only_the_names_in_the_folder_exist(tmp_path):
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "a.css").write_text("a {}")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("secret")
    (tmp_path / ".env").write_text("secret")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    files = static_files.StaticFiles(str(tmp_path))
    assert files.version("css/a.css").data == b"a {}"
    for name in ["css/./a.css", "css//a.css", "./css/a.css", "css/a.css/.", "loop/css/a.css",
                 "css/../css/a.css", ".git/config", ".env", "css", "", "/", "css/a.css/"]:
        assert files.version(name) is None, name
    (tmp_path / "css" / "b.css").write_text("b {}")  # added while running: found
    assert files.version("css/b.css").data == b"b {}"
    (tmp_path / "css" / "a.css").unlink()  # removed: gone, and its copy with it
    assert files.version("css/a.css") is None and set(files._versions) == {"css/b.css"}


def test_a_changed_file_gets_a_new_fingerprint(tmp_path):
    files = static_files.StaticFiles(str(tmp_path))
    (tmp_path / "a.css").write_text("body { color: red; }" * 20)
    first = files.version("a.css")
    assert files.version("a.css") is first  # read once
    (tmp_path / "a.css").write_text("body { color: blue; }" * 20)
    second = files.version("a.css")
    assert second.fingerprint != first.fingerprint and b"blue" in second.data
    assert gzip.decompress(second.compressed) == second.data
    (tmp_path / "a.png").write_bytes(b"\x89PNG" + bytes(200))
    assert files.version("a.png").compressed is None  # not a text type
    assert files.version("missing.css") is None and files.version("../etc") is None


def test_pages_are_still_never_cached(client):
    assert client.get("/sign-in").headers["Cache-Control"] == "no-store"


def test_through_the_nginx_site_files_arrive_compressed_and_cached(app, tmp_path):
    """deploy/nginx/ccm.conf passes the portal's compression and caching through."""
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is missing: apt-get install nginx-light")
    from test_deploy import site_for_test

    ca = ThrowawayCA()
    certificate = ca.server_files("127.0.0.1", tmp_path)
    http_port, https_port = free_port(), free_port()
    settings = {"CCM_DATABASE_URL": app.config["DATABASE_URL"], "CCM_SECRET_KEY": "static",
                "CCM_BASE_URL": "https://127.0.0.1", "CCM_PROXY_HOPS": "1"}
    with CcmWeb(tmp_path, settings) as web, NginxSite(
            tmp_path / "nginx", site_for_test(http_port=http_port, https_port=https_port,
                                              upstream=web.port, certificate=certificate),
            https_port):
        browser = Visitor(https_port, "127.0.0.2", tls=ca.client_context())
        page = browser.request("GET", "/sign-in")
        (css,) = re.findall(r'href="(/static/css/ccm\.css\?v=[0-9a-f]{12})"', page.text)
        answer = browser.request("GET", css, headers={"Accept-Encoding": "gzip"})
        assert answer.status == 200 and answer.headers["Content-Encoding"] == "gzip"
        assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert answer.headers["Vary"] == "Accept-Encoding"
        assert "nosniff" in answer.headers["X-Content-Type-Options"]
        # nginx passes the path as sent (proxy_pass with no URI): the portal sees the
        # spelling, and answers it with a 404, never another cached copy
        for spelling in ("/static/x1/../css/ccm.css", "/static/./css/ccm.css",
                         "/static/css/ccm.css/.", "/static/css/./ccm.css"):
            refused = browser.request("GET", spelling)
            assert refused.status == 404, spelling
            assert "Content-Security-Policy" in refused.headers  # the portal's answer
