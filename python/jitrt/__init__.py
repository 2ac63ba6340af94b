"""libjitrt from Python, through ctypes (no compiled extension).

Load relocatable objects (``.o``) and static libraries (``.a``) into this
process, link them, call their functions, and remove them again::

    import ctypes, jitrt

    with jitrt.Session() as session:
        lib = session.create_dylib("main")
        tracker = lib.create_tracker()
        tracker.add_object_file("plugin.o")
        add = lib.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])
        print(add(2, 3))
        tracker.remove()          # code, data and symbols are gone

``pip install ./python`` builds libjitrt and ships it inside this package,
so an installed ``jitrt`` needs nothing else. The shared library is found
through the ``JITRT_LIBRARY`` environment variable (a path to
``libjitrt.so``), then next to this package, then in ``target/release`` of
the repository this package sits in (using ``python/`` from a checkout).

Every failure raises :class:`JitError`, whose ``code`` is an
:class:`ErrorCode` mirroring ``jitrt_error_code_t``.

Lifetimes: dylibs and trackers keep their session object alive; closing
the session (``close()`` or leaving the ``with`` block) removes all code,
after which every call on its dylibs and trackers raises
``JitError(ErrorCode.SESSION_ENDED)``. Trackers are released when garbage
collected (releasing a tracker that was not removed hands its code to the
dylib's default tracker; nothing is freed). A function returned by
:meth:`Dylib.function` must not be called after the code it points to was
removed.
"""

from __future__ import annotations

import ctypes
import enum
import os
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint32,
    c_uint64,
    c_uint8,
    c_void_p,
)
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

#: A name or path: ``str``, ``bytes`` or ``os.PathLike`` (encoded with
#: ``os.fsencode``).
StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__all__ = [
    "ErrorCode",
    "JitError",
    "Session",
    "Dylib",
    "Tracker",
    "Stats",
    "SymbolFlags",
    "SessionFlags",
    "library_path",
    "version",
]


class ErrorCode(enum.IntEnum):
    """The C API's ``jitrt_error_code_t``."""

    OK = 0
    INVALID_ARGUMENT = 1
    SYMBOL_NOT_FOUND = 2
    DUPLICATE_DEFINITION = 3
    TRACKER_DEFUNCT = 4
    MATERIALIZATION_FAILED = 5
    MALFORMED_OBJECT = 6
    UNSUPPORTED = 7
    RELOCATION_OUT_OF_RANGE = 8
    IO = 9
    OUT_OF_MEMORY = 10
    SESSION_ENDED = 11
    INTERNAL = 12
    CALLBACK = 13


class SymbolFlags(enum.IntFlag):
    """The C API's ``jitrt_symbol_flags_t``."""

    NONE = 0
    EXPORTED = 1
    CALLABLE = 2
    WEAK = 4


class SessionFlags(enum.IntFlag):
    """The C API's ``JITRT_SESSION_*`` flags: make linked code visible to
    debuggers (GDB JIT interface) and perf (perf map, jitdump file); keep
    read-only data off code pages (``SEPARATE_READONLY``)."""

    NONE = 0
    DEBUGGER = 1
    PERF_MAP = 2
    PERF_JITDUMP = 4
    SEPARATE_READONLY = 8


class JitError(Exception):
    """A libjitrt error: ``code`` (an :class:`ErrorCode`) and ``message``."""

    code: ErrorCode
    message: str

    def __init__(self, code: int, message: str) -> None:
        try:
            code = ErrorCode(code)
        except ValueError:
            code = ErrorCode.INTERNAL
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message


class Stats(NamedTuple):
    """Accounting from Session.stats(): bytes mapped now, live objects, symbols, trackers."""

    code_bytes: int
    data_bytes: int
    objects_linked: int
    symbols: int
    trackers: int


# ---- The shared library ----------------------------------------------------


class _Options(Structure):
    _fields_ = [
        ("num_threads", c_uint32),
        ("flags", c_uint32),
        ("memory_reserve_bytes", c_uint64),
        ("reserved", c_uint64 * 6),
    ]


