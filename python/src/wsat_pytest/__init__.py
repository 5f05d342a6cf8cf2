"""Start wsat, an ESP-AT modem emulator, from Python tests.

    from wsat_pytest import Wsat

    with Wsat("--no-stored-ap") as modem:      # wsat --tcp 127.0.0.1:0 --control 127.0.0.1:0 ...
        port = serial.serial_for_url(modem.url) # socket://127.0.0.1:PORT
        modem.control.answer("AT+CWJAP", "busy")

With pytest, the `wsat`, `wsat_factory` and `wsat_peer` fixtures come from
the plugin `wsat_pytest.plugin`, which `pip install` registers.
"""

from .control import Control, ControlError, PeerControl
from .host import AtHost
from .process import (
    Peer,
    PeerUnavailable,
    Wsat,
    WsatError,
    WsatNotFound,
    find_binary,
    parse_startup_line,
)

__all__ = [
    "AtHost",
    "Control",
    "ControlError",
    "Peer",
    "PeerControl",
    "PeerUnavailable",
    "Wsat",
    "WsatError",
    "WsatNotFound",
    "find_binary",
    "parse_startup_line",
]
__version__ = "0.1.0"
