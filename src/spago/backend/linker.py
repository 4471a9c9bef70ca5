"""A small in-process linker for the x86-64 ELF object files spago emits.

Loading code this way means a process whose kernels all come from the disk cache never loads LLVM: no
libllvmlite (tens of MiB of its pages become resident as soon as it is imported) and no JIT engine's
heap. It handles what LLVM emits for spago's kernels on x86-64 Linux — code, read-only data, data and
zeroed sections, and the relocations of the small and large code models (with a GOT built here); it
refuses anything else with :class:`LinkError`, and :mod:`spago.backend.jit` then links through LLVM's
MCJIT as before. Unwind tables (``.eh_frame``) are not loaded: spago's kernels raise no exceptions.
"""
from __future__ import annotations

import ctypes
import functools
import mmap
import platform
import struct
import sys
import threading
from typing import Sequence

from ..errors import SpagoError


class LinkError(SpagoError):
    """An object file this linker does not handle (or a malformed one)."""


# ELF constants (System V gABI, x86-64 psABI)
ET_REL, EM_X86_64 = 1, 62
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 1, 2, 3, 4, 8, 9
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY = 14, 15, 16
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON = 0, 0xFF00, 0xFFF1, 0xFFF2
STB_WEAK = 2
STT_TLS = 6
UNLOADED = (".eh_frame",)  # allocated by the ELF flags, but needed only by unwinders

# relocation type -> (width in bytes, 32-bit range: signed / unsigned / None for 64-bit, value)
# S symbol, A addend, P place, G the symbol's GOT slot offset, GOT the table's address
RELOCATIONS = {
    1: (8, None, lambda S, A, **_: S + A),                        # R_X86_64_64
    2: (4, True, lambda S, A, P, **_: S + A - P),                 # R_X86_64_PC32
    4: (4, True, lambda S, A, P, **_: S + A - P),                 # R_X86_64_PLT32 (no PLT: straight to the symbol)
    9: (4, True, lambda G, GOT, A, P, **_: G + GOT + A - P),      # R_X86_64_GOTPCREL
    10: (4, False, lambda S, A, **_: S + A),                      # R_X86_64_32
    11: (4, True, lambda S, A, **_: S + A),                       # R_X86_64_32S
    24: (8, None, lambda S, A, P, **_: S + A - P),                # R_X86_64_PC64
    25: (8, None, lambda S, A, GOT, **_: S + A - GOT),            # R_X86_64_GOTOFF64
    26: (4, True, lambda GOT, A, P, **_: GOT + A - P),            # R_X86_64_GOTPC32
    27: (8, None, lambda G, A, **_: G + A),                       # R_X86_64_GOT64
    28: (8, None, lambda G, GOT, A, P, **_: G + GOT + A - P),     # R_X86_64_GOTPCREL64
    29: (8, None, lambda GOT, A, P, **_: GOT + A - P),            # R_X86_64_GOTPC64
    31: (8, None, lambda S, A, GOT, **_: S + A - GOT),            # R_X86_64_PLTOFF64 (no PLT: the symbol itself)
    41: (4, True, lambda G, GOT, A, P, **_: G + GOT + A - P),     # R_X86_64_GOTPCRELX
    42: (4, True, lambda G, GOT, A, P, **_: G + GOT + A - P),     # R_X86_64_REX_GOTPCRELX
}
USES_GOT_SLOT = {9, 27, 28, 41, 42}
PAGE = mmap.PAGESIZE
MAX_IMAGE = 1 << 30  # no kernel object comes near; a corrupt section size must not allocate terabytes

_lock = threading.Lock()
_defined: dict = {}  # name -> address of symbols spago provides to generated code
_regions: list = []  # (address, size) of every loaded object; code is never unloaded


def supported() -> bool:
    """Whether this host's objects are ones this linker handles."""
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def define(name: str, address: int) -> None:
    """Make ``name`` resolve to ``address`` in objects linked from now on."""
    _defined[name] = address


def defined() -> dict:
    return dict(_defined)


class _Libc:
    """mmap/mprotect/dlsym through ctypes."""

    def __init__(self):
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.mmap = self.lib.mmap
        self.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        self.mmap.restype = ctypes.c_void_p
        self.mprotect = self.lib.mprotect
        self.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.mprotect.restype = ctypes.c_int
        self.munmap = self.lib.munmap
        self.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.munmap.restype = ctypes.c_int

    def symbol(self, name: str) -> int | None:
        try:
            return ctypes.cast(getattr(self.lib, name), ctypes.c_void_p).value
        except AttributeError:
            return None


@functools.lru_cache(maxsize=None)
def _libc() -> _Libc:
    return _Libc()


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def _unpack(fmt: str, data: bytes, offset: int) -> tuple:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise LinkError(f"object file truncated at byte {offset}") from None


