"""The child process that runs a python grader's `grade(sample, item)` (started by python_sandbox.py as
`python -I python_child.py`, so it imports nothing of GXFT and reads no user site or environment).

It reads {"source", "cases": [{"sample", "item"}], "limits"} from stdin and writes one JSON line to its
stdout: per case {"reward": x}, {"error": "runtime", "details": ...} or {"error": "timeout"}. Before the
user's code runs it shuts itself off from the network and caps itself:

- network: a new user and network namespace (the kernel's own isolation: no interface but a downed
  loopback), where the machine allows unprivileged namespaces; and in every case an audit hook that
  refuses sockets, new processes and ctypes (with which code could undo the rest);
- memory (address space), CPU seconds and the size of any file it writes, by setrlimit;
- time: each case has `limits.seconds` of wall time (SIGALRM), and the parent kills the child if the
  whole run overruns.

What the user's code prints goes to stderr, so stdout holds only the answer.
"""

import json
import math
import resource
import signal
import sys
import traceback

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
REFUSED_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn",
                  "os.spawn", "_posixsubprocess.", "ctypes.", "pty.", "os.kill", "os.putenv", "os.unsetenv")


class GradeTimeout(BaseException):  # not an Exception: the user's `except Exception` cannot swallow it
    pass


def _isolate_network() -> bool:
    import ctypes

    isolated = ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
    # Forgotten, so that the grader's own `import ctypes` is a new import, which the audit hook refuses.
    for name in [name for name in sys.modules if name == "ctypes" or name.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]
    return isolated


def _refuse(event: str, args: tuple) -> None:
    if event.startswith(REFUSED_EVENTS):
        raise PermissionError(f"a python grader may not use {event} (no network, processes or ctypes)")
    if event == "import" and args and args[0] in ("ctypes", "_ctypes"):
        raise PermissionError("a python grader may not import ctypes")


def _users_traceback() -> str:
    """The error, with only the frames of the grader's own code."""
    kind, error, trace = sys.exc_info()
    frames = [frame for frame in traceback.extract_tb(trace) if frame.filename == "grader.py"]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(kind, error))
    return text[-2000:]


def _limit(limits: dict) -> None:
    memory = limits["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    written = limits["file_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (written, written))


def _on_alarm(signum: int, frame: object) -> None:
    raise GradeTimeout


def _grade_one(grade, case: dict, seconds: float) -> dict:
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        reward = grade(case["sample"], case["item"])
    except GradeTimeout:
        return {"error": "timeout"}
    except MemoryError:
        return {"error": "runtime", "details": "MemoryError: the grader went over its memory limit"}
    except BaseException:  # the user's error, whatever it is, is that sample's (SystemExit included)
        return {"error": "runtime", "details": _users_traceback()}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
        return {"error": "runtime", "details": f"grade() returned {reward!r:.200}; it must return a finite number"}
    return {"reward": float(reward)}


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer_stream = sys.stdout
    sys.stdout = sys.stderr
    isolated = _isolate_network()
    _limit(request["limits"])
    sys.addaudithook(_refuse)
    signal.signal(signal.SIGALRM, _on_alarm)
    namespace: dict = {"__name__": "grader"}
    try:
        exec(compile(request["source"], "grader.py", "exec"), namespace)
        grade = namespace.get("grade")
        if not callable(grade):
            raise NameError("the grader's source defines no grade(sample, item) function")
    except BaseException:
        details = _users_traceback()
        results = [{"error": "runtime", "details": details} for _ in request["cases"]]
    else:
        results = [_grade_one(grade, case, request["limits"]["seconds"]) for case in request["cases"]]
    answer_stream.write(json.dumps({"results": results, "network_namespace": isolated}) + "\n")
    answer_stream.flush()


main()
