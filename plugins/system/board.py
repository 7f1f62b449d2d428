"""Raspberry Pi board names from the ``Revision`` code in /proc/cpuinfo.

Codes RaspAP knows keep RaspAP's exact strings (clients match on them); every
other code is decoded from its bits into the name the board's device tree
gives (without "Raspberry "), with the RAM size, e.g.
"Pi 4 Model B Rev 1.4 (4 GB)". See
https://www.raspberrypi.com/documentation/computers/raspberry-pi.html#raspberry-pi-revision-codes
"""

from __future__ import annotations

from typing import NamedTuple

UNKNOWN = "Unknown Device"

#: RaspAP 3.5.5's table (api/modules/system.py), verbatim.
RASPAP_NAMES: dict[str, str] = {
    "0002": "Model B Revision 1.0",
    "0003": "Model B Revision 1.0 + ECN0001",
    "0004": "Model B Revision 2.0 (256 MB)",
    "0005": "Model B Revision 2.0 (256 MB)",
    "0006": "Model B Revision 2.0 (256 MB)",
    "0007": "Model A",
    "0008": "Model A",
    "0009": "Model A",
    "000d": "Model B Revision 2.0 (512 MB)",
    "000e": "Model B Revision 2.0 (512 MB)",
    "000f": "Model B Revision 2.0 (512 MB)",
    "0010": "Model B+",
    "0013": "Model B+",
    "0011": "Compute Module",
    "0012": "Model A+",
    "a01041": "a01041",
    "a21041": "a21041",
    "900092": "PiZero 1.2",
    "900093": "PiZero 1.3",
    "9000c1": "PiZero W",
    "a02082": "Pi 3 Model B",
    "a22082": "Pi 3 Model B",
    "a32082": "Pi 3 Model B",
    "a52082": "Pi 3 Model B",
    "a020d3": "Pi 3 Model B+",
    "a220a0": "Compute Module 3",
    "a020a0": "Compute Module 3",
    "a02100": "Compute Module 3+",
    "a03111": "Model 4B Revision 1.1 (1 GB)",
    "b03111": "Model 4B Revision 1.1 (2 GB)",
    "c03111": "Model 4B Revision 1.1 (4 GB)",
    "a03140": "Compute Module 4 (1 GB)",
    "b03140": "Compute Module 4 (2 GB)",
    "c03140": "Compute Module 4 (4 GB)",
    "d03140": "Compute Module 4 (8 GB)",
    "c04170": "Pi 5 (4 GB)",
    "d04170": "Pi 5 (8 GB)",
}

#: Board type code: (short name as Raspberry Pi's table has it, device-tree name).
TYPES: dict[int, tuple[str, str]] = {
    0x00: ("A", "Pi Model A"),
    0x01: ("B", "Pi Model B"),
    0x02: ("A+", "Pi Model A Plus"),
    0x03: ("B+", "Pi Model B Plus"),
    0x04: ("2B", "Pi 2 Model B"),
    0x05: ("Alpha", "Pi Alpha"),
    0x06: ("CM1", "Pi Compute Module"),
    0x08: ("3B", "Pi 3 Model B"),
    0x09: ("Zero", "Pi Zero"),
    0x0A: ("CM3", "Pi Compute Module 3"),
    0x0C: ("Zero W", "Pi Zero W"),
    0x0D: ("3B+", "Pi 3 Model B Plus"),
    0x0E: ("3A+", "Pi 3 Model A Plus"),
    0x0F: ("Internal", "Pi (internal use)"),
    0x10: ("CM3+", "Pi Compute Module 3 Plus"),
    0x11: ("4B", "Pi 4 Model B"),
    0x12: ("Zero 2 W", "Pi Zero 2 W"),
    0x13: ("400", "Pi 400"),
    0x14: ("CM4", "Pi Compute Module 4"),
    0x15: ("CM4S", "Pi Compute Module 4S"),
    0x16: ("Internal", "Pi (internal use)"),
    0x17: ("5", "Pi 5 Model B"),
    0x18: ("CM5", "Pi Compute Module 5"),
    0x19: ("500", "Pi 500"),
    0x1A: ("CM5 Lite", "Pi Compute Module 5 Lite"),
    0x1B: ("CM0", "Pi Compute Module 0"),
}
MEMORY_MB = {0: 256, 1: 512, 2: 1024, 3: 2048, 4: 4096, 5: 8192, 6: 16384}
MANUFACTURERS = {
    0: "Sony UK",
    1: "Egoman",
    2: "Embest",
    3: "Sony Japan",
    4: "Embest",
    5: "Stadium",
}
PROCESSORS = {0: "BCM2835", 1: "BCM2836", 2: "BCM2837", 3: "BCM2711", 4: "BCM2712"}

