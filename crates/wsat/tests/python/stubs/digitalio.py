"""A stand-in for CircuitPython's `digitalio`, which has no CPython build.

adafruit_espatcontrol imports `DigitalInOut` and `Direction` when it loads
and uses them only for the optional reset and RTS pins. Over pyserial's
`socket://` there are no pins, so a pin here only remembers what was set.
"""


class Direction:
    INPUT = "input"
    OUTPUT = "output"


class Pull:
    UP = "up"
    DOWN = "down"


class DriveMode:
    PUSH_PULL = "push_pull"
    OPEN_DRAIN = "open_drain"


class DigitalInOut:
    def __init__(self, pin=None):
        self.pin = pin
        self.direction = Direction.INPUT
        self.value = False
        self.pull = None

    def switch_to_output(self, value=False, drive_mode=DriveMode.PUSH_PULL):
        self.direction = Direction.OUTPUT
        self.value = value

    def switch_to_input(self, pull=None):
        self.direction = Direction.INPUT
        self.pull = pull

    def deinit(self):
        pass