def _string(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        raise LinkError("object file: a name lies outside its string table")
    return table[offset:end].decode("utf-8", "replace")


class _Section:
    __slots__ = ("index", "name", "type", "flags", "offset", "size", "link", "info", "align", "entsize",
                 "address")

    def __init__(self, index: int, fields: tuple, name: str):
        (_, self.type, self.flags, _, self.offset, self.size, self.link, self.info, self.align,
         self.entsize) = fields
        self.index, self.name, self.address = index, name, None

    @property
    def loaded(self) -> bool:
        return bool(self.flags & SHF_ALLOC) and self.name not in UNLOADED and self.type in (SHT_PROGBITS,
                                                                                          SHT_NOBITS)

    def content(self, data: bytes) -> bytes:
        if self.type == SHT_NOBITS:
            return b""
        if self.offset + self.size > len(data):
            raise LinkError(f"object file: section {self.name!r} runs past the end of the file")
        return data[self.offset:self.offset + self.size]


def _sections(data: bytes) -> list:
    if data[:4] != b"\x7fELF" or len(data) < 64:
        raise LinkError("not an ELF object file")
    if data[4] != 2 or data[5] != 1:
        raise LinkError("not a 64-bit little-endian ELF object")
    e_type, e_machine = _unpack("<HH", data, 16)
    if e_type != ET_REL or e_machine != EM_X86_64:
        raise LinkError(f"not an x86-64 relocatable object (type {e_type}, machine {e_machine})")
    (shoff,) = _unpack("<Q", data, 40)
    shentsize, shnum, shstrndx = _unpack("<HHH", data, 58)
    if shentsize != 64 or not 0 < shnum < 65280 or shstrndx >= shnum:
        raise LinkError("object file: unexpected section header table")
    raw = [_unpack("<IIQQQQIIQQ", data, shoff + 64 * k) for k in range(shnum)]
    names = _Section(shstrndx, raw[shstrndx], "").content(data)
    sections = [_Section(k, fields, _string(names, fields[0]) if k else "") for k, fields in enumerate(raw)]
    for s in sections:
        if (s.type in (SHT_REL, SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY) or s.flags & SHF_TLS
                or s.name.startswith((".ctors", ".dtors"))):
            raise LinkError(f"object file has a {s.name!r} section, which this linker does not handle")
        if s.align & (s.align - 1) or s.align > PAGE:
            raise LinkError(f"object file: section {s.name!r} has alignment {s.align}")
    return sections


def _symbols(data: bytes, sections: list) -> list:
    tables = [s for s in sections if s.type == SHT_SYMTAB]
    if len(tables) != 1:
        raise LinkError(f"object file has {len(tables)} symbol tables, expected one")
    table = tables[0]
    if table.link >= len(sections):
        raise LinkError("object file: symbol table without a string table")
    strings, raw = sections[table.link].content(data), table.content(data)
    out = []
    for k in range(len(raw) // 24):
        name, info, _, shndx, value, size = _unpack("<IBBHQQ", raw, 24 * k)
        if info & 0xF == STT_TLS:
            raise LinkError("object file has thread-local symbols, which this linker does not handle")
        out.append((_string(strings, name) if name else "", info >> 4, shndx, value, size))
    return out


def _layout(sections: list, symbols: list) -> tuple:
    """Offsets of the loaded sections in one region, grouped by protection: code (read + execute),
    read-only data and the GOT (read), writable data and common symbols (read + write)."""
    groups = {"code": [], "rodata": [], "data": []}
    for s in sections:
        if s.loaded:
            kind = "code" if s.flags & SHF_EXECINSTR else "data" if s.flags & SHF_WRITE else "rodata"
            groups[kind].append(s)
    offsets, ends, at = {}, {}, 0
    commons = {}
    for kind in ("code", "rodata", "data"):
        at = _round_up(at, PAGE)
        start = at
        for s in groups[kind]:
            at = _round_up(at, max(s.align, 1))
            offsets[s.index] = at
            at += s.size
        if kind == "rodata":  # the GOT: filled before the group is made read-only
            at = _round_up(at, 8)
            got_offset = at
            at += 8 * len(symbols)  # at most one slot per symbol; unused ones cost 8 bytes each
        if kind == "data":
            for k, (_, _, shndx, value, size) in enumerate(symbols):
                if shndx == SHN_COMMON:
                    at = _round_up(at, max(value, 1))
                    commons[k] = at
                    at += size
        ends[kind] = (start, at)
    if at > MAX_IMAGE:
        raise LinkError(f"object file asks for {at} bytes of sections, more than {MAX_IMAGE}")
    return offsets, commons, got_offset, ends, _round_up(max(at, 1), PAGE)


def load(data: bytes, names: Sequence[str]) -> dict:
    """Link ``data`` (an ELF relocatable object) into this process; returns the addresses of ``names``."""
    if not supported():
        raise LinkError(f"this linker handles x86-64 Linux objects, not {sys.platform} {platform.machine()}")
    data = bytes(data)
    sections = _sections(data)
    symbols = _symbols(data, sections)
    by_name = {sym[0]: k for k, sym in enumerate(symbols) if sym[0] and sym[2] != SHN_UNDEF}
    for name in names:
        if name not in by_name:
            raise SpagoError(f"compiled object has no symbol {name!r}")
    offsets, commons, got_offset, groups, size = _layout(sections, symbols)
    with _lock:
        libc = _libc()
        base = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                         -1, 0)
        if base in (None, ctypes.c_void_p(-1).value):
            raise LinkError(f"could not map {size} bytes for compiled code (errno {ctypes.get_errno()})")
        try:
            image = bytearray(size)
            for s in sections:
                if s.index in offsets:
                    s.address = base + offsets[s.index]
                    body = s.content(data)
                    image[offsets[s.index]:offsets[s.index] + len(body)] = body
            got = base + got_offset
            addresses = [_resolve(sym, k, sections, commons, base, got, libc) for k, sym in enumerate(symbols)]
            slots: dict = {}
            for s in sections:
                if s.type == SHT_RELA and s.info < len(sections) and sections[s.info].index in offsets:
                    _relocate(image, data, s, sections[s.info], offsets, symbols, addresses, slots, got,
                              got_offset)
            ctypes.memmove(base, bytes(image), size)
            for kind, prot in (("code", mmap.PROT_READ | mmap.PROT_EXEC), ("rodata", mmap.PROT_READ)):
                start, end = groups[kind]
                if end > start and libc.mprotect(base + start, _round_up(end - start, PAGE), prot) != 0:
                    raise LinkError(f"mprotect failed (errno {ctypes.get_errno()}): this system may forbid "
                                    f"executable memory")
        except BaseException:
            libc.munmap(base, size)
            raise
        _regions.append((base, size))
    return {name: addresses[by_name[name]] for name in names}


def _resolve(symbol: tuple, k: int, sections: list, commons: dict, base: int, got: int, libc: _Libc) -> int:
    name, bind, shndx, value, _ = symbol
    if shndx == SHN_UNDEF:
        if not name:
            return 0
        if name == "_GLOBAL_OFFSET_TABLE_":
            return got
        address = _defined.get(name) or libc.symbol(name)
        if address is None:
            if bind == STB_WEAK:
                return 0
            # not a LinkError: LLVM's linker would abort the process on it rather than fall back
            raise SpagoError(f"compiled object calls {name!r}, which this process does not have")
        return address
    if shndx == SHN_ABS:
        return value
    if shndx == SHN_COMMON:
        return base + commons[k]
    if shndx >= SHN_LORESERVE or shndx >= len(sections):
        raise LinkError(f"symbol {name!r} in section {shndx:#x}, which this linker does not handle")
    section = sections[shndx]
    if section.address is None:
        return 0  # a symbol of an unloaded section (unwind tables): nothing loaded refers to it
    return section.address + value


def _relocate(image: bytearray, data: bytes, rela: _Section, target: _Section, offsets: dict, symbols: list,
              addresses: list, slots: dict, got: int, got_offset: int) -> None:
    raw = rela.content(data)
    for k in range(len(raw) // 24):
        offset, info, addend = _unpack("<QQq", raw, 24 * k)
        sym, kind = info >> 32, info & 0xFFFFFFFF
        if kind == 0:
            continue
        if kind not in RELOCATIONS:
            raise LinkError(f"relocation type {kind} in {target.name!r}, which this linker does not handle")
        if sym >= len(symbols):
            raise LinkError("object file: a relocation names a symbol past the symbol table")
        width, signed, formula = RELOCATIONS[kind]
        if offset + width > target.size:
            raise LinkError(f"object file: a relocation lies outside section {target.name!r}")
        if symbols[sym][2] not in (SHN_UNDEF, SHN_ABS, SHN_COMMON) and addresses[sym] == 0:
            raise LinkError(f"{target.name!r} refers to a section that is not loaded")
        place = target.address + offset
        slot = 0
        if kind in USES_GOT_SLOT:
            if sym not in slots:
                slots[sym] = 8 * len(slots)
                struct.pack_into("<Q", image, got_offset + slots[sym], addresses[sym])
            slot = slots[sym]
        value = formula(S=addresses[sym], A=addend, P=place, G=slot, GOT=got)
        at = offsets[target.index] + offset
        if width == 8:
            struct.pack_into("<Q", image, at, value & 0xFFFFFFFFFFFFFFFF)
        elif signed:
            if not -2**31 <= value < 2**31:
                raise LinkError(f"relocation out of 32-bit range in {target.name!r}")
            struct.pack_into("<i", image, at, value)
        else:
            if not 0 <= value < 2**32:
                raise LinkError(f"relocation out of 32-bit range in {target.name!r}")
            struct.pack_into("<I", image, at, value)

