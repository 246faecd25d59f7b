"""Run portable test modules under the MicroPython unix port.

Usage: ``micropython -X heapsize=64K tests/mpy_runner.py test_cbor [test_records ...]``
with ``MICROPYPATH`` holding the repository root and ``tests/portable``.
Prints one line per test: ``@@ <module> <test> PASS|FAIL|SKIP <detail>``; exit status 1 on any failure.
"""

import gc
import sys

import support


def run_module(modname):
    failed = 0
    mod = __import__(modname)
    names = [n for n in dir(mod) if n.startswith("test_")]
    names.sort()
    for name in names:
        fn = getattr(mod, name)
        if not callable(fn):
            continue
        gc.collect()
        try:
            fn()
        except support.SkipTest as e:
            print("@@", modname, name, "SKIP", e.args[0] if e.args else "")
            continue
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print("@@", modname, name, "FAIL", repr(e))
            sys.print_exception(e)
            continue
        print("@@", modname, name, "PASS")
    return failed


def main():
    failed = 0
    for modname in sys.argv[1:]:
        failed += run_module(modname)
    sys.exit(1 if failed else 0)


main()
