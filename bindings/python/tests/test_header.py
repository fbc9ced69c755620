"""The ctypes declarations agree with include/turn.h: every function of the
header is declared, with the same return type and parameter types."""

import ctypes
import os
import re

from turn import _ffi

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "include", "turn.h")

C_TYPES = {
    "turn_result": ctypes.c_int,
    "int": ctypes.c_int,
    "void": None,
    "uint64_t": ctypes.c_uint64,
    "uint32_t": ctypes.c_uint32,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "size_t": ctypes.c_size_t,
    "const char *": ctypes.c_char_p,
    "uint64_t *": ctypes.POINTER(ctypes.c_uint64),
    "size_t *": ctypes.POINTER(ctypes.c_size_t),
    "char *": ctypes.c_char_p,
    "const char const **": ctypes.POINTER(ctypes.c_char_p),
    "void *": ctypes.c_void_p,
    "turn_log_fn": _ffi.LOG_FN,
}


def c_type(decl):
    stars = decl.count("*")
    base = " ".join(decl.replace("*", " ").split())
    decl = base + (" " + "*" * stars if stars else "")
    if decl in C_TYPES:
        return C_TYPES[decl]
    if re.fullmatch(r"(const )?turn_\w+ \*\*", decl):
        return ctypes.POINTER(ctypes.c_void_p)
    if re.fullmatch(r"(const )?turn_\w+ \*", decl):
        return ctypes.c_void_p
    raise AssertionError("unknown C type in header: %r" % decl)


def prototypes():
    text = open(HEADER).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    found = {}
    for m in re.finditer(r"^([\w ]+?\*?)\s*(turn_\w+)\(([^)]*)\);", text, flags=re.M):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        args = [] if params.strip() in ("", "void") else [
            c_type(re.sub(r"\b\w+$", "", p.strip())) for p in params.split(",")]
        found[name] = (c_type(ret), args)
    return found


def test_every_function_is_declared_alike():
    header = prototypes()
    assert len(header) >= 25
    assert set(header) == set(_ffi.PROTOTYPES), set(header) ^ set(_ffi.PROTOTYPES)
    for name, (ret, args) in header.items():
        py_ret, py_args = _ffi.PROTOTYPES[name]
        assert py_ret == ret, name
        assert py_args == args, name


def test_result_codes_match():
    text = open(HEADER).read()
    codes = dict((n, int(v)) for n, v in re.findall(r"(TURN_\w+) = (\d+)", text))
    import turn
    for code, cls in turn._ERRORS.items():
        name = turn._lib.turn_result_str(code).decode()
        assert codes[name] == code
        assert cls.__name__
