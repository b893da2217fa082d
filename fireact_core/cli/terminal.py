"""What the command line prints goes through `SafeOutput`: control characters from the data (an escape
sequence in a question, a carriage return in an answer) are shown as `\\uXXXX` escapes instead of being obeyed
by the terminal. The escape is valid inside a JSON string too, so `--json` output stays JSON."""

from __future__ import annotations

from typing import Any, TextIO

# C0 controls but newline and tab, DEL, C1 controls, and the Unicode marks that reorder or hide text
_CONTROLS = [c for c in range(0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0)) + \
    list(range(0x200B, 0x2010)) + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + [0x2028, 0x2029, 0xFEFF]
TABLE = {c: f"\\u{c:04x}" for c in _CONTROLS}


def escape(text: str) -> str:
    """`text` with every control character written as an escape."""
    return text.translate(TABLE)


class SafeOutput:
    """A text stream that escapes control characters on their way to the wrapped one."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(text.translate(TABLE))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
