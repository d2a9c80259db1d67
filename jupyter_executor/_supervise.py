"""Supervisor of a subprocess job: ``python -S _supervise.py [options] -- COMMAND...``.

Standalone: it imports only modules built into the interpreter (``_signal`` rather than
``signal``, which imports ``enum``; no ``subprocess``, ``threading``, ``ctypes`` or ``json``), so
that with ``-S`` it runs the command a few milliseconds after the interpreter starts. It is the
leader of the job's process group and runs the command as its child.

- Attached jobs (``--parent PID``, the kernel's pid): when the kernel dies, even by SIGKILL, it
  terminates its whole group (SIGTERM, then SIGKILL after ``--grace`` seconds). It watches the
  kernel through a pidfd (Linux), else by checking every 0.25 s whether it was re-parented; a
  supervisor whose parent is not ``PID`` when it starts (the kernel died first and it was
  re-parented to init or a subreaper) stops at once.
- Detached jobs (``--detached``): it ignores hang-ups and outlives the kernel; the command's
  output goes to the log file the engine opened for it.
- ``--exit-file F``: the command's exit status is written to F (atomically), so that an engine
  that re-attaches to a detached job in a new kernel learns how it ended.
- ``--claim-file F``: before anything else it creates F holding its pid, atomically and only if
  F does not exist; if F exists it exits at once (status 125) without running the command. The
  engine commits the job's record before it starts the supervisor, so an engine killed in
  between leaves a record without a pid: the next engine reads the pid from F, or, finding no F,
  creates F itself, which stops a supervisor still starting from running the command. Either
  way nothing runs unknown to the history.
- SIGTERM (a cancel): it passes it on to its group and SIGKILLs the group after the grace.
- ``--zygote FD --parent PID``: it serves the engine on the socket FD, forking one supervisor
  per attached command instead of starting an interpreter for each (see :func:`_serve`).

Every signal it handles does nothing but wake its one loop (``signal.set_wakeup_fd``), which
does all the work in the main thread: no helper thread and no lock, so no signal arriving at
any instant, or several at once, can leave it stuck. An earlier supervisor did the work in its
SIGTERM handler, and the kernel's death signalled it once per kernel thread that exited
(``PR_SET_PDEATHSIG`` follows threads): re-entered while it held a ``threading.Event``'s lock,
the handler waited on it forever, and the supervisor outlived its SIGKILLed kernel in CI.

Its own exit status mirrors the command's, including death by a signal.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import NoReturn  # `import typing` costs 12 ms
else:
    import _signal  # signal's C module: `import signal` costs 10-25 ms (enum)

#: Exit status of a supervisor whose claim file was taken first (by an engine that found the
#: record of a job whose kernel died before it could know the job's pid).
_NOT_CLAIMED = 125

#: How often the kernel is checked for when no pidfd can watch it (seconds).
_REPARENT_CHECK = 0.25

#: The signals the loop handles; each only writes its number to the wake-up pipe.
_HANDLED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGCHLD)


class _Options:
    def __init__(self, argv: list[str]) -> None:
        self.detached = False
        self.exit_file: str | None = None
        self.claim_file: str | None = None
        self.parent: int | None = None
        self.zygote: int | None = None
        self.grace = 2.0
        i = 0
        while i < len(argv) and argv[i] != "--":
            if argv[i] == "--detached":
                self.detached = True
            elif argv[i] == "--exit-file":
                i += 1
                self.exit_file = argv[i]
            elif argv[i] == "--claim-file":
                i += 1
                self.claim_file = argv[i]
            elif argv[i] == "--grace":
                i += 1
                self.grace = float(argv[i])
            elif argv[i] == "--parent":
                i += 1
                self.parent = int(argv[i])
            elif argv[i] == "--zygote":
                i += 1
                self.zygote = int(argv[i])
            i += 1
        self.command = argv[i + 1 :]


def claim(path: str, content: str) -> bool:
    """Create ``path`` holding ``content`` unless it exists; True when this call created it.

    Atomic, content included (written aside, then hard-linked into place): a reader never
    sees it empty. Also used by the engine, to claim a job that never started.
    """
    import _thread  # built in: unique temp names across the engine's threads

    tmp = f"{path}.{os.getpid()}.{_thread.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content.encode())
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def _write_exit(path: str, returncode: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:  # JSON, written by hand: `import json` costs more than the job
        f.write(f'{{"returncode": {returncode}, "finished": {time.time()!r}}}')
    os.replace(tmp, path)


def _noted(signum: int, frame: object) -> None:
    """The Python side of a handled signal: nothing (the C side wrote it to the wake-up pipe)."""


def _killpg(sig: int) -> None:
    os.killpg(0, sig)  # our own group: it holds this process, so it exists


def _watch(parent: int) -> int | None:
    """A pidfd of the kernel ``parent``; None when none can be had (then poll ``getppid``)."""
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        return None
    # Opened by pid: valid only if ``parent`` is still our parent now (a kernel that died
    # first may have had its pid reused; then we were re-parented and the caller stops).
    return fd


def _spawn(command: list[str]) -> int:
    """Start ``command`` as our child, with the signal mask and dispositions we were given.

    ``posix_spawn`` (a ``vfork`` and an ``exec``): a ``fork`` of even this small interpreter
    costs two to three times as much CPU, copied page tables and all. Python ignores SIGPIPE
    and SIGXFSZ, and we handle a few signals: the command gets them at their default. (glibc's
    ``posix_spawn`` also leaves its two internal signals, 32 and 33, ignored in the command, as
    it does for every program that uses it: glibc and musl programs set them up themselves.)
    """
    mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, ())  # the mask we run with: unchanged
    default = (*_HANDLED, _signal.SIGPIPE, _signal.SIGXFSZ)
    return os.posix_spawnp(command[0], command, os.environ, setsigdef=default, setsigmask=mask)


def _install() -> int:
    """Make every handled signal only wake the loop: the read end of the wake-up pipe."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in _HANDLED:
        _signal.signal(sig, _noted)
    return wake_r


