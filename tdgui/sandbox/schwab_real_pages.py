"""The Schwab emulator's pages and scripts: a script-built, hash-routed login app and a third-host SDK.

Like the real login (docs/providers.md), the HTML the login host sends holds no form: the app
script builds each step's form in the DOM and moves between steps by the URL's #fragment;
a third host's script adds an iframe, as bot-detection and analytics vendors do. With
`autopilot` on (tests only) the app plays the user: it fills each form and presses its button.
"""

from __future__ import annotations

import html
import json

#: What the emulated user types: user id, password, the security code sent "by text".
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_SECURITY_CODE = "123456"
DEMO_ACCOUNTS = ("12345678", "87654321")


def shell_page(
    *, third_host: str, autopilot: bool, accept_terms: bool, probe_url: str | None = None
) -> bytes:
    """The login host's one HTML page: no form, only the scripts that build it (and, for a
    test, an image at `probe_url`: a page that tries to fetch the callback as a sub-resource)."""
    probe = f'<img id="probe" alt="" src="{html.escape(probe_url)}">' if probe_url else ""
    config = json.dumps(
        {
            "autopilot": autopilot,
            "acceptTerms": accept_terms,
            "user": DEMO_USER,
            "password": DEMO_PASSWORD,
            "code": DEMO_SECURITY_CODE,
        }
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Charles Schwab (emulated)</title></head>
<body><div id="app">Loading...</div><p id="ua"></p>{probe}
<script>window.EMU = {config};</script>
<script src="https://{html.escape(third_host)}/sdk.js"></script>
<script src="/ui/app.js"></script>
</body></html>""".encode()


#: The single-page app: routes #/login, #/2fa, #/terms, #/accounts; every step posts JSON to
#: /api/<step> on its own host and the answer names the next route or a top-level URL.
APP_JS = r"""
(function () {
  var EMU = window.EMU || {};
  var app = document.getElementById('app');
  document.getElementById('ua').textContent = 'Your browser: ' + navigator.userAgent;
  function params() {
    var q = (location.hash.split('?')[1] || '');
    var out = {};
    q.split('&').forEach(function (kv) {
      if (kv) { var p = kv.split('='); out[p[0]] = decodeURIComponent(p[1] || ''); }
    });
    return out;
  }
  function post(step, body) {
    body.txn = params().txn;
    return fetch('/api/' + step, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: JSON.stringify(body), credentials: 'same-origin'})
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.error) { show(answer.error); return; }
        if (answer.url) { location.assign(answer.url); return; }
        location.hash = '#/' + answer.next + '?txn=' + encodeURIComponent(body.txn);
      });
  }
  function show(text) { var e = document.getElementById('error'); if (e) { e.textContent = text; } }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    return e;
  }
  function form(title, fields, buttons) {
    app.innerHTML = '';
    app.appendChild(el('h1', {}, title));
    fields.forEach(function (f) {
      app.appendChild(el('label', {'for': f[0]}, f[1]));
      app.appendChild(el('input', {id: f[0], type: f[2] || 'text'}));
    });
    buttons.forEach(function (b) {
      var btn = el('button', {id: b[0], type: 'button'}, b[1]);
      btn.addEventListener('click', b[2]);
      app.appendChild(btn);
    });
    app.appendChild(el('p', {id: 'error'}));
  }
  function val(id) { return document.getElementById(id).value; }
  function autopilot(fill) { if (EMU.autopilot) { setTimeout(fill, 150); } }
  var routes = {
    login: function () {
      form('Log in', [['loginId', 'Login ID'], ['password', 'Password', 'password']],
           [['btnLogin', 'Log in', function () {
             post('login', {username: val('loginId'), password: val('password')});
           }]]);
      autopilot(function () {
        document.getElementById('loginId').value = EMU.user;
        document.getElementById('password').value = EMU.password;
        document.getElementById('btnLogin').click();
      });
    },
    '2fa': function () {
      form('Security code', [['securityCode', 'Enter the code we sent to your phone']],
           [['btnContinue', 'Continue', function () { post('2fa', {code: val('securityCode')}); }]]);
      autopilot(function () {
        document.getElementById('securityCode').value = EMU.code;
        document.getElementById('btnContinue').click();
      });
    },
    terms: function () {
      form('Terms', [], [
        ['btnAccept', 'Accept', function () { post('terms', {accept: true}); }],
        ['btnCancel', 'Cancel', function () { post('terms', {accept: false}); }]]);
      autopilot(function () {
        document.getElementById(EMU.acceptTerms ? 'btnAccept' : 'btnCancel').click();
      });
    },
    accounts: function () {
      form('Select accounts', [], [['btnDone', 'Allow', function () {
        var picked = Array.prototype.map.call(document.querySelectorAll('input.acct:checked'),
                                              function (c) { return c.value; });
        post('accounts', {accounts: picked});
      }]]);
      (EMU.accounts || ['12345678', '87654321']).forEach(function (a) {
        var c = el('input', {type: 'checkbox', 'class': 'acct', value: a}); c.checked = true;
        app.insertBefore(c, document.getElementById('btnDone'));
      });
      autopilot(function () { document.getElementById('btnDone').click(); });
    }
  };
  function render() {
    var route = (location.hash.split('?')[0] || '').replace('#/', '');
    fetch('/api/view?route=' + encodeURIComponent(route), {credentials: 'same-origin'});
    (routes[route] || routes.login)();
  }
  fetch('/api/env', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({frame: 'top', ua: navigator.userAgent, webdriver: navigator.webdriver})});
  window.addEventListener('hashchange', render);
  render();
})();
"""


def sdk_js(third_host: str) -> bytes:
    """A third host's script: it adds its own iframe, as a bot-detection or analytics SDK does."""
    src = json.dumps(f"https://{third_host}/frame.html")
    return (
        "(function(){window.__emuSdk=true;var f=document.createElement('iframe');"
        f"f.id='sdkFrame';f.style.display='none';f.src={src};"
        "document.body.appendChild(f);})();"
    ).encode()


#: The third host's frame: reports what it sees of the browser back to its own host.
FRAME_HTML = b"""<!doctype html><html><head><meta charset="utf-8"><title>sdk</title></head><body>
<script>
new Image().src = '/beacon?ua=' + encodeURIComponent(navigator.userAgent) +
  '&webdriver=' + encodeURIComponent(String(navigator.webdriver));
</script></body></html>"""


def error_page(message: str) -> bytes:
    """What the authorize host shows for a request it refuses: a page, never the callback."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Error</title></head><body>"
        f"<h1>We're sorry</h1><p id='error'>{html.escape(message)}</p></body></html>"
    ).encode()