class _Stats(Structure):
    _fields_ = [
        ("code_bytes", c_uint64),
        ("data_bytes", c_uint64),
        ("objects_linked", c_uint64),
        ("symbols", c_uint64),
        ("trackers", c_uint64),
    ]


class _Symbol(Structure):
    _fields_ = [("name", c_char_p), ("address", c_uint64), ("flags", c_uint32)]


class _Alias(Structure):
    _fields_ = [("name", c_char_p), ("target", c_char_p), ("flags", c_uint32)]


def library_path() -> str:
    """The path of the libjitrt.so this package uses (see the module docs)."""
    env = os.environ.get("JITRT_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise OSError("JITRT_LIBRARY=%s: no such file" % env)
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(here, "libjitrt.so"),
        os.path.join(here, "..", "..", "target", "release", "libjitrt.so"),
    ]
    for c in candidates:
        if os.path.isfile(c):
            return os.path.normpath(c)
    raise OSError(
        "libjitrt.so not found: set JITRT_LIBRARY to its path, put it next to "
        "the jitrt package, or run `cargo build --release` in the repository "
        "(looked in: %s)" % ", ".join(os.path.normpath(c) for c in candidates)
    )


_lib: Optional[ctypes.CDLL] = None


def _L() -> ctypes.CDLL:
    """The loaded library, with its prototypes declared (loaded on first use)."""
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(library_path())
    err = c_void_p
    handle = c_void_p
    protos = {
        "jitrt_version": (c_char_p, []),
        "jitrt_error_code": (c_int, [err]),
        "jitrt_error_message": (c_char_p, [err]),
        "jitrt_error_free": (None, [err]),
        "jitrt_session_new": (handle, [POINTER(_Options)]),
        "jitrt_session_free": (None, [handle]),
        "jitrt_session_create_dylib": (err, [handle, c_char_p, POINTER(c_void_p)]),
        "jitrt_session_stats": (None, [handle, POINTER(_Stats)]),
        "jitrt_dylib_name": (c_char_p, [handle]),
        "jitrt_dylib_clear": (err, [handle]),
        "jitrt_dylib_set_link_order": (err, [handle, POINTER(c_void_p), c_size_t]),
        "jitrt_dylib_add_process_symbols": (err, [handle]),
        "jitrt_dylib_add_dynamic_library": (err, [handle, c_char_p]),
        "jitrt_dylib_create_tracker": (handle, [handle]),
        "jitrt_dylib_default_tracker": (handle, [handle]),
        "jitrt_tracker_release": (None, [handle]),
        "jitrt_tracker_key": (c_uint64, [handle]),
        "jitrt_tracker_is_defunct": (c_bool, [handle]),
        "jitrt_tracker_transfer_to": (err, [handle, handle]),
        "jitrt_tracker_remove": (err, [handle]),
        "jitrt_tracker_add_object": (err, [handle, POINTER(c_uint8), c_size_t, c_char_p]),
        "jitrt_tracker_add_object_file": (err, [handle, c_char_p]),
        "jitrt_tracker_add_archive": (err, [handle, c_char_p]),
        "jitrt_tracker_define_absolute": (err, [handle, POINTER(_Symbol), c_size_t]),
        "jitrt_tracker_define_aliases": (err, [handle, handle, POINTER(_Alias), c_size_t]),
        "jitrt_lookup": (err, [handle, c_char_p, POINTER(c_uint64)]),
    }
    for name, (restype, argtypes) in protos.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes
    _lib = lib
    return lib


def version() -> str:
    """The library's version string, e.g. ``"0.1.0"``."""
    v: bytes = _L().jitrt_version()
    return v.decode()


def _check(err: Optional[int]) -> None:
    """Raises JitError for a non-NULL ``jitrt_error_t *`` (and frees it)."""
    if not err:
        return
    lib = _L()
    try:
        code = lib.jitrt_error_code(err)
        message = (lib.jitrt_error_message(err) or b"").decode("utf-8", "replace")
    finally:
        lib.jitrt_error_free(err)
    raise JitError(code, message)


