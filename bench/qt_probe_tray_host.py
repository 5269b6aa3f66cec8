"""A stand-in system tray host for benchmarks: a StatusNotifierWatcher on the session bus.

    python bench/qt_probe_tray_host.py

Prints READY once it owns the name, then ITEM <service> for each tray icon that registers;
runs until killed.

Qt on Linux (xcb) shows a QSystemTrayIcon through D-Bus (StatusNotifierItem) whenever the
service ``org.kde.StatusNotifierWatcher`` is on the session bus, as on KDE, or GNOME with the
AppIndicator extension. A headless benchmark machine has no such desktop, so tdgui would find
no tray and show its main window instead of sitting in the tray. This script owns that name
and answers the few calls Qt makes (register an item, read the host properties); it never
calls back into the app, so it adds no traffic of its own to an idle app.
"""

from __future__ import annotations

import sys

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

SERVICE = "org.kde.StatusNotifierWatcher"
PATH = "/StatusNotifierWatcher"
INTROSPECTION = f"""<node>
 <interface name="{SERVICE}">
  <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
  <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
  <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
  <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
  <property name="ProtocolVersion" type="i" access="read"/>
  <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
 </interface>
</node>"""


def main() -> int:
    conn = open_dbus_connection(bus="SESSION")
    reply = conn.send_and_get_reply(message_bus.RequestName(SERVICE, 4))  # 4: do not queue
    if reply.body[0] != 1:
        print(f"tray host: could not own {SERVICE} (reply {reply.body[0]})", file=sys.stderr)
        return 1
    items: list[str] = []
    emitter = DBusAddress(PATH, interface=SERVICE)
    print("READY", flush=True)

    def props() -> dict[str, tuple[str, object]]:
        return {
            "RegisteredStatusNotifierItems": ("as", list(items)),
            "IsStatusNotifierHostRegistered": ("b", True),
            "ProtocolVersion": ("i", 0),
        }

    while True:
        msg = conn.receive()
        if msg.header.message_type != MessageType.method_call:
            continue
        member = msg.header.fields.get(HeaderFields.member)
        sender = msg.header.fields.get(HeaderFields.sender, "")
        if member in ("RegisterStatusNotifierItem", "RegisterStatusNotifierHost"):
            conn.send(new_method_return(msg))
            if member == "RegisterStatusNotifierItem":
                service = msg.body[0] if msg.body else sender
                items.append(service if service.startswith(":") else f"{sender}{service}")
                conn.send(new_signal(emitter, "StatusNotifierItemRegistered", "s", (items[-1],)))
                print(f"ITEM {items[-1]}", flush=True)
        elif member == "Get":
            value = props().get(msg.body[1])
            if value is None:
                conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownProperty"))
            else:
                conn.send(new_method_return(msg, "v", (value,)))
        elif member == "GetAll":
            conn.send(new_method_return(msg, "a{sv}", (props(),)))
        elif member == "Introspect":
            conn.send(new_method_return(msg, "s", (INTROSPECTION,)))
        else:
            conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))


if __name__ == "__main__":
    raise SystemExit(main())
