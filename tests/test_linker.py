"""The linker: ELF fields the loader needs, every relocation resolved, clear errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from decentral_chain.errors import LinkError
from decentral_chain.sbpf.build import compile_object
from decentral_chain.sbpf.elf import EM_BPF, ET_DYN, SHF_ALLOC, SHT_DYNSYM, SHT_REL, ObjectFile
from decentral_chain.sbpf.linker import KNOWN_SYSCALLS, MM_PROGRAM_START, R_BPF_64_32, R_BPF_64_64, link

LDDW = 0x18
CALL = 0x85


def compile_c(tmp_path: Path, source: str) -> bytes:
    src = tmp_path / "t.c"
    src.write_text("#include <stdint.h>\n" + source)
    return compile_object(src, tmp_path)


@pytest.fixture(scope="module")
def program(program_elf: bytes) -> ObjectFile:
    return ObjectFile.parse(program_elf)


def test_elf_header_is_what_the_v0_loader_expects(program_elf, program):
    assert program_elf[:4] == b"\x7fELF" and program_elf[4:7] == bytes([2, 1, 1])
    assert (program.type, program.machine, program.flags) == (ET_DYN, EM_BPF, 0)
    text = next(s for s in program.sections if s.name == ".text")
    assert text.offset <= program.entry < text.offset + text.size


def test_every_allocated_section_has_address_equal_to_offset(program):
    allocated = [s for s in program.sections if s.flags & SHF_ALLOC]
    assert {s.name for s in allocated} >= {".text", ".rodata", ".dynamic", ".dynsym", ".dynstr", ".rel.dyn"}
    for s in allocated:
        assert s.addr == s.offset, s.name


def test_every_lddw_relocation_points_inside_the_program(program_elf, program):
    """Each R_BPF_64_64 of the object became an absolute address inside text or rodata."""
    obj = ObjectFile.parse(compile_object())
    obj_text = next(s for s in obj.sections if s.name == ".text")
    offsets = [off for rels in obj.relocations_for(obj_text.index) for off, typ, _ in rels if typ == R_BPF_64_64]
    assert offsets, "the program loads rodata addresses"
    text = next(s for s in program.sections if s.name == ".text")
    rodata = next(s for s in program.sections if s.name == ".rodata")
    for off in offsets:
        assert text.data[off] == LDDW
        lo, hi = struct.unpack_from("<I", text.data, off + 4)[0], struct.unpack_from("<I", text.data, off + 12)[0]
        addr = ((hi << 32) | lo) - MM_PROGRAM_START
        assert rodata.offset <= addr < rodata.offset + rodata.size or text.offset <= addr < text.offset + text.size


def test_syscalls_are_dynamic_relocations_on_call_instructions(program):
    rel = next(s for s in program.sections if s.type == SHT_REL)
    dynsym = next(s for s in program.sections if s.type == SHT_DYNSYM)
    dynstr = program.sections[dynsym.link].data
    text = next(s for s in program.sections if s.name == ".text")
    names = set()
    for k in range(rel.size // 16):
        r_offset, r_info = struct.unpack_from("<QQ", rel.data, k * 16)
        assert r_info & 0xFFFF_FFFF == R_BPF_64_32
        st_name = struct.unpack_from("<I", dynsym.data, (r_info >> 32) * 24)[0]
        name = dynstr[st_name : dynstr.index(b"\0", st_name)].decode()
        insn = text.data[r_offset - text.offset : r_offset - text.offset + 8]
        assert insn[0] == CALL and struct.unpack_from("<i", insn, 4)[0] == -1
        names.add(name)
    assert names <= KNOWN_SYSCALLS
    assert {"sol_invoke_signed_c", "sol_log_data", "sol_try_find_program_address"} <= names


def test_internal_calls_and_rodata_pointer_tables_link(tmp_path):
    obj = compile_c(
        tmp_path,
        """
        extern void sol_log_(const char *, uint64_t);
        static const char *const NAMES[2] = {"left", "right"};
        __attribute__((noinline)) uint64_t twice(uint64_t x) { return x * 2; }
        uint64_t entrypoint(const uint8_t *in) { sol_log_(NAMES[in[0] & 1], 4); return twice(in[1]); }
    """,
    )
    linked = link(obj)
    parsed = ObjectFile.parse(linked.elf)
    rodata = next(s for s in parsed.sections if s.name == ".rodata")
    ptrs = struct.unpack_from("<QQ", rodata.data, 0)
    for p in ptrs:  # both pointers were rewritten to absolute addresses inside rodata
        assert MM_PROGRAM_START + rodata.offset <= p < MM_PROGRAM_START + rodata.offset + rodata.size
    assert linked.syscalls == ("sol_log_",)


def test_writable_section_is_named(tmp_path):
    obj = compile_c(
        tmp_path, "uint64_t counter = 7;\nuint64_t entrypoint(const uint8_t *in) { (void)in; return counter++; }"
    )
    with pytest.raises(LinkError, match=r"writable section \.data \(counter\)"):
        link(obj)


def test_zero_initialized_global_is_named(tmp_path):
    obj = compile_c(tmp_path, "uint64_t hits;\nuint64_t entrypoint(const uint8_t *in) { (void)in; return hits++; }")
    with pytest.raises(LinkError, match=r"writable section \.bss \(hits\)"):
        link(obj)


def test_unknown_syscall_is_named(tmp_path):
    obj = compile_c(
        tmp_path,
        "extern void sol_steal_everything(void);\n"
        "uint64_t entrypoint(const uint8_t *in) { (void)in; sol_steal_everything(); return 0; }",
    )
    with pytest.raises(LinkError, match="unknown syscall `sol_steal_everything`"):
        link(obj)


def test_undefined_data_symbol_is_named(tmp_path):
    obj = compile_c(
        tmp_path,
        "extern const uint64_t somewhere[4];\nuint64_t entrypoint(const uint8_t *in) { return somewhere[in[0] & 3]; }",
    )
    with pytest.raises(LinkError, match="undefined symbol `somewhere`"):
        link(obj)


def test_missing_entrypoint_is_named(tmp_path):
    obj = compile_c(tmp_path, "uint64_t main_entry(const uint8_t *in) { return in[0]; }")
    with pytest.raises(LinkError, match="entry symbol `entrypoint`"):
        link(obj)


def test_not_a_bpf_object_is_refused():
    with pytest.raises(ValueError, match="not an ELF"):
        link(b"MZ" + bytes(100))
