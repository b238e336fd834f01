"""Bytes read as text the way the Java runtime reads them, so that an id is the same string on
statefun-local as on Flink.

The runtime turns a Kafka record's key into an id with ``new String(key, UTF_8)``, and the
playground image's HTTP server (Undertow) turns a percent-encoded path into text the same way.
Both put U+FFFD for bytes that are not UTF-8, as Python's ``"replace"`` does, but they cut the
bad bytes into replaced pieces differently: Java replaces an encoded surrogate (``ED A0 80``,
as CESU-8 writes half of an emoji) with one U+FFFD where Python puts one per byte, and a
truncated sequence at the end is one U+FFFD. The rules here are the JDK's (``String``'s UTF-8
decoder); ``local/tests/test_javatext.py`` holds them to a real JVM.
"""

from __future__ import annotations

__all__ = ["java_utf8"]

_REPLACEMENT = "\ufffd"


def java_utf8(data: bytes) -> str:
    """``data`` as Java's ``new String(data, StandardCharsets.UTF_8)`` reads it."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return _replaced(data)


def _continues(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _replaced(data: bytes) -> str:
    text: list[str] = []
    size = len(data)
    at = 0
    while at < size:
        lead = data[at]
        after = size - at - 1  # bytes after the lead byte
        if lead < 0x80:
            text.append(chr(lead))
            at += 1
        elif 0xC2 <= lead <= 0xDF:
            if after == 0:
                text.append(_REPLACEMENT)
                break
            if _continues(data[at + 1]):
                text.append(chr((lead & 0x1F) << 6 | data[at + 1] & 0x3F))
                at += 2
            else:
                text.append(_REPLACEMENT)
                at += 1
        elif 0xE0 <= lead <= 0xEF:
            second_bad = after >= 1 and (
                not _continues(data[at + 1]) or (lead == 0xE0 and data[at + 1] < 0xA0)
            )
            if after < 2:  # cut short: one replacement for what is left, unless it is no start
                text.append(_REPLACEMENT)
                if not second_bad:
                    break
                at += 1
            elif second_bad or not _continues(data[at + 2]):
                text.append(_REPLACEMENT)
                at += 1 if second_bad else 2
            else:
                code = (lead & 0x0F) << 12 | (data[at + 1] & 0x3F) << 6 | data[at + 2] & 0x3F
                text.append(_REPLACEMENT if 0xD800 <= code <= 0xDFFF else chr(code))
                at += 3
        elif 0xF0 <= lead <= 0xF7:
            second_bad = after >= 1 and (
                not _continues(data[at + 1])
                or (lead == 0xF0 and data[at + 1] < 0x90)
                or (lead == 0xF4 and data[at + 1] >= 0x90)
            )
            text.append(_REPLACEMENT)
            if after < 3:  # cut short
                if lead > 0xF4 or second_bad:
                    at += 1
                elif after == 2 and not _continues(data[at + 2]):
                    at += 2
                else:
                    break
                continue
            rest = data[at + 1 : at + 4]
            code = (
                (lead & 0x07) << 18
                | (rest[0] & 0x3F) << 12
                | (rest[1] & 0x3F) << 6
                | rest[2] & 0x3F
            )
            if all(_continues(byte) for byte in rest) and 0x10000 <= code <= 0x10FFFF:
                text[-1] = chr(code)
                at += 4
            elif lead > 0xF4 or second_bad:
                at += 1
            else:
                at += 2 if not _continues(rest[1]) else 3
        else:  # a continuation byte, or a byte no UTF-8 sequence starts with
            text.append(_REPLACEMENT)
            at += 1
    return "".join(text)
