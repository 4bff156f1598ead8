"""Minimal ELF64 little-endian reading (relocatable objects) and writing (sBPF programs)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from decentral_chain.errors import ElfFormatError

EM_BPF = 247
ET_REL = 1
ET_DYN = 3

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 0, 1, 2, 3
SHT_DYNAMIC, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 6, 8, 9, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4

STT_SECTION = 3
SHN_UNDEF = 0
STB_GLOBAL = 1

DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
DT_REL, DT_RELSZ, DT_RELENT = 17, 18, 19

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
R_BPF_64_32 = 10
_PHDR_SIZE = 56  # the loader insists on the Elf64_Phdr size even with no program headers


@dataclass(frozen=True, slots=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    addr: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    info: int
    shndx: int
    value: int
    size: int

    @property
    def is_undefined(self) -> bool:
        return self.shndx == SHN_UNDEF

    @property
    def is_section(self) -> bool:
        return self.info & 0xF == STT_SECTION


@dataclass(frozen=True, slots=True)
class ObjectFile:
    type: int
    machine: int
    flags: int
    entry: int
    sections: list[Section]
    symbols: list[Symbol]

    @staticmethod
    def parse(data: bytes) -> ObjectFile:
        if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
            raise ElfFormatError("not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise ElfFormatError("only ELF64 little-endian is supported")
        (_, e_type, e_machine, _, e_entry, _, e_shoff, e_flags, _, _, _, e_shentsize, e_shnum, e_shstrndx) = (
            _EHDR.unpack_from(data)
        )
        raw = []
        for i in range(e_shnum):
            raw.append(_SHDR.unpack_from(data, e_shoff + i * e_shentsize))
        shstr = raw[e_shstrndx] if e_shnum else None

        def name_at(table: bytes, off: int) -> str:
            end = table.index(b"\0", off)
            return table[off:end].decode()

        shstrtab = data[shstr[4] : shstr[4] + shstr[5]] if shstr else b""
        sections = []
        for i, (nm, typ, flags, addr, off, size, link, info, align, entsize) in enumerate(raw):
            body = b"" if typ == SHT_NOBITS else data[off : off + size]
            sections.append(
                Section(
                    i,
                    name_at(shstrtab, nm) if shstrtab else "",
                    typ,
                    flags,
                    off,
                    size,
                    link,
                    info,
                    align,
                    entsize,
                    addr,
                    body,
                )
            )
        symbols: list[Symbol] = []
        for sec in sections:
            if sec.type != SHT_SYMTAB:
                continue
            strtab = sections[sec.link].data
            for j in range(sec.size // _SYM.size):
                st_name, st_info, _, st_shndx, st_value, st_size = _SYM.unpack_from(sec.data, j * _SYM.size)
                name = name_at(strtab, st_name)
                if st_info & 0xF == STT_SECTION and not name:
                    name = sections[st_shndx].name
                symbols.append(Symbol(name, st_info, st_shndx, st_value, st_size))
        return ObjectFile(e_type, e_machine, e_flags, e_entry, sections, symbols)

    def symbol(self, name: str) -> Symbol | None:
        return next((s for s in self.symbols if s.name == name and not s.is_section), None)

    def relocations_for(self, section_index: int) -> Iterator[list[tuple[int, int, Symbol]]]:
        """Yield, per REL section applying to ``section_index``, its (offset, type, symbol) list."""
        for sec in self.sections:
            if sec.type == SHT_REL and sec.info == section_index:
                out = []
                for k in range(sec.size // _REL.size):
                    r_offset, r_info = _REL.unpack_from(sec.data, k * _REL.size)
                    out.append((r_offset, r_info & 0xFFFF_FFFF, self.symbols[r_info >> 32]))
                yield out


def write_program_elf(
    *,
    text: bytes,
    text_off: int,
    rodata: bytes,
    rodata_off: int,
    entry: int,
    dyn_calls: list[tuple[int, str]],
) -> bytes:
    """Write an sBPF v0 ``ET_DYN`` image; section addresses equal file offsets."""
    out = bytearray(text_off)
    out += text
    out += b"\0" * (rodata_off - len(out))
    out += rodata
    # (name, type, flags, offset, size, link, info, align, entsize)
    headers: list[tuple[str, int, int, int, int, int, int, int, int]] = [
        (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_off, len(text), 0, 0, 8, 0),
    ]
    if rodata:
        headers.append((".rodata", SHT_PROGBITS, SHF_ALLOC, rodata_off, len(rodata), 0, 0, 8, 0))

    if dyn_calls:
        names = sorted({n for _, n in dyn_calls})
        dynstr = bytearray(b"\0")
        name_off = {}
        for n in names:
            name_off[n] = len(dynstr)
            dynstr += n.encode() + b"\0"
        dynsym = bytearray(_SYM.size)
        sym_index = {}
        for i, n in enumerate(names, start=1):
            sym_index[n] = i
            dynsym += _SYM.pack(name_off[n], STB_GLOBAL << 4, 0, SHN_UNDEF, 0, 0)
        reldyn = b"".join(_REL.pack(off, (sym_index[n] << 32) | R_BPF_64_32) for off, n in dyn_calls)

        dynamic_off = _pad_to(out, 8)
        dynamic_size = 8 * 16
        dynsym_off = dynamic_off + dynamic_size
        dynstr_off = dynsym_off + len(dynsym)
        reldyn_off = _align(dynstr_off + len(dynstr), 8)
        dynamic = b"".join(
            struct.pack("<QQ", tag, val)
            for tag, val in (
                (DT_REL, reldyn_off),
                (DT_RELSZ, len(reldyn)),
                (DT_RELENT, _REL.size),
                (DT_SYMTAB, dynsym_off),
                (DT_SYMENT, _SYM.size),
                (DT_STRTAB, dynstr_off),
                (DT_STRSZ, len(dynstr)),
                (DT_NULL, 0),
            )
        )
        out += dynamic + dynsym + dynstr
        _pad_to(out, 8)
        out += reldyn
        dyn_index = len(headers) + 2  # .dynsym's header index (after the NULL header)
        headers += [
            (".dynamic", SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, dynamic_off, len(dynamic), dyn_index + 1, 0, 8, 16),
            (".dynsym", SHT_DYNSYM, SHF_ALLOC, dynsym_off, len(dynsym), dyn_index + 1, 1, 8, _SYM.size),
            (".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_off, len(dynstr), 0, 0, 1, 0),
            (".rel.dyn", SHT_REL, SHF_ALLOC, reldyn_off, len(reldyn), dyn_index, 0, 8, _REL.size),
        ]

    shstrtab = bytearray(b"\0")
    name_idx = []
    for h in headers + [(".shstrtab",)]:
        name_idx.append(len(shstrtab))
        shstrtab += h[0].encode() + b"\0"
    shstrtab_off = len(out)
    out += shstrtab
    shoff = _pad_to(out, 8)
    shdrs = bytearray(_SHDR.size)  # NULL section
    for i, (_name, typ, flags, off, size, link, info, align, entsize) in enumerate(headers):
        shdrs += _SHDR.pack(name_idx[i], typ, flags, off, off, size, link, info, align, entsize)
    shdrs += _SHDR.pack(name_idx[-1], SHT_STRTAB, 0, 0, shstrtab_off, len(shstrtab), 0, 0, 1, 0)
    out += shdrs
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    nsec = len(headers) + 2
    out[: _EHDR.size] = _EHDR.pack(
        ident, ET_DYN, EM_BPF, 1, entry, 0, shoff, 0, _EHDR.size, _PHDR_SIZE, 0, _SHDR.size, nsec, nsec - 1
    )
    return bytes(out)


def _pad_to(buf: bytearray, to: int) -> int:
    buf += b"\0" * (_align(len(buf), to) - len(buf))
    return len(buf)


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to
