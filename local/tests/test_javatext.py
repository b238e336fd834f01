"""Bytes read as text as the Java runtime reads them, held to a real JVM: the same bytes given to
``new String(bytes, UTF_8)`` in a Java program (run from source, as JDK 11 and later can)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from statefun_local.javatext import java_utf8

# reads lines of hex, writes each line's bytes as Java decodes them, re-encoded as UTF-8 hex
# (exact: what Java decodes has no unpaired surrogate)
DECODER = """
import java.io.*;
import java.nio.charset.StandardCharsets;

public class Decode {
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            byte[] data = new byte[line.length() / 2];
            for (int i = 0; i < data.length; i++) {
                data[i] = (byte) Integer.parseInt(line.substring(2 * i, 2 * i + 2), 16);
            }
            String decoded = new String(data, StandardCharsets.UTF_8);
            for (byte b : decoded.getBytes(StandardCharsets.UTF_8)) {
                out.append(String.format("%02x", b));
            }
            out.append('\\n');
        }
        System.out.print(out);
    }
}
"""

#: bytes at the edges of each rule: ASCII, continuations, leads of 2, 3 and 4 bytes, none
EDGES = [0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
         0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF]  # fmt: skip


def java_decoded(tmp_path: Path, cases: list[bytes]) -> list[str]:
    if shutil.which("java") is None:
        pytest.skip("needs java on the PATH (a JDK 11 or later)")
    source = tmp_path / "Decode.java"
    source.write_text(DECODER)
    lines = "".join(case.hex() + "\n" for case in cases)
    done = subprocess.run(["java", str(source)], input=lines, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [bytes.fromhex(line).decode() for line in done.stdout.split("\n")[: len(cases)]]


def test_bytes_that_are_not_utf8_are_replaced_as_java_replaces_them(tmp_path: Path) -> None:
    chosen = [
        b"\xed\xa0\x80",  # an encoded surrogate: Python replaces each byte
        b"\xed\xa0\xbd\xed\xb8\x80",  # an emoji in CESU-8
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\xed\xa0",  # cut short
        b"a\xe2\x82",
        b"\xf0\x9f\x98",
        b"\xf0\x9f\x41",
        b"\xc3",
        b"\xc0\x80",  # overlong
        b"\xe0\x80\x80",
        b"\xf0\x80\x80\x80",
        b"K\xc3\xa9 \xf0\x9f\x99\x82",  # valid
    ]
    rng = random.Random(7)
    generated = [bytes(rng.choice(EDGES) for _ in range(rng.randint(1, 7))) for _ in range(3000)]
    cases = chosen + generated
    expected = java_decoded(tmp_path, cases)
    assert [java_utf8(case) for case in cases] == expected
    assert java_utf8(b"\xed\xa0\x80") == "\ufffd" != b"\xed\xa0\x80".decode("utf-8", "replace")