def _bytes(s: StrPath, what: str) -> bytes:
    if isinstance(s, bytes):
        b = s
    elif isinstance(s, (str, os.PathLike)):
        b = os.fsencode(s)
    else:
        raise JitError(ErrorCode.INVALID_ARGUMENT, "%s must be str or bytes, not %s" % (what, type(s).__name__))
    if b"\0" in b:
        raise JitError(ErrorCode.INVALID_ARGUMENT, "%s contains a NUL byte" % what)
    return b


# ---- Sessions, dylibs, trackers -------------------------------------------


class Session:
    """A JIT session (``jitrt_session_t``): owns dylibs, code and threads.

    ``threads=0`` materializes on the thread that looks up; ``N`` uses a
    pool of N workers. ``memory_reserve_bytes=0`` is the default JIT
    address range (1 GiB). Use it as a context manager, or call
    :meth:`close`.

    ``debugger=True`` registers the linked code with gdb and lldb (break on
    JIT functions by name, source lines, locals, backtraces, as long as the
    code lives: ``gdb --args python3 script.py``). ``perf`` is ``"map"``
    (``/tmp/perf-PID.map``), ``"jitdump"`` (``jit-PID.dump`` in
    ``$JITDUMPDIR``, default ``~/.debug/jit``, for ``perf record -k 1`` and
    ``perf inject --jit``) or ``"map,jitdump"``. ``flags`` takes
    :class:`SessionFlags` directly. The environment variables
    ``JITRT_DEBUGGER=1`` and ``JITRT_PERF=...`` do the same for every
    session.
    """

    def __init__(
        self,
        threads: int = 0,
        memory_reserve_bytes: int = 0,
        debugger: bool = False,
        perf: Optional[str] = None,
        flags: int = 0,
    ) -> None:
        lib = _L()
        if not isinstance(threads, int) or threads < 0 or threads >= 2**32:
            raise JitError(ErrorCode.INVALID_ARGUMENT, "threads must be an integer >= 0")
        flags = SessionFlags(flags)
        if debugger:
            flags |= SessionFlags.DEBUGGER
        for word in (perf or "").split(","):
            word = word.strip()
            if word == "map":
                flags |= SessionFlags.PERF_MAP
            elif word == "jitdump":
                flags |= SessionFlags.PERF_JITDUMP
            elif word:
                raise JitError(
                    ErrorCode.INVALID_ARGUMENT,
                    "perf must be 'map', 'jitdump' or 'map,jitdump', not %r" % perf,
                )
        opts = _Options()
        opts.num_threads = threads
        opts.flags = int(flags)
        opts.memory_reserve_bytes = memory_reserve_bytes
        self._ptr: Optional[int] = lib.jitrt_session_new(ctypes.byref(opts))
        if not self._ptr:
            raise JitError(ErrorCode.INVALID_ARGUMENT, "jitrt_session_new rejected the options")
        self._dylibs: Dict[str, Dylib] = {}

    def _handle(self) -> int:
        if not self._ptr:
            raise JitError(ErrorCode.SESSION_ENDED, "the session has ended")
        return self._ptr

    @property
    def closed(self) -> bool:
        return not self._ptr

    def close(self) -> None:
        """Ends the session: removes all code (running destructors) and frees
        it. Later calls on its dylibs and trackers raise SESSION_ENDED."""
        if self._ptr:
            ptr, self._ptr = self._ptr, None
            _L().jitrt_session_free(ptr)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def create_dylib(self, name: StrPath) -> Dylib:
        """A new dylib called ``name`` (unique in the session)."""
        out = c_void_p()
        _check(_L().jitrt_session_create_dylib(self._handle(), _bytes(name, "name"), ctypes.byref(out)))
        if not out.value:
            raise JitError(ErrorCode.INTERNAL, "jitrt_session_create_dylib returned no dylib")
        d = Dylib(self, out.value)
        self._dylibs[d.name] = d
        return d

    def stats(self) -> Stats:
        """A :class:`Stats` of what is mapped and defined now."""
        s = _Stats()
        _L().jitrt_session_stats(self._handle(), ctypes.byref(s))
        return Stats(s.code_bytes, s.data_bytes, s.objects_linked, s.symbols, s.trackers)


