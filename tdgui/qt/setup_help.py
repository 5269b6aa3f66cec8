"""The guided first setup for Schwab: how to register the app, and what a failed first login means.

Reachable from the account dialog ("How do I get an app key?"), the welcome page and, by
itself, after a first login that failed for a known setup reason (tdgui.core.first_login).
Links open in the system browser (QDesktopServices), never in the login window.
"""

from __future__ import annotations

import html
import logging
import re

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tdgui.core import first_login
from tdgui.core.first_login import (
    SCHWAB_APPS_URL,
    SCHWAB_PORTAL_URL,
    SCHWAB_PY_GETTING_STARTED_URL,
    SetupProblem,
)
from tdgui.core.login_outcome import LoginOutcome, LoginResult
from tdgui.core.providers import SANDBOX_CALLBACK_URL
from tdgui.qt.controller import Controller

log = logging.getLogger(__name__)

#: What the callback field shows before an account has one (the README's example).
EXAMPLE_CALLBACK = "https://127.0.0.1:8182/"

STEPS = f"""<ol>
<li><b>Create the app.</b> Log in at <a href="{SCHWAB_PORTAL_URL}">developer.schwab.com</a>
(a developer account, not your brokerage login), open <i>Dashboard</i>, <i>Apps</i>,
<i>Create App</i>, and choose the API product <i>Accounts and Trading Production</i>
(add <i>Market Data Production</i> if your scripts need quotes).</li>
<li><b>Enter the callback URL</b> shown below, exactly as written. Schwab sends the finished
login only to the callback registered for the app and compares it character for character:
https, <code>127.0.0.1</code> (not localhost), the port, the trailing slash and lower case
all count. Nothing needs to run on that port: tdgui's login window catches the address
before it loads.</li>
<li><b>Wait for "Ready For Use".</b> A new app first shows <i>Approved - Pending</i>; logins
fail with an error page ("Whitelabel Error Page", "We are unable to complete your request")
until its status says <i>Ready For Use</i>, which can take a few days.</li>
<li><b>Copy the app key and secret</b> from the app's <i>View Details</i> page into tdgui's
account dialog (App key, Secret). If you ever regenerate the secret there, paste the new one
in Edit account.</li>
<li><b>Log in</b> once from tdgui with your brokerage account; tdgui then keeps the tokens
fresh and reminds you of Schwab's weekly login.</li>
</ol>
<p>schwab-py's <a href="{SCHWAB_PY_GETTING_STARTED_URL}">getting-started guide</a> walks
through the same registration.</p>"""


def open_link(url: str) -> bool:
    """Open `url` in the system browser (RFC 8252 §8.12: the user's own browser, not ours)."""
    return bool(QDesktopServices.openUrl(QUrl(url)))