def _exit(code: int) -> NoReturn:
    sys.stderr.flush()
    os._exit(code)  # also in a supervisor forked by the zygote: none of its frames unwinds


def main() -> None:
    """Run the command of ``sys.argv`` as described in the module docstring."""
    options = _Options(sys.argv[1:])
    # Handlers before anything else: from here on a signal is only noted, and the loop below
    # handles it whenever it came.
    wake_r = _install()
    if options.detached:
        _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    if options.claim_file is not None and not claim(
        options.claim_file, f'{{"pid": {os.getpid()}}}'
    ):
        _exit(_NOT_CLAIMED)  # the next engine recorded this job as never started
    parent: int | None = None
    parent_fd: int | None = None
    if not options.detached:
        orphaned = False
        if options.parent is None:  # an older engine: judge by the parent we find
            parent = os.getppid()
            orphaned = parent == 1
        else:
            parent = options.parent
        parent_fd = _watch(parent)
        if orphaned or os.getppid() != parent:
            _exit(_signal.SIGTERM + 128)  # the kernel died first: the command never runs
    if options.zygote is not None:
        assert parent is not None and parent_fd is not None
        _serve(options.zygote, parent, parent_fd, wake_r)
    _supervise(options.command, options, parent, parent_fd, wake_r)


def _supervise(
    command: list[str], options: _Options, parent: int | None, parent_fd: int | None, wake_r: int
) -> NoReturn:
    """Run ``command``, stop its group when told to or when the kernel dies, mirror its end.

    ``parent`` is the kernel's pid (None: detached), ``parent_fd`` a pidfd of it (None: check
    whether we were re-parented now and then), ``wake_r`` the wake-up pipe of :func:`_install`.
    """
    import select  # an extension module, but a small one (< 1 ms)

    poller = select.poll()
    poller.register(wake_r, select.POLLIN)
    if parent_fd is not None:
        poller.register(parent_fd, select.POLLIN)
    stop_at: float | None = None  # the SIGKILL deadline, once the group was told to stop
    orphaned = False  # the kernel died: nobody waits for our status, the group must go
    try:
        pid = _spawn(command)
    except OSError as exc:
        sys.stderr.write(f"cannot run {command[0]!r}: {exc.strerror}\n")
        if options.exit_file:
            _write_exit(options.exit_file, 127)
        _exit(127)

    status: int | None = None
    while True:
        if status is None:
            try:
                done, waited = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # pragma: no cover - only we reap it
                done, waited = pid, 0
            if done == pid:
                status = waited
        if status is not None and not orphaned:
            break
        now = time.monotonic()
        if stop_at is not None and now >= stop_at:
            _killpg(_signal.SIGKILL)  # ourselves included: the grace is over
        timeout = None if stop_at is None else stop_at - now
        polling = parent is not None and parent_fd is None and not orphaned
        if polling:  # no pidfd: look for a re-parenting now and then
            timeout = _REPARENT_CHECK if timeout is None else min(timeout, _REPARENT_CHECK)
        ready = poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
        stop = False
        for fd, _event in ready:
            if fd == wake_r:
                try:
                    signals = os.read(wake_r, 4096)
                except BlockingIOError:
                    signals = b""
                stop = stop or _signal.SIGTERM in signals
            elif fd == parent_fd:
                poller.unregister(fd)
                orphaned = stop = True
        if polling and os.getppid() != parent:
            orphaned = stop = True
        if stop and stop_at is None:
            stop_at = time.monotonic() + options.grace
            _killpg(_signal.SIGTERM)  # we get it too: the handler only notes it

    code = os.waitstatus_to_exitcode(status)
    if options.exit_file:
        _write_exit(options.exit_file, code)
    if code < 0:  # die of the same signal
        if -code not in (_signal.SIGKILL, _signal.SIGSTOP):  # these have no handler to reset
            _signal.signal(-code, _signal.SIG_DFL)
        _signal.set_wakeup_fd(-1)
        os.kill(os.getpid(), -code)
        code = 128 - code  # a signal that does not terminate (not one a command dies of)
    _exit(code)