#: Old-style codes (before the Pi 2): type, revision, RAM (MB, None when it varies), maker.
OLD_STYLE: dict[int, tuple[int, str, int | None, str]] = {
    0x02: (0x01, "1.0", 256, "Egoman"),
    0x03: (0x01, "1.0", 256, "Egoman"),
    0x04: (0x01, "2.0", 256, "Sony UK"),
    0x05: (0x01, "2.0", 256, "Qisda"),
    0x06: (0x01, "2.0", 256, "Egoman"),
    0x07: (0x00, "2.0", 256, "Egoman"),
    0x08: (0x00, "2.0", 256, "Sony UK"),
    0x09: (0x00, "2.0", 256, "Qisda"),
    0x0D: (0x01, "2.0", 512, "Egoman"),
    0x0E: (0x01, "2.0", 512, "Sony UK"),
    0x0F: (0x01, "2.0", 512, "Egoman"),
    0x10: (0x03, "1.2", 512, "Sony UK"),
    0x11: (0x06, "1.0", 512, "Sony UK"),
    0x12: (0x02, "1.1", 256, "Sony UK"),
    0x13: (0x03, "1.2", 512, "Embest"),
    0x14: (0x06, "1.0", 512, "Embest"),
    0x15: (0x02, "1.1", None, "Embest"),
}


class Board(NamedTuple):
    code: str
    #: The /system ``rpiRevision`` string.
    name: str
    type: str | None = None
    revision: str | None = None
    memory_mb: int | None = None
    manufacturer: str | None = None
    processor: str | None = None


def decode(code: str | None) -> Board:
    """The board a ``Revision`` value names (``Unknown Device`` when none)."""
    code = (code or "").strip().lower()
    if not code:
        return Board("", UNKNOWN)
    try:
        value = int(code, 16)
    except ValueError:
        return Board(code, UNKNOWN)
    board = _decode_new(code, value) if value & (1 << 23) else _decode_old(code, value)
    raspap = RASPAP_NAMES.get(code)
    return board if raspap is None else board._replace(name=raspap)


def _name(type_code: int, revision: str, memory_mb: int | None) -> str:
    name = TYPES.get(type_code, (None, f"Pi (type 0x{type_code:02x})"))[1]
    text = f"{name} Rev {revision}"
    if memory_mb is not None:
        text += f" ({memory_mb // 1024} GB)" if memory_mb >= 1024 else f" ({memory_mb} MB)"
    return text


def _decode_new(code: str, value: int) -> Board:
    type_code = (value >> 4) & 0xFF
    revision = f"1.{value & 0xF}"
    memory = MEMORY_MB.get((value >> 20) & 0x7)
    return Board(
        code,
        _name(type_code, revision, memory),
        TYPES[type_code][0] if type_code in TYPES else None,
        revision,
        memory,
        MANUFACTURERS.get((value >> 16) & 0xF),
        PROCESSORS.get((value >> 12) & 0xF),
    )


def _decode_old(code: str, value: int) -> Board:
    # Bit 24 is the old-style "warranty void" (overvoltage) flag, e.g. 1000002.
    known = OLD_STYLE.get(value & 0xFFFFFF)
    if known is None:
        return Board(code, UNKNOWN)
    type_code, revision, memory, maker = known
    name = _name(type_code, revision, memory)
    return Board(code, name, TYPES[type_code][0], revision, memory, maker, "BCM2835")