class SetupHelp(QDialog):
    """How to register a Schwab app; with `problem`, what went wrong in the first login first."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        provider: str = "schwab",
        callback_url: str | None = None,
        problem: SetupProblem | None = None,
        account: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("setupHelp")
        self.setWindowTitle("Set up a Schwab app - tdgui")
        self.setAccessibleName("Set up a Schwab app")
        self.resize(640, 560)
        self.problem = problem
        self.provider = provider

        self.problem_label = QLabel(self)
        self.problem_label.setObjectName("setupProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setTextFormat(Qt.TextFormat.RichText)
        self.problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem_label.setFrameShape(QLabel.Shape.StyledPanel)
        self.problem_label.setVisible(False)

        self.steps = QLabel(STEPS, self)
        self.steps.setObjectName("setupSteps")
        self.steps.setWordWrap(True)
        self.steps.setTextFormat(Qt.TextFormat.RichText)
        self.steps.setOpenExternalLinks(False)  # opened by open_link, in the system browser
        self.steps.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.steps.linkActivated.connect(open_link)
        self.steps.setAccessibleName("How to register a Schwab app")

        self.callback = QLineEdit(callback_url or EXAMPLE_CALLBACK, self)
        self.callback.setReadOnly(True)
        self.callback.setObjectName("setupCallback")
        self.callback.setAccessibleName("Callback URL to enter on the portal")
        self.copy_callback = QPushButton("Copy", self)
        self.copy_callback.setAccessibleName("Copy the callback URL")
        self.copy_callback.clicked.connect(self._copy_callback)
        callback_row = QHBoxLayout()
        callback_label = QLabel("Callback URL:", self)
        callback_label.setBuddy(self.callback)
        callback_row.addWidget(callback_label)
        callback_row.addWidget(self.callback, 1)
        callback_row.addWidget(self.copy_callback)

        self.portal_button = QPushButton("Open developer.schwab.com", self)
        self.portal_button.setObjectName("openPortal")
        self.portal_button.setAccessibleName("Open Schwab's developer portal in the browser")
        self.portal_button.clicked.connect(lambda: open_link(SCHWAB_APPS_URL))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.portal_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setAccessibleName("Close the setup help")

        layout = QVBoxLayout(self)
        layout.addWidget(self.problem_label)
        layout.addWidget(self.steps, 1)
        layout.addLayout(callback_row)
        layout.addWidget(buttons)

        if provider == "tdameritrade":
            self.show_text(first_login.TDA_RETIRED)
        elif problem is not None:
            self.show_problem(problem, account)

    def show_problem(self, problem: SetupProblem, account: str | None = None) -> None:
        """Put the plain explanation of a failed first login above the steps."""
        self.problem = problem
        explanation = first_login.explain(problem)
        who = f" ({html.escape(account)})" if account else ""
        self.show_text(
            f"<b>{html.escape(explanation.headline)}</b>{who}<br>{html.escape(explanation.advice)}"
        )

    def show_text(self, text: str) -> None:
        self.problem_label.setText(text)
        self.problem_label.setAccessibleName(explain_plain(text))
        self.problem_label.setVisible(True)

    @Slot()
    def _copy_callback(self) -> None:
        QGuiApplication.clipboard().setText(self.callback.text())


def explain_plain(text: str) -> str:
    """`text` without its markup (the accessible name of a rich-text label)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", text)).strip()


def open_setup_help(
    parent: QWidget | None,
    *,
    provider: str = "schwab",
    callback_url: str | None = None,
    problem: SetupProblem | None = None,
    account: str | None = None,
) -> SetupHelp:
    """Open the help window modeless (the account dialog stays usable beside it)."""
    dialog = SetupHelp(parent, provider=provider, callback_url=callback_url, problem=problem, account=account)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


def problem_of(result: LoginResult) -> SetupProblem | None:
    """The known setup failure a finished login shows, if any (a success or a cancel has none)."""
    if result.ok:
        return None
    return first_login.problem_in(result.message)


class SetupHelpOnFailure:
    """Opens the setup help when a login fails for a known setup reason (or on a TD Ameritrade
    account, whose API is retired). `help` is the window last opened (tests read it)."""

    def __init__(self, window: QWidget, controller: Controller) -> None:
        self.window = window
        self.controller = controller
        self.help: SetupHelp | None = None
        controller.login_finished.connect(self.on_login_finished)

    def on_login_finished(self, result: LoginResult) -> None:
        if result.ok or result.outcome in (LoginOutcome.CANCELLED, LoginOutcome.CLOSED):
            return  # the user's own choice is no setup problem
        service = self.controller.service
        try:
            account = service.config.find(result.account)
        except Exception:  # a damaged config is the window's to report, not this helper's
            account = None
        provider = account.provider if account is not None else "schwab"
        problem = problem_of(result)
        if problem is None and provider != "tdameritrade":
            return
        callback = account.callback_url if account is not None else SANDBOX_CALLBACK_URL
        if self.help is not None:
            self.help.close()
        self.help = open_setup_help(
            self.window, provider=provider, callback_url=callback, problem=problem, account=result.account
        )
        self.help.destroyed.connect(self._forget)

    @Slot()
    def _forget(self) -> None:
        self.help = None