def _serve(sock_fd: int, parent: int, parent_fd: int, wake_r: int) -> NoReturn:
    """The zygote: fork a supervisor for each command the engine sends over ``sock_fd``.

    One per engine, a child of the kernel ``parent`` (watched through ``parent_fd``). Each
    request is one message: JSON ``{"id", "argv", "env", "cwd", "grace"}`` with the command's
    stdout and stderr pipes attached (``SCM_RIGHTS``). It answers ``started ID PID`` once the
    supervisor is forked, ``failed ID ERRNO`` when it could not be, and ``ended ID STATUS`` (a
    wait status) when it has ended. A forked supervisor costs a ``fork`` of this small
    process instead of a new interpreter with its imports. It leads a session of its own and
    watches the kernel through the pidfd it inherits, exactly as a supervisor started alone.
    The zygote exits when the engine closes the socket or when the kernel dies; the
    supervisors it forked go on to their end either way.
    """
    import json
    import select
    import socket

    sock = socket.socket(fileno=sock_fd)
    poller = select.poll()
    for fd in (sock_fd, wake_r, parent_fd):
        poller.register(fd, select.POLLIN)
    ids: dict[int, int] = {}  # supervisor pid -> request id
    while True:
        for fd, _event in poller.poll():
            if fd == parent_fd:
                _exit(0)  # the kernel died: its supervisors stop their groups by themselves
            if fd == wake_r:
                while True:
                    try:
                        if not os.read(wake_r, 4096):
                            break
                    except BlockingIOError:
                        break
                while ids:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    if pid in ids:
                        sock.send(f"ended {ids.pop(pid)} {status}".encode())
            if fd == sock_fd:
                try:
                    message, fds, _flags, _address = socket.recv_fds(sock, 1 << 20, 2)
                except OSError:
                    message, fds = b"", []
                if not message:
                    _exit(0)  # the engine closed its end (shutdown)
                request = json.loads(message)
                try:
                    pid = _fork_supervisor(request, fds, parent, parent_fd, sock)
                except OSError as exc:
                    sock.send(f"failed {request['id']} {exc.errno or 0}".encode())
                else:
                    ids[pid] = request["id"]
                    sock.send(f"started {request['id']} {pid}".encode())
                finally:
                    for received in fds:
                        os.close(received)


def _fork_supervisor(
    request: dict[str, object], fds: list[int], parent: int, parent_fd: int, sock: object
) -> int:
    """Fork a supervisor for ``request`` (see :func:`_serve`); its pid."""
    blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, _HANDLED)
    try:
        pid = os.fork()
        if pid == 0:  # the supervisor
            try:
                sock.close()  # type: ignore[attr-defined]
                wake_r = _install()  # a pipe of its own: the zygote's stays the zygote's
                _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(fds[0], 1)
                os.dup2(fds[1], 2)
                for fd in (null, *fds):
                    os.close(fd)
                cwd = request.get("cwd")
                if isinstance(cwd, str):
                    os.chdir(cwd)
                env = request["env"]
                assert isinstance(env, dict)
                os.environ.clear()
                os.environ.update(env)
                options = _Options(["--grace", str(request["grace"])])
                argv = request["argv"]
                assert isinstance(argv, list)
                _supervise(argv, options, parent, parent_fd, wake_r)
            except BaseException:
                pass
            finally:
                _exit(127)
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)
    return pid


if __name__ == "__main__":
    main()