class Dylib:
    """A dylib (``jitrt_dylib_t``): a named symbol table of a session."""

    def __init__(self, session: Session, ptr: int) -> None:
        self._session = session
        self._ptr = ptr

    def _handle(self) -> int:
        self._session._handle()
        return self._ptr

    @property
    def session(self) -> Session:
        return self._session

    @property
    def name(self) -> str:
        n: bytes = _L().jitrt_dylib_name(self._handle())
        return n.decode()

    def __repr__(self) -> str:
        if self._session.closed:
            return "<jitrt.Dylib (session ended)>"
        return "<jitrt.Dylib %r>" % self.name

    def add_process_symbols(self) -> None:
        """Resolve symbols nothing defines from the host process (dlsym)."""
        _check(_L().jitrt_dylib_add_process_symbols(self._handle()))

    def add_dynamic_library(self, path: StrPath) -> None:
        """dlopen ``path`` and resolve symbols from it."""
        _check(_L().jitrt_dylib_add_dynamic_library(self._handle(), _bytes(path, "path")))

    def set_link_order(self, dylibs: Sequence[Dylib]) -> None:
        """Search ``dylibs`` (exported symbols only), in order, after this one."""
        arr = (c_void_p * max(len(dylibs), 1))(*[d._handle() for d in dylibs])
        _check(_L().jitrt_dylib_set_link_order(self._handle(), arr, len(dylibs)))

    def create_tracker(self) -> Tracker:
        """A new :class:`Tracker` for this dylib."""
        p = _L().jitrt_dylib_create_tracker(self._handle())
        if not p:
            raise JitError(ErrorCode.SESSION_ENDED, "the session has ended")
        return Tracker(self, p)

    def default_tracker(self) -> Tracker:
        """The dylib's default :class:`Tracker` (a new one after the previous
        default was removed)."""
        p = _L().jitrt_dylib_default_tracker(self._handle())
        if not p:
            raise JitError(ErrorCode.SESSION_ENDED, "the session has ended")
        return Tracker(self, p)

    def lookup(self, name: StrPath) -> int:
        """The address of ``name`` (an int) once it is ready to run: linked,
        its dependencies linked, its initializers run."""
        addr = c_uint64()
        _check(_L().jitrt_lookup(self._handle(), _bytes(name, "name"), ctypes.byref(addr)))
        return addr.value

    def function(self, name: StrPath, restype: Any, argtypes: Sequence[Any]) -> Callable[..., Any]:
        """``name`` as a ctypes function: ``restype`` and ``argtypes`` as for
        ``ctypes.CFUNCTYPE``. Do not call it after its code was removed."""
        addr = self.lookup(name)
        f = ctypes.CFUNCTYPE(restype, *argtypes)(addr)
        f._jitrt_dylib = self  # type: ignore[attr-defined]  # keeps the session object alive
        return f

    def clear(self) -> None:
        """Remove every tracker of this dylib (all its code and definitions)."""
        _check(_L().jitrt_dylib_clear(self._handle()))


