"""HTML pages of the sandbox: login form, consent, error, index and the browser test pages."""

from __future__ import annotations

from html import escape

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f3f5f8; color: #1d2733; margin: 0; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; padding: 1.5rem 2rem;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }
h1 { font-size: 1.3rem; margin-top: 0; } h1 small { color: #6a7785; font-weight: normal; }
label { display: block; margin-top: .8rem; font-size: .9rem; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .45rem;
       font-size: 1rem; border: 1px solid #b8c2cc; border-radius: 4px; }
button { margin-top: 1rem; margin-right: .5rem; padding: .5rem 1.2rem; font-size: 1rem;
       border: 0; border-radius: 4px; background: #0a5cb8; color: #fff; cursor: pointer; }
button#deny { background: #6a7785; }
.note { color: #6a7785; font-size: .85rem; }
.error { color: #a40e26; background: #fde8ec; padding: .5rem; border-radius: 4px; }
code { word-break: break-all; }
"""


def brand(flavor: str) -> str:
    """The broker name a flavor's pages show."""
    return "Charles Schwab" if flavor == "schwab" else "TD Ameritrade"


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    ).encode()


def _hidden(fields: list[tuple[str, str]]) -> str:
    return "".join(
        f"<input type='hidden' name='{escape(name)}' value='{escape(value)}'>" for name, value in fields
    )


def login_page(
    flavor: str, action: str, hidden: list[tuple[str, str]], *, error: str | None, username: str = ""
) -> bytes:
    """The login form: form#login with inputs `username`, `password` and button#submit."""
    error_html = f"<p id='error' class='error' role='alert'>{escape(error)}</p>" if error else ""
    body = (
        f"<h1>{escape(brand(flavor))} <small>sandbox</small></h1>"
        "<p class='note'>Local emulator, not the real broker. "
        "Demo login: user <b>demo</b>, password <b>demo</b>.</p>"
        f"{error_html}"
        f"<form id='login' method='post' action='{escape(action)}' autocomplete='off'>"
        f"{_hidden(hidden)}"
        "<label for='username'>User name</label>"
        f"<input type='text' id='username' name='username' value='{escape(username)}' autofocus>"
        "<label for='password'>Password</label>"
        "<input type='password' id='password' name='password'>"
        "<button id='submit' type='submit'>Log in</button>"
        "</form>"
    )
    return _page(f"{brand(flavor)} sandbox - Log in", body)


def consent_page(flavor: str, action: str, txn: str, client_id: str, redirect_uri: str) -> bytes:
    """The consent form: form#consent with buttons #allow and #deny (name `action`)."""
    body = (
        f"<h1>{escape(brand(flavor))} <small>sandbox</small></h1>"
        f"<p>The application <code>{escape(client_id)}</code> asks to access your accounts.</p>"
        f"<p class='note'>You will be sent back to <code>{escape(redirect_uri)}</code>.</p>"
        f"<form id='consent' method='post' action='{escape(action)}'>"
        f"{_hidden([('txn', txn)])}"
        "<button id='allow' name='action' value='allow' type='submit'>Allow</button>"
        "<button id='deny' name='action' value='deny' type='submit'>Deny</button>"
        "</form>"
    )
    return _page(f"{brand(flavor)} sandbox - Allow access", body)


def error_page(message: str) -> bytes:
    """An error the user sees instead of a redirect (bad client, bad redirect_uri, ...)."""
    body = (
        "<h1>Sandbox <small>authorization error</small></h1>"
        f"<p id='message' class='error'>{escape(message)}</p>"
        "<p class='note'>Nothing was sent to the application's callback URL.</p>"
    )
    return _page("Sandbox - Error", body)


def index_page(links: list[tuple[str, str]]) -> bytes:
    """GET / : what this server is and where to start a login."""
    items = "".join(f"<li><a href='{escape(href)}'>{escape(text)}</a></li>" for text, href in links)
    body = (
        "<h1>tdgui <small>broker sandbox</small></h1>"
        "<p>A local HTTPS emulator of the Charles Schwab and TD Ameritrade OAuth servers.</p>"
        f"<ul>{items}</ul>"
    )
    return _page("tdgui sandbox", body)


def popup_page(target: str) -> bytes:
    """A page that tries to open a new window on load (for the embedded-browser tests)."""
    body = (
        "<h1>Popup test</h1><p id='message'>This page opens a window on load.</p>"
        "<script>window.addEventListener('load', function () { "
        f"window.open({_js_string(target)}); }});</script>"
    )
    return _page("Sandbox - popup test", body)


def _js_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\x3c") + '"'
