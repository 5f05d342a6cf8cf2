"""A stand-in for CircuitPython's `busio`, which has no CPython build.

adafruit_espatcontrol names `busio.UART` in a type annotation, which CPython
evaluates when the module loads. The UART it is given is a pyserial port.
"""


class UART:
    """Never constructed: the host passes a pyserial port instead."""
