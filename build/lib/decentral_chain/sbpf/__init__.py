"""The pip-only sBPF toolchain: ziglang's clang (BPF backend) plus our own linker."""
