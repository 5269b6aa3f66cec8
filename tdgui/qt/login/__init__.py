"""The login view: `parent` (the app's side, no web engine), `child` (`tdgui --login-child`), `protocol`.

The child hosts `window` and its guarded `page`; the navigation and certificate decisions are
tdgui.core.navigation's. Importing this package loads nothing: the app must never pull in Qt
WebEngine by importing the parent side.
"""
