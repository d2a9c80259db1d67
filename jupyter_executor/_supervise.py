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
- ``--zygote FD --parent PID``: it serves the engine on the socket FD: it starts every attached
  command of the engine and supervises them all, instead of one supervisor process per command
  (see :class:`_Zygote`).

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

#: The errno a command that cannot be started for a bad value fails with ("Invalid argument").
_EINVAL = 22

#: How often the kernel is checked for when no pidfd can watch it (seconds).
_REPARENT_CHECK = 0.25

#: The signals the loop handles; each only writes its number to the wake-up pipe.
_HANDLED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGCHLD)
#: Signals a command gets at their default disposition (we handle some; Python ignores others).
_DEFAULTED = (*_HANDLED, _signal.SIGPIPE, _signal.SIGXFSZ)


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
    return os.posix_spawnp(command[0], command, os.environ, setsigdef=_DEFAULTED, setsigmask=mask)


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
    os._exit(code)  # no frame unwinds, no atexit: nothing of ours is left to clean


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
        parent, parent_fd = _kernel(options)
    if options.zygote is not None:
        assert parent is not None and parent_fd is not None
        _Zygote(options.zygote, parent_fd, wake_r).serve()
    _supervise(options.command, options, parent, parent_fd, wake_r)


def _kernel(options: _Options) -> tuple[int, int | None]:
    """The kernel's pid and a pidfd of it; exits at once when the kernel died already."""
    orphaned = False
    if options.parent is None:  # an older engine: judge by the parent we find
        parent = os.getppid()
        orphaned = parent == 1
    else:
        parent = options.parent
    parent_fd = _watch(parent)
    if orphaned or os.getppid() != parent:
        _exit(_signal.SIGTERM + 128)  # the kernel died first: the command never runs
    return parent, parent_fd


def _supervise(
    command: list[str], options: _Options, parent: int | None, parent_fd: int | None, wake_r: int
) -> NoReturn:
    """Run ``command``, stop its group when told to or when the kernel dies, mirror its end.

    ``parent`` is the kernel's pid (None: detached), ``parent_fd`` a pidfd of it (None: check
    whether we were re-parented now and then), ``wake_r`` the wake-up pipe of :func:`_install`.
    """
    try:
        pid = _spawn(command)
    except OSError as exc:
        sys.stderr.write(f"cannot run {command[0]!r}: {exc.strerror}\n")
        if options.exit_file:
            _write_exit(options.exit_file, 127)
        _exit(127)
    status = _Supervision(pid, options.grace, (parent, parent_fd), wake_r).run()
    _mirror(os.waitstatus_to_exitcode(status), options.exit_file)


class _Supervision:
    """The supervisor's loop: wait for the command, a SIGTERM, or the kernel's death."""

    def __init__(
        self, pid: int, grace: float, kernel: tuple[int | None, int | None], wake_r: int
    ) -> None:
        """``kernel``: the kernel's pid and a pidfd of it (see :func:`_supervise`)."""
        import select  # an extension module, but a small one (< 1 ms)

        self.pid = pid
        self.grace = grace
        self.parent, self.parent_fd = kernel
        self.wake_r = wake_r
        self.poller = select.poll()
        for fd in (wake_r, self.parent_fd):
            if fd is not None:
                self.poller.register(fd, select.POLLIN)
        self.stop_at: float | None = None  # the SIGKILL deadline, once the group was told to stop
        self.orphaned = False  # the kernel died: nobody waits for our status, the group must go

    def run(self) -> int:
        """The command's wait status (an orphaned supervisor never returns: see :meth:`_wait`)."""
        status: int | None = None
        while status is None or self.orphaned:
            if status is None:
                status = self._reaped()
            if status is not None and not self.orphaned:
                break
            self._wait()
        return status

    def _reaped(self) -> int | None:
        try:
            done, waited = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # pragma: no cover - only we reap it
            return 0
        return waited if done == self.pid else None

    def _polling(self) -> bool:
        """No pidfd on the kernel: look for a re-parenting now and then."""
        return self.parent is not None and self.parent_fd is None and not self.orphaned

    def _wait(self) -> None:
        """Wait for the next event; on the first stop request, SIGTERM the group."""
        now = time.monotonic()
        if self.stop_at is not None and now >= self.stop_at:
            _killpg(_signal.SIGKILL)  # ourselves included: the grace is over
        timeout = None if self.stop_at is None else self.stop_at - now
        polling = self._polling()
        if polling:
            timeout = _REPARENT_CHECK if timeout is None else min(timeout, _REPARENT_CHECK)
        ready = self.poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
        stop = any([self._event(fd) for fd, _event in ready])
        if polling and os.getppid() != self.parent:
            self.orphaned = stop = True
        if stop and self.stop_at is None:
            self.stop_at = time.monotonic() + self.grace
            _killpg(_signal.SIGTERM)  # we get it too: the handler only notes it

    def _event(self, fd: int) -> bool:
        """Handle what ``fd`` says; True when the group must stop."""
        if fd == self.wake_r:
            return _signal.SIGTERM in _drain(self.wake_r)
        if fd == self.parent_fd:
            self.poller.unregister(fd)
            self.orphaned = True
            return True
        return False