class Tracker:
    """A resource tracker (``jitrt_tracker_t``): owns what is added through it.
    Released when garbage collected."""

    def __init__(self, dylib: Dylib, ptr: int) -> None:
        self._dylib = dylib
        self._ptr = ptr

    def _handle(self) -> int:
        self._dylib._handle()
        return self._ptr

    def __del__(self) -> None:
        ptr, self._ptr = getattr(self, "_ptr", 0), 0
        if ptr and _lib is not None:
            # Valid also after the session ended.
            _lib.jitrt_tracker_release(ptr)

    @property
    def dylib(self) -> Dylib:
        return self._dylib

    @property
    def key(self) -> int:
        """The ResourceKey resource managers see for this tracker."""
        k: int = _L().jitrt_tracker_key(self._ptr)
        return k

    @property
    def defunct(self) -> bool:
        """Whether it was removed, transferred away, or its session ended."""
        return bool(_L().jitrt_tracker_is_defunct(self._ptr))

    def __repr__(self) -> str:
        return "<jitrt.Tracker key=%d%s>" % (self.key, " defunct" if self.defunct else "")

    def add_object(self, data: Union[bytes, bytearray, memoryview], name: Optional[StrPath] = None) -> None:
        """Add a relocatable object from memory (``bytes``; copied)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise JitError(ErrorCode.INVALID_ARGUMENT, "data must be bytes, not %s" % type(data).__name__)
        data = bytes(data)
        buf = (c_uint8 * len(data)).from_buffer_copy(data) if data else None
        _check(
            _L().jitrt_tracker_add_object(
                self._handle(), buf, len(data), None if name is None else _bytes(name, "name")
            )
        )

    def add_object_file(self, path: StrPath) -> None:
        """Add the object file at ``path`` (memory-mapped: keep it unchanged)."""
        _check(_L().jitrt_tracker_add_object_file(self._handle(), _bytes(path, "path")))

    def add_archive(self, path: StrPath) -> None:
        """Add a static library: members are linked when a lookup needs them."""
        _check(_L().jitrt_tracker_add_archive(self._handle(), _bytes(path, "path")))

    def define_absolute(self, symbols: Mapping[StrPath, Union[int, Tuple[int, SymbolFlags]]]) -> None:
        """Define symbols at fixed addresses: ``{name: address}`` or
        ``{name: (address, SymbolFlags)}`` (default flags: EXPORTED).
        All or nothing."""
        items = list(symbols.items())
        arr = (_Symbol * max(len(items), 1))()
        keep: List[bytes] = []
        for i, (name, value) in enumerate(items):
            if isinstance(value, tuple):
                address, flags = value
            else:
                address, flags = value, SymbolFlags.EXPORTED
            b = _bytes(name, "name")
            keep.append(b)
            arr[i].name = b
            arr[i].address = int(address)
            arr[i].flags = int(flags)
        _check(_L().jitrt_tracker_define_absolute(self._handle(), arr, len(items)))

    def define_aliases(
        self,
        aliases: Mapping[StrPath, Union[StrPath, Tuple[StrPath, SymbolFlags]]],
        source: Optional[Dylib] = None,
    ) -> None:
        """Define aliases: ``{name: target}`` or ``{name: (target,
        SymbolFlags)}`` (default flags: EXPORTED | CALLABLE). Looking up
        ``name`` looks up ``target`` in ``source`` (a :class:`Dylib`; None:
        this tracker's dylib, which may match hidden symbols; another dylib:
        a re-export, exported symbols only)."""
        items = list(aliases.items())
        arr = (_Alias * max(len(items), 1))()
        keep: List[bytes] = []
        for i, (name, value) in enumerate(items):
            if isinstance(value, tuple):
                target, flags = value
            else:
                target, flags = value, SymbolFlags.EXPORTED | SymbolFlags.CALLABLE
            n, t = _bytes(name, "name"), _bytes(target, "target")
            keep.extend((n, t))
            arr[i].name = n
            arr[i].target = t
            arr[i].flags = int(flags)
        src = None if source is None else source._handle()
        _check(_L().jitrt_tracker_define_aliases(self._handle(), src, arr, len(items)))

    def transfer_to(self, other: Tracker) -> None:
        """``other`` (same dylib) takes over everything; this becomes defunct."""
        if not isinstance(other, Tracker):
            raise JitError(ErrorCode.INVALID_ARGUMENT, "transfer_to needs a Tracker")
        _check(_L().jitrt_tracker_transfer_to(self._handle(), other._handle()))

    def remove(self) -> None:
        """Remove everything this tracker owns (symbols, code, data; runs
        destructors). It becomes defunct; removing again does nothing."""
        _check(_L().jitrt_tracker_remove(self._handle()))
