"""The login view. App side: `parent` (LoginProcess), `prepare`, `browser_wait`; no web engine in them.

Child side (`tdgui --login-child`): `child` hosts `window` and its guarded `page`, whose
navigation and certificate decisions are tdgui.core.navigation's. `protocol` is the versioned
wire between the two; `hooks` is the test-only channel that scripts the sandbox's pages.
Importing this package loads nothing, so the app never pulls in Qt WebEngine by accident.
"""
