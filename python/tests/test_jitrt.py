"""The ctypes binding: real C objects compiled at test time, linked, called
from Python and removed; and every error code a Python user can provoke."""

import ctypes
import gc
import os
import subprocess

import pytest

import jitrt
from jitrt import ErrorCode, JitError, SymbolFlags

# Codes a Python user cannot provoke: INTERNAL (a bug in libjitrt) and
# CALLBACK (errors returned by C callbacks, which the binding does not
# expose). Every other code has a test_error_* test below.

MATH = r"""
#include <stdio.h>
static int calls;
int add(int a, int b) { calls++; return a + b; }
double scale(double x, double by) { calls++; return x * by; }
int call_count(void) { return calls; }
const char *greeting(void) { return "hello from C"; }
"""


def raises(code, fn, *args):
    with pytest.raises(JitError) as info:
        fn(*args)
    assert info.value.code == code, str(info.value)
    assert isinstance(info.value.code, ErrorCode)
    assert info.value.message
    return info.value


def test_library_is_found_and_codes_mirror_the_header():
    assert os.path.isfile(jitrt.library_path())
    assert jitrt.version().count(".") == 2
    header = os.path.join(os.path.dirname(__file__), "..", "..", "include", "jitrt.h")
    text = open(header).read()
    for code in ErrorCode:
        c_name = "JITRT_OK" if code == ErrorCode.OK else "JITRT_ERR_" + code.name
        assert "%s = %d," % (c_name, code.value) in text, c_name
    for flag in jitrt.SessionFlags:
        if flag:
            assert "#define JITRT_SESSION_%s %d" % (flag.name, flag.value) in text, flag


def test_compile_call_and_remove(session, compile_c):
    obj = compile_c(MATH)
    d = session.create_dylib("main")
    assert d.name == "main"
    t = d.create_tracker()
    with open(obj, "rb") as f:
        t.add_object(f.read(), name="math.o")

    add = d.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])
    scale = d.function("scale", ctypes.c_double, [ctypes.c_double, ctypes.c_double])
    greeting = d.function("greeting", ctypes.c_char_p, [])
    assert add(2, 3) == 5
    assert scale(1.5, 4.0) == 6.0
    assert greeting() == b"hello from C"
    assert d.function("call_count", ctypes.c_int, [])() == 2
    assert d.lookup("add") == ctypes.cast(add, ctypes.c_void_p).value

    st = session.stats()
    assert st.objects_linked == 1
    assert st.code_bytes > 0

    t.remove()
    assert t.defunct
    raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "add")
    st = session.stats()
    assert st.objects_linked == 0
    assert st.code_bytes == 0 and st.data_bytes == 0
    t.remove()  # a no-op on a defunct tracker


def test_add_object_file_and_archive(session, compile_c, tmp_path):
    d = session.create_dylib("files")
    t = d.create_tracker()
    t.add_object_file(compile_c("int triple(int x) { return 3 * x; }\n", "triple"))
    a = compile_c("int square(int x) { return x * x; }\n", "square")
    b = compile_c("extern int nowhere(void);\nint unused(void) { return nowhere(); }\n", "unused")
    archive = str(tmp_path / "libsq.a")
    subprocess.run(["ar", "rcs", archive, a, b], check=True)
    t.add_archive(archive)
    assert d.function("triple", ctypes.c_int, [ctypes.c_int])(5) == 15
    # Only the member that defines square is linked.
    assert d.function("square", ctypes.c_int, [ctypes.c_int])(7) == 49
    assert session.stats().objects_linked == 2
    t.remove()
    raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "square")


def test_define_absolute_resolves_an_objects_external(session, compile_c):
    value = ctypes.c_int(41)
    d = session.create_dylib("abs")
    t = d.create_tracker()
    t.define_absolute({"host_value": ctypes.addressof(value)})
    t.add_object(open(compile_c("extern int host_value;\nint next(void) { return ++host_value; }\n"), "rb").read())
    assert d.lookup("host_value") == ctypes.addressof(value)
    assert d.function("next", ctypes.c_int, [])() == 42
    assert value.value == 42
    t.define_absolute({"with_flags": (0x1234, SymbolFlags.EXPORTED | SymbolFlags.CALLABLE)})
    assert d.lookup("with_flags") == 0x1234


def test_transfer_then_remove(session, compile_c):
    d = session.create_dylib("xfer")
    t1 = d.create_tracker()
    t2 = d.create_tracker()
    assert t1.key != t2.key
    t1.add_object_file(compile_c(MATH))
    add = d.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])
    t1.transfer_to(t2)
    assert t1.defunct and not t2.defunct
    assert add(1, 1) == 2  # the code stays: t2 owns it now
    raises(ErrorCode.TRACKER_DEFUNCT, t1.add_object_file, compile_c("int x(void){return 1;}\n", "x"))
    t2.remove()
    raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "add")
    assert session.stats().objects_linked == 0


