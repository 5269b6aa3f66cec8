"""The smallest PySide6 + QWebEngineView app: the baseline for benchmarks and bundle size.

    python bench/bare_webengine_app.py [URL] [--quit-after-load] [--timeout SECONDS]
                                       [--accept-cert-sha256 HEX]

Shows URL (default ``about:blank``) in a QWebEngineView. With ``--quit-after-load`` it prints
the seconds from *process start* to ``loadFinished`` on stdout (one number, nothing else) and
exits: 0 if the page loaded, 1 if the load failed, 2 on timeout. Diagnostics go to stderr.

``--accept-cert-sha256 HEX`` accepts a certificate error for exactly one leaf certificate, the
one whose DER SHA-256 is HEX (as tdgui's login view pins the local sandbox's self-signed
certificate); every other certificate error is rejected, as by default. This lets the baseline
open the same sandbox login page as the benchmark of tdgui's login view.

"Process start" is the kernel's start time of this process where it can be read
(Linux ``/proc/self/stat``; so a PyInstaller bundle's bootloader and unpacking count too),
otherwise the moment this module started running. The page runs in an off-the-record
profile, like tdgui's login view, so nothing is written to the home directory.

bench/bare_webengine.spec freezes this file with the same excludes and filters as
build.spec, so ``dist/bare_webengine`` is what tdgui's bundle is compared against.
"""

from __future__ import annotations

import os
import sys
import time

_MODULE_START = time.monotonic()


def _seconds_since_process_start() -> float:
    """Seconds since the kernel started this process (Linux), else since this module ran."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # Field 22 (starttime, clock ticks since boot); fields after the ")" of comm start at 3.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        started = start_ticks / os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _MODULE_START


def _parse_args(argv: list[str]) -> tuple[str, bool, float, str | None]:
    url = "about:blank"
    quit_after_load = False
    timeout = 60.0
    accept_sha256: str | None = None
    args = iter(argv)
    for arg in args:
        if arg == "--quit-after-load":
            quit_after_load = True
        elif arg == "--timeout":
            timeout = float(next(args, "60"))
        elif arg == "--accept-cert-sha256":
            accept_sha256 = next(args, "").strip().lower().replace(":", "")
            if len(accept_sha256) != 64 or any(c not in "0123456789abcdef" for c in accept_sha256):
                print("bare_webengine: --accept-cert-sha256 needs 64 hex digits", file=sys.stderr)
                raise SystemExit(2)
        elif arg in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        elif not arg.startswith("-"):
            url = arg
        # Unknown options (e.g. Qt's own -platform, --no-sandbox) are left for Qt / Chromium.
    return url, quit_after_load, timeout, accept_sha256


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    url, quit_after_load, timeout, accept_sha256 = _parse_args(argv[1:])

    from PySide6.QtCore import QTimer, QUrl
    from PySide6.QtWebEngineCore import QWebEngineCertificateError, QWebEnginePage, QWebEngineProfile
    from PySide6.QtWebEngineWidgets import QWebEngineView
    from PySide6.QtWidgets import QApplication

    app = QApplication(argv)
    app.setApplicationName("bare_webengine")

    profile = QWebEngineProfile(app)  # no storage name: off-the-record, nothing on disk
    view = QWebEngineView()
    page = QWebEnginePage(profile, view)
    view.setPage(page)
    view.resize(1024, 768)

    result = {"code": 2}

    def on_certificate_error(error: QWebEngineCertificateError) -> None:
        chain = error.certificateChain()
        if accept_sha256 and chain:
            import hashlib

            if hashlib.sha256(bytes(chain[0].toDer().data())).hexdigest() == accept_sha256:
                error.acceptCertificate()
                return
        print(f"bare_webengine: rejected the certificate of {error.url().host()}", file=sys.stderr)
        error.rejectCertificate()

    page.certificateError.connect(on_certificate_error)

    def on_load_finished(ok: bool) -> None:
        if not quit_after_load:
            return
        print(f"{_seconds_since_process_start():.3f}", flush=True)
        if not ok:
            print(f"bare_webengine: loading {url} failed", file=sys.stderr)
        result["code"] = 0 if ok else 1
        app.quit()

    def on_timeout() -> None:
        print(f"bare_webengine: no loadFinished within {timeout:g} s", file=sys.stderr)
        result["code"] = 2
        app.quit()

    page.loadFinished.connect(on_load_finished)
    if quit_after_load:
        QTimer.singleShot(int(timeout * 1000), on_timeout)

    view.setUrl(QUrl.fromUserInput(url))
    view.show()
    code = app.exec()
    # Delete the page before its profile, or Qt warns "Release of profile requested but
    # WebEnginePage still not deleted".
    view.setPage(None)  # type: ignore[arg-type]
    del page
    return result["code"] if quit_after_load else code


if __name__ == "__main__":
    raise SystemExit(main())
