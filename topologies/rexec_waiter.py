"""The waiter of a process started by ``python -m topologies.rexec launch``: its parent.

Run as ``python -I -S rexec_waiter.py PID START RCFILE`` (stdlib only, no site: ~3 MB).
It collects the exit status of its child PID and writes ``{"pid", "start",
"returncode"}`` to RCFILE atomically, ``returncode`` as :class:`subprocess.Popen` has it
(negative signal number when the child was killed by a signal).
"""

import os
import sys


def main() -> int:
    pid, start, rc = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    try:
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except ChildProcessError:
        return 1
    tmp = f"{rc}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f'{{"pid": {pid}, "start": {start}, "returncode": {code}}}\n')
    os.replace(tmp, rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