def test_released_tracker_keeps_its_code(session, compile_c):
    d = session.create_dylib("gc")
    t = d.create_tracker()
    t.add_object_file(compile_c(MATH))
    before = session.stats().trackers
    del t
    gc.collect()
    # Releasing a live tracker hands its code to the default tracker.
    assert d.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])(4, 5) == 9
    assert session.stats().trackers <= before
    d.default_tracker().remove()
    raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "add")


def test_default_tracker_and_clear(session, compile_c):
    d = session.create_dylib("clear")
    d.default_tracker().add_object_file(compile_c(MATH))
    other = d.create_tracker()
    other.define_absolute({"answer": 42})
    assert d.lookup("answer") == 42
    assert d.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])(1, 2) == 3
    d.clear()
    raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "add")
    raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "answer")
    assert other.defunct
    # Still usable.
    d.default_tracker().define_absolute({"again": 7})
    assert d.lookup("again") == 7


def test_link_order_and_generators(session, compile_c):
    lib = session.create_dylib("lib")
    app = session.create_dylib("app")
    lib.create_tracker().add_object_file(compile_c("int base(void) { return 10; }\n", "base"))
    app.create_tracker().add_object_file(
        compile_c("#include <math.h>\nint base(void);\nint use(void) { return base() + (int)cos(0.0); }\n", "use")
    )
    app.set_link_order([lib])
    app.add_process_symbols()
    libm = "/lib/x86_64-linux-gnu/libm.so.6"
    app.add_dynamic_library(libm if os.path.exists(libm) else "libm.so.6")
    assert app.function("use", ctypes.c_int, [])() == 11


def test_threads_session(compile_c):
    with jitrt.Session(threads=2) as s:
        d = s.create_dylib("pool")
        d.create_tracker().add_object_file(compile_c(MATH))
        assert d.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])(20, 22) == 42


def test_debugger_and_perf_map(compile_c):
    with jitrt.Session(debugger=True, perf="map") as s:
        d = s.create_dylib("main")
        t = d.create_tracker()
        t.add_object_file(compile_c(MATH))
        add = d.lookup("add")
        assert d.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])(2, 2) == 4
        path = "/tmp/perf-%d.map" % os.getpid()
        lines = [l.split(" ", 2) for l in open(path).read().splitlines()]
        starts = {name: int(start, 16) for start, size, name in lines}
        assert starts["add"] == add
        assert "call_count" in starts and "greeting" in starts
        t.remove()
    os.remove(path)
    raises(ErrorCode.INVALID_ARGUMENT, lambda: jitrt.Session(perf="bogus"))
    assert jitrt.SessionFlags.DEBUGGER | jitrt.SessionFlags.PERF_JITDUMP == 5


def test_session_ends(compile_c):
    s = jitrt.Session()
    d = s.create_dylib("main")
    t = d.create_tracker()
    t.add_object_file(compile_c(MATH))
    assert d.lookup("add")
    s.close()
    assert s.closed
    raises(ErrorCode.SESSION_ENDED, d.lookup, "add")
    raises(ErrorCode.SESSION_ENDED, s.create_dylib, "other")
    raises(ErrorCode.SESSION_ENDED, t.remove)
    raises(ErrorCode.SESSION_ENDED, s.stats)
    s.close()  # twice is fine
    del t  # releasing after the session ended is fine
    gc.collect()


# ---- Every error code a Python user can provoke ----------------------------


def test_error_invalid_argument(session):
    a = session.create_dylib("a")
    b = session.create_dylib("b")
    raises(ErrorCode.INVALID_ARGUMENT, a.create_tracker().transfer_to, b.create_tracker())
    raises(ErrorCode.INVALID_ARGUMENT, a.lookup, "nul\0byte")
    raises(ErrorCode.INVALID_ARGUMENT, a.create_tracker().define_absolute, {"bad_flags": (1, 64)})
    raises(ErrorCode.INVALID_ARGUMENT, a.create_tracker().transfer_to, "not a tracker")
    raises(ErrorCode.INVALID_ARGUMENT, jitrt.Session, -1)
    raises(ErrorCode.INVALID_ARGUMENT, session.create_dylib, "a")  # names are unique


def test_error_symbol_not_found(session):
    e = raises(ErrorCode.SYMBOL_NOT_FOUND, session.create_dylib("main").lookup, "no_such_symbol")
    assert "no_such_symbol" in e.message


