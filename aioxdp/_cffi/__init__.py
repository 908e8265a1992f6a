"""Per-library pieces of the cffi build (see ``aioxdp/_ffi_build.py``).

Each module gives ``INCLUDES`` (C source that goes into the extension),
``TYPES`` and ``FUNCTIONS`` (cdef text). Keeping them apart keeps libbpf,
libxdp and our own C helpers reviewable one at a time.
"""