def _drain(wake_r: int) -> bytes:
    """The signal numbers noted in the wake-up pipe since the last call."""
    signals = b""
    while True:
        try:
            chunk = os.read(wake_r, 4096)
        except BlockingIOError:
            return signals
        if not chunk:
            return signals
        signals += chunk


def _mirror(code: int, exit_file: str | None) -> NoReturn:
    """End as the command did (its exit code, or death by the same signal)."""
    if exit_file:
        _write_exit(exit_file, code)
    if code < 0:  # die of the same signal
        if -code not in (_signal.SIGKILL, _signal.SIGSTOP):  # these have no handler to reset
            _signal.signal(-code, _signal.SIG_DFL)
        _signal.set_wakeup_fd(-1)
        os.kill(os.getpid(), -code)
        code = 128 - code  # a signal that does not terminate (not one a command dies of)
    _exit(code)


class _Zygote:
    """The zygote: start each command the engine sends over a socket, and supervise them all.

    One per engine, a child of the kernel, watching it through a pidfd. Each request is one
    message: JSON ``{"id", "argv", "env", "cwd", "grace"}`` with the command's stdout and
    stderr pipes attached (``SCM_RIGHTS``); ``env`` is what the command adds to the kernel's
    environment, which comes in a message of its own, ``{"base"}``, before the first request
    and whenever it changed.
    The command is started by ``posix_spawn`` (a ``vfork`` and an ``exec``) as the leader of
    a session of its own, its parent the zygote.
    The answers: ``started ID PID``, ``failed ID ERRNO`` (it could not be started: the engine
    says so as a supervisor does, with status 127), and ``ended ID STATUS`` (a wait status)
    when the zygote has reaped it.

    Why not a supervisor per command (as a detached command has): a forked supervisor cost two
    to three milliseconds of CPU per command (its copied pages, its exit), three times the
    command's own cost for a short one, which made a burst of short commands CPU-bound on a
    small machine. One process supervising all of them keeps each guarantee: when the kernel
    dies (its pidfd), or the engine closes the socket, every command's group gets SIGTERM,
    then SIGKILL after the grace; the engine stops the groups itself if the zygote dies first.
    """

    def __init__(self, sock_fd: int, parent_fd: int, wake_r: int) -> None:
        import json
        import select
        import socket

        self._json = json
        self._socket = socket
        os.set_inheritable(sock_fd, False)  # passed to us; the commands must not hold it
        self.sock = socket.socket(fileno=sock_fd)
        self.parent_fd = parent_fd
        self.wake_r = wake_r
        self.poller = select.poll()
        for fd in (parent_fd, wake_r, sock_fd):  # the kernel's death first
            self.poller.register(fd, select.POLLIN)
        self.running: dict[int, tuple[int, float]] = {}  # command pid -> (request id, grace)
        self.home = os.open(".", os.O_RDONLY)  # our working directory, between commands
        self.null = os.open(os.devnull, os.O_RDONLY)  # every command's stdin
        self.base: dict[str, str] = {}  # the kernel's environment, as last sent
        self.mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, ())

    def serve(self) -> NoReturn:
        """Serve until the kernel dies or the engine closes the socket."""
        while True:
            for fd, _event in self.poller.poll():
                if fd == self.parent_fd:
                    self._stop_all()  # the kernel died
                elif fd == self.wake_r:
                    _drain(self.wake_r)  # SIGCHLD (SIGTERM and SIGINT: nothing to do)
                    self._reap()
                else:
                    self._request()

    def _send(self, text: str) -> None:
        try:  # noqa: SIM105 - contextlib is not imported here (see the module docstring)
            self.sock.send(text.encode())
        except OSError:
            pass  # the engine is gone: its end of the socket says so next

    def _reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:  # pragma: no cover - they are ours to reap
                return
            if pid == 0:
                return
            entry = self.running.pop(pid, None)
            if entry is not None:
                self._send(f"ended {entry[0]} {status}")

    def _request(self) -> None:
        try:
            message, fds, _flags, _address = self._socket.recv_fds(self.sock, 1 << 20, 2)
        except OSError:
            message, fds = b"", []
        try:
            if not message:
                self._stop_all()  # the engine closed its end (shutdown)
            request = self._json.loads(message)
            if "argv" not in request:  # the kernel's environment, for the commands after
                self.base = request["base"]
                return
            try:
                pid = self._start(request, fds)
            except OSError as exc:
                self._send(f"failed {request['id']} {exc.errno or 0}")
            except Exception:
                # What cannot be passed to a process (a NUL byte, a lone surrogate that does
                # not encode) fails this command alone: the zygote serves every other one.
                self._send(f"failed {request['id']} {_EINVAL}")
            else:
                self.running[pid] = (request["id"], float(request["grace"]))
                self._send(f"started {request['id']} {pid}")
        finally:
            for received in fds:
                os.close(received)

    def _start(self, request: dict[str, object], fds: list[int]) -> int:
        """Start the command of ``request``, its stdout and stderr the pipes ``fds``."""
        argv = request["argv"]
        extra = request["env"]
        cwd = request.get("cwd")
        assert isinstance(argv, list) and isinstance(extra, dict) and len(fds) == 2
        env = {**self.base, **extra}
        for fd in fds:
            # Received inheritable: the command would hold a second copy of its pipes, which
            # a daemon it leaves behind (closing 0-2) would keep open, the job never ending.
            os.set_inheritable(fd, False)
        # posix_spawnp looks the program up in our PATH: make it the command's.
        path = env.get("PATH")
        if path is None:
            os.unsetenv("PATH")
        else:
            os.putenv("PATH", path)
        null = self.null
        try:
            if isinstance(cwd, str):
                os.chdir(cwd)  # (3.11's posix_spawn has no chdir action)
            actions = [
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, fds[0], 1),
                (os.POSIX_SPAWN_DUP2, fds[1], 2),
            ]
            return os.posix_spawnp(
                argv[0], argv, env, file_actions=actions, setsid=True,
                setsigdef=_DEFAULTED, setsigmask=self.mask,
            )  # fmt: skip
        finally:
            if isinstance(cwd, str):
                os.fchdir(self.home)

    def _stop_all(self) -> NoReturn:
        """Nobody will wait for the commands any more: stop their groups, then exit.

        SIGTERM to every group, SIGKILL after the longest grace to the groups that still have
        members (those that ignore SIGTERM). Members that are not our children do not wake us
        when they end, so the groups are looked at every 50 ms meanwhile (only while the
        kernel's end is being handled).
        """
        groups = set(self.running)
        grace = max((g for _id, g in self.running.values()), default=0.0)
        for pgid in groups:
            _signal_group(pgid, _signal.SIGTERM)
        deadline = time.monotonic() + grace
        while groups and time.monotonic() < deadline:
            self._reap()
            groups = {pgid for pgid in groups if _group_alive(pgid)}
            self.poller.poll(50)
            _drain(self.wake_r)
        for pgid in groups:
            _signal_group(pgid, _signal.SIGKILL)
        _exit(0)


def _signal_group(pgid: int, sig: int) -> None:
    try:  # noqa: SIM105 - contextlib is not imported here (see the module docstring)
        os.killpg(pgid, sig)
    except OSError:
        pass  # gone already


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (EPERM: a member changed its uid; it is still there)
    return True


if __name__ == "__main__":
    main()