def test_error_duplicate_definition(session, compile_c):
    d = session.create_dylib("main")
    d.create_tracker().define_absolute({"dup": 1})
    raises(ErrorCode.DUPLICATE_DEFINITION, d.create_tracker().define_absolute, {"dup": 2})
    obj = compile_c(MATH)
    d.create_tracker().add_object_file(obj)
    raises(ErrorCode.DUPLICATE_DEFINITION, d.create_tracker().add_object_file, obj)


def test_error_tracker_defunct(session, compile_c):
    d = session.create_dylib("main")
    t = d.create_tracker()
    t.remove()
    raises(ErrorCode.TRACKER_DEFUNCT, t.define_absolute, {"x": 1})
    raises(ErrorCode.TRACKER_DEFUNCT, t.add_object, open(compile_c(MATH), "rb").read())
    raises(ErrorCode.TRACKER_DEFUNCT, t.transfer_to, d.create_tracker())


def test_error_materialization_failed(session, compile_c):
    # A re-export of a hidden symbol: the alias is defined, but producing it
    # fails (re-exports match exported symbols only).
    lib = session.create_dylib("lib")
    app = session.create_dylib("app")
    lib.create_tracker().add_object_file(
        compile_c('__attribute__((visibility("hidden"))) int secret(void) { return 1; }\n'
                  "int open_door(void) { return secret(); }\n")
    )
    t = app.create_tracker()
    t.define_aliases({"door": "open_door", "peek": "secret"}, source=lib)
    assert app.function("door", ctypes.c_int, [])() == 1
    e = raises(ErrorCode.MATERIALIZATION_FAILED, app.lookup, "peek")
    assert "peek" in e.message


def test_failed_link_reports_the_cause(session, compile_c):
    # When the linker says why, a lookup gets that code and message.
    d = session.create_dylib("main")
    d.create_tracker().add_object_file(
        compile_c("extern int not_defined_anywhere(void);\nint f(void) { return not_defined_anywhere(); }\n")
    )
    e = raises(ErrorCode.SYMBOL_NOT_FOUND, d.lookup, "f")
    assert "not_defined_anywhere" in e.message and "obj.o" in e.message


def test_error_malformed_object(session):
    t = session.create_dylib("main").create_tracker()
    e = raises(ErrorCode.MALFORMED_OBJECT, t.add_object, b"definitely not an object", "junk.o")
    assert "junk.o" in e.message
    raises(ErrorCode.MALFORMED_OBJECT, t.add_object, b"")


def test_error_unsupported(session, compile_c):
    data = bytearray(open(compile_c(MATH), "rb").read())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    e = raises(ErrorCode.UNSUPPORTED, session.create_dylib("main").create_tracker().add_object, bytes(data), "arm.o")
    assert "arm.o" in e.message


def test_error_relocation_out_of_range(session, compile_c):
    # A 32-bit absolute reference (R_X86_64_32S, non-PIC code) to a symbol
    # far above 2 GiB.
    obj = compile_c(
        "extern char far_away[];\nunsigned get(void) { return (unsigned)(unsigned long)far_away; }\n",
        flags=["-fno-pic", "-mcmodel=small", "-O1"],
    )
    d = session.create_dylib("main")
    t = d.create_tracker()
    t.define_absolute({"far_away": 0x7F0000000000})
    t.add_object_file(obj)
    e = raises(ErrorCode.RELOCATION_OUT_OF_RANGE, d.lookup, "get")
    assert "out of range" in e.message and "far_away" in e.message and ".text" in e.message


def test_error_io(session, tmp_path):
    d = session.create_dylib("main")
    t = d.create_tracker()
    raises(ErrorCode.IO, t.add_object_file, str(tmp_path / "missing.o"))
    raises(ErrorCode.IO, t.add_archive, str(tmp_path / "missing.a"))
    raises(ErrorCode.IO, d.add_dynamic_library, str(tmp_path / "missing.so"))


def test_error_out_of_memory(compile_c):
    big = compile_c("char big[1 << 20] = {1};\nchar *get(void) { return big; }\n", "big")
    with jitrt.Session(memory_reserve_bytes=64 * 1024) as s:
        d = s.create_dylib("main")
        d.create_tracker().add_object_file(big)
        e = raises(ErrorCode.OUT_OF_MEMORY, d.lookup, "get")
        assert "memory" in e.message


def test_error_session_ended():
    s = jitrt.Session()
    d = s.create_dylib("main")
    s.close()
    raises(ErrorCode.SESSION_ENDED, d.create_tracker)
    raises(ErrorCode.SESSION_ENDED, d.clear)
