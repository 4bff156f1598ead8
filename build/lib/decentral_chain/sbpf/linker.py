"""Link one BPF relocatable object (clang, ``-target bpfel``) into an sBPF v0 program.

The Solana loader accepts a small ELF: ``ET_DYN``, ``EM_BPF``, ``e_flags = 0`` and every
section's address equal to its file offset (the VM maps the file at ``MM_PROGRAM_START``).
We resolve everything we can statically and leave only syscalls to the loader:

* ``R_BPF_64_64``    ``lddw`` of a symbol          → absolute address, split over two imms
* ``R_BPF_64_ABS64`` pointer stored in ``.rodata``  → absolute address
* ``R_BPF_64_32``    ``call`` of a defined function → pc-relative call
* ``R_BPF_64_32``    ``call`` of an undefined name  → ``.rel.dyn`` entry against ``.dynsym``;
  the loader hashes the name (murmur3) and binds the syscall.

Anything else (writable data, unknown syscalls, other relocation kinds) is a
:class:`LinkError` that names the culprit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from decentral_chain.errors import LinkError
from decentral_chain.sbpf.elf import (
    EM_BPF,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHT_NOBITS,
    SHT_REL,
    ObjectFile,
    Section,
    Symbol,
    write_program_elf,
)

MM_PROGRAM_START = 0x1_0000_0000

R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_32 = 10

#: Syscalls the Solana runtime registers for sBPF v0 programs.
KNOWN_SYSCALLS = frozenset(
    {
        "abort",
        "sol_panic_",
        "sol_log_",
        "sol_log_64_",
        "sol_log_compute_units_",
        "sol_log_pubkey",
        "sol_log_data",
        "sol_create_program_address",
        "sol_try_find_program_address",
        "sol_sha256",
        "sol_keccak256",
        "sol_blake3",
        "sol_secp256k1_recover",
        "sol_get_clock_sysvar",
        "sol_get_epoch_schedule_sysvar",
        "sol_get_rent_sysvar",
        "sol_get_fees_sysvar",
        "sol_get_epoch_rewards_sysvar",
        "sol_get_last_restart_slot",
        "sol_memcpy_",
        "sol_memmove_",
        "sol_memcmp_",
        "sol_memset_",
        "sol_invoke_signed_c",
        "sol_invoke_signed_rust",
        "sol_alloc_free_",
        "sol_set_return_data",
        "sol_get_return_data",
        "sol_get_stack_height",
        "sol_get_processed_sibling_instruction",
        "sol_remaining_compute_units",
    }
)

# Sections that carry no runtime meaning and are dropped silently.
_IGNORED_PREFIXES = (".eh_frame", ".debug", ".BTF", ".llvm", ".comment", ".note", ".rel.eh_frame")


@dataclass(frozen=True, slots=True)
class LinkedProgram:
    elf: bytes
    text_size: int
    rodata_size: int
    syscalls: tuple[str, ...]


def link(obj_bytes: bytes, entry: str = "entrypoint") -> LinkedProgram:
    """Link a single relocatable BPF object into a loadable sBPF v0 ELF."""
    obj = ObjectFile.parse(obj_bytes)
    if obj.machine != EM_BPF:
        raise LinkError(f"not a BPF object (e_machine={obj.machine})")
    text, rodata = _select_sections(obj)

    # Output layout: [ELF header][.text][.rodata][dynamic sections][.shstrtab][headers].
    text_off = _align(64, 8)
    rodata_parts: dict[int, int] = {}  # object section index -> offset inside .rodata
    rodata_buf = bytearray()
    for sec in rodata:
        pad = _align(len(rodata_buf), max(sec.addralign, 1)) - len(rodata_buf)
        rodata_buf += b"\0" * pad
        rodata_parts[sec.index] = len(rodata_buf)
        rodata_buf += sec.data
    rodata_off = _align(text_off + len(text.data), 8)

    def place(sym: Symbol) -> int:
        """File offset (== address offset) of a defined symbol."""
        if sym.shndx == text.index:
            return text_off + sym.value
        if sym.shndx in rodata_parts:
            return rodata_off + rodata_parts[sym.shndx] + sym.value
        owner = obj.sections[sym.shndx].name if sym.shndx < len(obj.sections) else "?"
        raise LinkError(f"symbol `{sym.name or owner}` lives in unsupported section {owner}")

    text_buf = bytearray(text.data)
    dyn_calls: list[tuple[int, str]] = []  # (file offset of call insn, syscall name)
    for rel_sec in obj.relocations_for(text.index):
        for r_offset, r_type, sym in rel_sec:
            if r_type == R_BPF_64_32:
                if sym.is_undefined:
                    if sym.name not in KNOWN_SYSCALLS:
                        raise LinkError(
                            f"unknown syscall `{sym.name}` (called at .text+{r_offset:#x}); "
                            "the loader rejects programs that import it"
                        )
                    dyn_calls.append((text_off + r_offset, sym.name))
                    struct.pack_into("<i", text_buf, r_offset + 4, -1)
                    continue
                if sym.shndx != text.index or sym.is_section:
                    raise LinkError(f"unsupported call target `{sym.name}` at .text+{r_offset:#x}")
                rel = (sym.value - (r_offset + 8)) // 8
                struct.pack_into("<i", text_buf, r_offset + 4, rel)
            elif r_type == R_BPF_64_64:
                _undefined_data(sym, ".text", r_offset)
                (addend,) = struct.unpack_from("<I", text_buf, r_offset + 4)
                addr = MM_PROGRAM_START + place(sym) + addend
                struct.pack_into("<I", text_buf, r_offset + 4, addr & 0xFFFF_FFFF)
                struct.pack_into("<I", text_buf, r_offset + 12, addr >> 32)
            else:
                raise LinkError(f"unsupported relocation type {r_type} in .text at {r_offset:#x}")

    for sec in rodata:
        base = rodata_parts[sec.index]
        for rel_sec in obj.relocations_for(sec.index):
            for r_offset, r_type, sym in rel_sec:
                if r_type != R_BPF_64_ABS64:
                    raise LinkError(f"unsupported relocation type {r_type} in {sec.name}")
                _undefined_data(sym, sec.name, r_offset)
                (addend,) = struct.unpack_from("<Q", rodata_buf, base + r_offset)
                addr = MM_PROGRAM_START + place(sym) + addend
                struct.pack_into("<Q", rodata_buf, base + r_offset, addr)

    entry_sym = obj.symbol(entry)
    if entry_sym is None or entry_sym.shndx != text.index:
        raise LinkError(f"entry symbol `{entry}` is not defined in .text")

    elf = write_program_elf(
        text=bytes(text_buf),
        text_off=text_off,
        rodata=bytes(rodata_buf),
        rodata_off=rodata_off,
        entry=text_off + entry_sym.value,
        dyn_calls=dyn_calls,
    )
    names = tuple(sorted({name for _, name in dyn_calls}))
    return LinkedProgram(elf=elf, text_size=len(text_buf), rodata_size=len(rodata_buf), syscalls=names)


def _select_sections(obj: ObjectFile) -> tuple[Section, list[Section]]:
    text: Section | None = None
    rodata: list[Section] = []
    for sec in obj.sections:
        if not sec.flags & SHF_ALLOC or sec.name.startswith(_IGNORED_PREFIXES):
            continue
        if sec.flags & SHF_WRITE or sec.type == SHT_NOBITS:
            culprits = ", ".join(s.name for s in obj.symbols if s.shndx == sec.index and s.name)
            raise LinkError(
                f"writable section {sec.name} ({culprits or 'no named symbol'}): sBPF v0 programs "
                "cannot have mutable globals; make it `static const` or move it to the stack"
            )
        if sec.flags & SHF_EXECINSTR:
            if text is not None or sec.name != ".text":
                raise LinkError(
                    f"unexpected code section {sec.name}: build one translation unit without -ffunction-sections"
                )
            text = sec
        elif sec.name.startswith(".rodata"):
            rodata.append(sec)
        elif sec.type != SHT_REL:
            raise LinkError(f"unsupported allocated section {sec.name}")
    if text is None:
        raise LinkError("object has no .text section")
    return text, rodata


def _undefined_data(sym: Symbol, where: str, offset: int) -> None:
    if sym.is_undefined:
        raise LinkError(f"undefined symbol `{sym.name}` referenced from {where}+{offset:#x}")


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to
