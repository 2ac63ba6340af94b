"""hello: the smallest libjitrt host, from Python.

Compiles a C file to a relocatable object with the system compiler (``cc -c``,
or $CC), adds it to a dylib of a JIT session, looks up two functions (which
links the object into this process), calls them, and removes the code again.

    pip install ./python          # from the repository root, once
    python3 python/examples/hello.py
"""

import ctypes
import os
import shlex
import subprocess
import sys
import tempfile

import jitrt

PLUGIN_SOURCE = r"""
#include <stdio.h>
int add(int a, int b) { return a + b; }
void greet(const char *who) {
  printf("hello, %s, from JIT-linked code\n", who);
  fflush(stdout);
}
"""


def main() -> int:
    print("libjitrt", jitrt.version(), "from", jitrt.library_path())
    with tempfile.TemporaryDirectory(prefix="jitrt-hello-") as tmp:
        src = os.path.join(tmp, "plugin.c")
        obj = os.path.join(tmp, "plugin.o")
        with open(src, "w") as f:
            f.write(PLUGIN_SOURCE)
        cc = shlex.split(os.environ.get("CC") or "cc")
        subprocess.run(cc + ["-c", "-o", obj, src], check=True)
        print("compiled plugin.c")

        with jitrt.Session() as session:
            lib = session.create_dylib("main")
            tracker = lib.create_tracker()
            tracker.add_object_file(obj)
            print("added plugin.o")
            add = lib.function("add", ctypes.c_int, [ctypes.c_int, ctypes.c_int])
            print("add(2, 3) =", add(2, 3))
            sys.stdout.flush()  # greet prints through C's stdout
            greet = lib.function("greet", None, [ctypes.c_char_p])
            greet(b"world")
            print("objects linked:", session.stats().objects_linked)
            tracker.remove()
            try:
                lib.lookup("add")
            except jitrt.JitError as e:
                print("after remove:", e.code.name)
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
