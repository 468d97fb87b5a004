#!/usr/bin/env python3
"""Make TorchSharp's native glue load on hosts whose libstdc++ predates GLIBCXX_3.4.32.

libLibTorchSharp.so (TorchSharp-cpu 0.107.0) was linked with a newer GCC and asks for the version
GLIBCXX_3.4.32, which Debian 12's libstdc++ (3.4.30) does not define. The only symbol it takes
from that version is std::ios_base_library_init, which nothing relocates against, so marking the
version requirement weak (VER_FLG_WEAK in its Vernaux entry) lets the dynamic loader accept the
library. The patch is idempotent and is applied only where the host libstdc++ lacks the version.

usage: patch-libtorchsharp.py FILE.so [FILE.so ...]   (exit 0 when patched or nothing to do)
"""
import os
import struct
import subprocess
import sys

WANTED = b"GLIBCXX_3.4.32"
VER_FLG_WEAK = 0x2
SHT_GNU_VERNEED = 0x6FFFFFFE


def host_has_version() -> bool:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    for line in out.splitlines():
        if "libstdc++.so.6 " in line and "=>" in line:
            path = line.split("=>")[-1].strip()
            with open(path, "rb") as f:
                return WANTED in f.read()
    return False


def patch(path: str) -> str:
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SystemExit(f"{path}: not a little-endian ELF64 file")
        e_shoff, = struct.unpack_from("<Q", data, 0x28)
        e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
        for sh_name, sh_type, _, _, sh_offset, _, sh_link, sh_info, _, _ in sections:
            if sh_type != SHT_GNU_VERNEED:
                continue
            strtab = sections[sh_link][4]
            need = sh_offset
            for _ in range(sh_info):
                _, vn_cnt, _, vn_aux, vn_next = struct.unpack_from("<HHIII", data, need)
                aux = need + vn_aux
                for _ in range(vn_cnt):
                    _, vna_flags, _, vna_name, vna_next = struct.unpack_from("<IHHII", data, aux)
                    name_at = strtab + vna_name
                    name = bytes(data[name_at:data.index(b"\0", name_at)])
                    if name == WANTED:
                        if vna_flags & VER_FLG_WEAK:
                            return "already patched"
                        struct.pack_into("<H", data, aux + 4, vna_flags | VER_FLG_WEAK)
                        f.seek(0)
                        f.write(data)
                        return "patched"
                    aux += vna_next
                need += vn_next
        return f"no {WANTED.decode()} requirement"


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    if host_has_version():
        return 0
    for path in sys.argv[1:]:
        if os.path.exists(path):
            print(f"patch-libtorchsharp: {path}: {patch(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
