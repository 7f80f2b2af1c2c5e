#!/usr/bin/env python3
"""A throw-away single-node SLURM cluster on this machine, from Debian's packages.

It runs the workflow's SLURM profile against a real scheduler: tests/test_slurm.py
starts one per test module, and it can be started by hand to try the profile::

    # as root (slurmd starts jobs as the submitting user), in the venv:
    apt-get install slurmctld slurmd slurmdbd slurm-client munge mariadb-server
    python scripts/local_slurm_cluster.py start     # prints its folder DIR and the export line for it
    export SLURM_CONF="$DIR/etc/slurm.conf" PATH="$DIR/bin:$PATH"
    snakemake --workflow-profile workflow/profiles/slurm
    python scripts/local_slurm_cluster.py stop "$DIR"

What runs, each in the foreground of its own session, with every file (keys,
configuration, databases, spool, logs, sockets, PID files) under one
temporary folder and on free ports picked at start:

- ``munged`` with its own key and socket (``AuthInfo=socket=...``);
- ``mariadbd`` with its own data folder, socket and port, and a database
  user for slurmdbd;
- ``slurmdbd`` on that database, so that ``sacct`` reads the accounting
  database as on a real cluster (the executor plugin's default status query);
- ``slurmctld`` and ``slurmd``: one node named after this host (address
  127.0.0.1) with ``cpus`` CPUs, ``mem_mb`` MB and ``gpus`` fake GPUs
  (``Gres=gpu``, backed by fake device files), in partition ``debug``.

The cluster, an account ``seqae`` and the current user are registered with
``sacctmgr``. ``SLURM_CONF``, and wrappers of the SLURM commands in ``bin/``
that set it, point every command (sbatch, srun inside the jobs, sacct,
squeue, ...) at this configuration; nothing under /etc is read or written. :meth:`LocalSlurmCluster.stop` cancels the jobs that are left,
then stops every daemon it started by its PID (SIGTERM, then SIGKILL),
recorded in ``cluster.json`` for the ``stop`` command.

It needs root (the tests are skipped without). The node declares
the resources the profile asks for (``SlurmdParameters=config_overrides``),
not the machine's: nothing is enforced (no cgroups, which containers lack).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import getpass
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

PARTITION = "debug"
ACCOUNT = "seqae"
CLUSTER_NAME = "seqae-local"
STATE_FILE = "cluster.json"
DB_USER = "slurm"
DB_NAME = "slurm_acct_db"

# Programs the cluster needs, with alternatives (Debian installs both names of MariaDB's).
PROGRAMS: dict[str, tuple[str, ...]] = {
    "munged": ("munged",),
    "mariadbd": ("mariadbd", "mysqld"),
    "mariadb-install-db": ("mariadb-install-db", "mysql_install_db"),
    "mariadb": ("mariadb", "mysql"),
    "slurmdbd": ("slurmdbd",),
    "slurmctld": ("slurmctld",),
    "slurmd": ("slurmd",),
    "sacctmgr": ("sacctmgr",),
    "sbatch": ("sbatch",),
    "srun": ("srun",),
    "sacct": ("sacct",),
    "squeue": ("squeue",),
    "scancel": ("scancel",),
    "scontrol": ("scontrol",),
    "sinfo": ("sinfo",),
}
# Client commands that get a wrapper setting SLURM_CONF.
CLIENTS = ("sbatch", "srun", "salloc", "sacct", "sacctmgr", "squeue", "scancel", "scontrol", "sinfo", "sshare", "sstat")
# The daemons live in /usr/sbin, which is not on a normal user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
# Order of start; stop goes backwards.
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


# In the wrappers' second line, to tell them from the real commands.
WRAPPER_MARK = b"of the local SLURM cluster in "


class ClusterError(RuntimeError):
    """The cluster could not be started; the message ends with the tail of the daemon's log."""


def which(name: str) -> str | None:
    """``name`` on PATH or in the sbin folders, skipping the wrappers of a cluster started before."""
    for folder in SEARCH_PATH.split(os.pathsep):
        path = os.path.join(folder, name) if folder else ""
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            with open(path, "rb") as f:
                if WRAPPER_MARK not in f.read(200):
                    return path
    return None


def find_program(name: str) -> str | None:
    for candidate in PROGRAMS[name]:
        path = which(candidate)
        if path:
            return path
    return None


def missing_programs() -> list[str]:
    """Programs of :data:`PROGRAMS` that are not installed (empty when the cluster can start)."""
    return [name for name in PROGRAMS if find_program(name) is None]


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster, or None when it can (for pytest's skip)."""
    missing = missing_programs()
    if missing:
        return (
            "a local SLURM cluster needs " + ", ".join(missing) + " (Debian: apt-get install slurmctld slurmd "
            "slurmdbd slurm-client munge mariadb-server)"
        )
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts jobs as the submitting user)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} is missing)"
    return "\n".join(text[-lines:])


def fake_gpu(path: Path) -> None:
    """A device file for a GPU that is not there: a character device like /dev/null where mknod is allowed.

    SLURM then sets CUDA_VISIBLE_DEVICES in GPU jobs as on a real node; where
    mknod is refused (some containers), a plain file still counts as a GPU
    (slurmd logs that it is not a device).
    """
    if path.exists():
        return
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        path.touch()


class LocalSlurmCluster:
    """A single-node SLURM cluster under ``root``; see the module docstring.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`
    (stop is safe to call on a half-started cluster, and twice).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, cpus: int = 4, mem_mb: int = 64000, gpus: int = 1):
        # Under /tmp by default: unix sockets (munge, MariaDB) allow about 100
        # characters, and munged wants every folder above its socket open to all.
        tmp = "/tmp" if os.path.isdir("/tmp") else None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="seqae-slurm-", dir=tmp))
        self.root.mkdir(parents=True, exist_ok=True)
        self.cpus, self.mem_mb, self.gpus = cpus, mem_mb, gpus
        self.node = socket.gethostname().split(".")[0]
        self.user = getpass.getuser()
        self.etc = self.root / "etc"
        self.log_dir = self.root / "log"
        self.run_dir = self.root / "run"
        self.slurm_conf = self.etc / "slurm.conf"
        self.munge_socket = self.run_dir / "munge.socket"
        self.db_socket = self.run_dir / "mariadb.socket"
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------ environment

    @property
    def bin_dir(self) -> Path:
        """Wrappers of the SLURM commands that set SLURM_CONF (see :meth:`_write_client_wrappers`)."""
        return self.root / "bin"

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, sacct, snakemake) needs in its environment: SLURM_CONF, and PATH
        starting with :attr:`bin_dir`."""
        return {"SLURM_CONF": str(self.slurm_conf), "PATH": os.pathsep.join([str(self.bin_dir), SEARCH_PATH])}

    def environ(self) -> dict[str, str]:
        """``os.environ`` with :attr:`env`."""
        return {**os.environ, **self.env}

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a SLURM (or other) command against this cluster; returns its completed process."""
        done = subprocess.run(
            list(args), env=self.environ(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
        return done

    # ------------------------------------------------------------ start

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 90, stop_at_exit: bool = True) -> None:
        """Write the configuration, start every daemon, register the account; wait until the node is idle.

        With ``stop_at_exit`` the daemons are also stopped when this Python
        process ends without calling :meth:`stop` (an interrupted test run).
        """
        missing = missing_programs()
        if missing:
            raise ClusterError("not installed: " + ", ".join(missing))
        if stop_at_exit:
            atexit.register(self.stop)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        for folder in (self.etc, self.log_dir, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        self.root.chmod(0o755)  # munged refuses folders others can write to
        self.ports = {name: free_port() for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
        self.db_password = secrets.token_hex(12)
        self._write_slurm_files()
        self._write_client_wrappers()
        self._save_state()

        self._start_munge()
        self._start_mariadb(timeout)
        self._spawn("slurmdbd", [find_program("slurmdbd"), "-D"])
        self._wait("slurmdbd", lambda: port_open(self.ports["slurmdbd"]), timeout)
        self._register_accounts(timeout)
        self._spawn("slurmctld", [find_program("slurmctld"), "-D", "-i"])
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") > 0, timeout)
        self._spawn("slurmd", [find_program("slurmd"), "-D", "-N", self.node])
        self._wait("slurmd", self._node_ready, timeout)

    def _write_slurm_files(self) -> None:
        state = self.root / "state"
        for sub in ("slurmctld", "slurmd", "tmp"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        dev = self.root / "dev"
        dev.mkdir(exist_ok=True)
        gpu_files = []
        for i in range(self.gpus):
            gpu_files.append(str(dev / f"nvidia{i}"))
            fake_gpu(Path(gpu_files[-1]))
        auth = f"AuthInfo=socket={self.munge_socket}"
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        self.slurm_conf.write_text(
            f"""\
# Written by scripts/local_slurm_cluster.py: one node, everything under {self.root}.
ClusterName={CLUSTER_NAME}
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser={self.user}
SlurmdUser=root
AuthType=auth/munge
{auth}
SlurmctldPort={self.ports["slurmctld"]}
SlurmdPort={self.ports["slurmd"]}
StateSaveLocation={state / "slurmctld"}
SlurmdSpoolDir={state / "slurmd"}
TmpFS={state / "tmp"}
SlurmctldPidFile={self.run_dir / "slurmctld.pid"}
SlurmdPidFile={self.run_dir / "slurmd.pid"}
SlurmctldLogFile={self.log_dir / "slurmctld.log"}
SlurmdLogFile={self.log_dir / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={self.etc / "plugstack.conf"}
MailProg=/bin/true
# No cgroups (containers): processes are tracked through /proc, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# Accounting through slurmdbd, so that sacct reads the database as on a real cluster.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports["slurmdbd"]}
# For slurmdbd, the "password" is the munge socket of its connections.
AccountingStoragePass={self.munge_socket}
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
# Quick turnover for tests: a cancelled job's processes get SIGKILL 5 s after SIGTERM.
KillWait=5
MinJobAge=300
InactiveLimit=0
ReturnToService=2
SlurmdTimeout=60
# The node declares what the workflow's profile asks for, not this machine's hardware.
SlurmdParameters=config_overrides
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb}{gres} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        )
        gres_lines = ["AutoDetect=off"] + [f"NodeName={self.node} Name=gpu File={f}" for f in gpu_files]
        (self.etc / "gres.conf").write_text("\n".join(gres_lines) + "\n")
        (self.etc / "plugstack.conf").write_text("")
        dbd_conf = self.etc / "slurmdbd.conf"
        dbd_conf.write_text(
            f"""\
AuthType=auth/munge
{auth}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports["slurmdbd"]}
SlurmUser={self.user}
DebugLevel=info
LogFile={self.log_dir / "slurmdbd.log"}
PidFile={self.run_dir / "slurmdbd.pid"}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports["mariadb"]}
StorageUser={DB_USER}
StoragePass={self.db_password}
StorageLoc={DB_NAME}
"""
        )
        dbd_conf.chmod(0o600)  # slurmdbd refuses a readable file (it holds the password)

    def _write_client_wrappers(self) -> None:
        """A wrapper per SLURM command in :attr:`bin_dir` that sets SLURM_CONF, then runs the command.

        SLURM_CONF alone is not enough: snakemake-executor-plugin-slurm-jobstep
        removes every SLURM_* variable but the job's id from the environment of
        the ``srun`` it runs inside a job, so an ``srun`` there would look for
        /etc/slurm/slurm.conf (snakemake-executor-plugin-slurm issue #164). With
        the wrappers first on PATH, which the job inherits, every command finds
        this cluster's configuration.
        """
        self.bin_dir.mkdir(exist_ok=True)
        for name in CLIENTS:
            program = which(name)
            if program is None:
                continue
            wrapper = self.bin_dir / name
            wrapper.write_text(
                f"#!/bin/sh\n# {name} {WRAPPER_MARK.decode()}{self.root}\n"
                f'SLURM_CONF={self.slurm_conf} exec {program} "$@"\n'
            )
            wrapper.chmod(0o755)

    def _start_munge(self) -> None:
        key = self.etc / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self._spawn(
            "munged",
            [
                find_program("munged"),
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--log-file={self.log_dir / 'munged.log'}",
                f"--pid-file={self.run_dir / 'munged.pid'}",
                f"--seed-file={self.run_dir / 'munged.seed'}",
            ],
        )
        self._wait("munged", self.munge_socket.exists, 30)

    def _mariadb_client(self, sql: str) -> subprocess.CompletedProcess:
        return self.run(
            find_program("mariadb"), "--no-defaults", f"--socket={self.db_socket}", "-uroot", "-e", sql, check=False
        )

    def _start_mariadb(self, timeout: float) -> None:
        data = self.root / "mariadb"
        install = subprocess.run(
            [
                find_program("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={data}",
                f"--user={self.user}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if install.returncode != 0:
            raise ClusterError(f"mariadb-install-db failed: {install.stdout[-2000:]}{install.stderr[-2000:]}")
        self._spawn(
            "mariadbd",
            [
                find_program("mariadbd"),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={self.db_socket}",
                f"--port={self.ports['mariadb']}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.run_dir / 'mariadbd.pid'}",
                f"--log-error={self.log_dir / 'mariadbd.log'}",
                f"--user={self.user}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=128M",
                "--innodb-lock-wait-timeout=900",
                "--innodb-flush-log-at-trx-commit=2",
            ],
        )
        self._wait("mariadbd", lambda: self._mariadb_client("SELECT 1").returncode == 0, timeout)
        users = [f"'{DB_USER}'@'{host}'" for host in ("localhost", "127.0.0.1")]
        sql = "".join(
            f"CREATE USER {u} IDENTIFIED BY '{self.db_password}'; GRANT ALL ON {DB_NAME}.* TO {u}; " for u in users
        )
        done = self._mariadb_client(sql + "FLUSH PRIVILEGES;")
        if done.returncode != 0:
            raise ClusterError(f"creating the database user failed: {done.stderr.strip()}")

    def _register_accounts(self, timeout: float) -> None:
        # slurmdbd listens before it has created its tables: retry the first command.
        deadline = time.monotonic() + timeout
        while True:
            done = self.run("sacctmgr", "-i", "add", "cluster", CLUSTER_NAME, check=False)
            if done.returncode == 0 or "already exist" in done.stdout + done.stderr:
                break
            if time.monotonic() > deadline or not pid_alive(self.pids["slurmdbd"]):
                raise ClusterError(f"sacctmgr add cluster failed: {done.stderr.strip()}\n{self._log('slurmdbd')}")
            time.sleep(0.5)
        self.run("sacctmgr", "-i", "add", "account", ACCOUNT, "Description=seqae tests", "Organization=seqae")
        self.run("sacctmgr", "-i", "add", "user", self.user, f"Account={ACCOUNT}", f"DefaultAccount={ACCOUNT}")

    def _node_ready(self) -> bool:
        state = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False).stdout.strip()
        return state.rstrip("*") == "idle"

    # ------------------------------------------------------------ processes

    def _log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        out = self.log_dir / f"{name}.out"
        return f"--- {path}:\n{log_tail(path)}\n--- {out}:\n{log_tail(out)}"

    def _spawn(self, name: str, argv: list[str | None]) -> None:
        """Start a daemon in the foreground, in its own session, with SLURM_CONF set; record its PID."""
        with open(self.log_dir / f"{name}.out", "ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        self._procs[name] = proc
        self.pids[name] = proc.pid
        self._save_state()

    def _wait(self, name: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not pid_alive(self.pids[name]):
                raise ClusterError(f"{name} exited while starting\n{self._log(name)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} not ready after {timeout:.0f} s\n{self._log(name)}")
            time.sleep(0.2)

    def _save_state(self) -> None:
        state = {
            "root": str(self.root),
            "slurm_conf": str(self.slurm_conf),
            "node": self.node,
            "partition": PARTITION,
            "account": ACCOUNT,
            "ports": self.ports,
            "pids": self.pids,
        }
        (self.root / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, root: str | os.PathLike[str]) -> LocalSlurmCluster:
        """The cluster started earlier under ``root`` (by ``start`` in another process)."""
        state = json.loads((Path(root) / STATE_FILE).read_text())
        cluster = cls(root)
        cluster.ports = {k: int(v) for k, v in state["ports"].items()}
        cluster.pids = {k: int(v) for k, v in state["pids"].items()}
        return cluster

    def running(self) -> dict[str, bool]:
        """Daemon name -> whether its recorded PID still runs it."""
        return {name: self._owns(name, pid) for name, pid in self.pids.items()}

    def _owns(self, name: str, pid: int) -> bool:
        """True when ``pid`` is alive and is still our daemon (a PID is not reused for another program)."""
        if not pid_alive(pid):
            return False
        if str(self.root) in pid_cmdline(pid):
            return True
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"SLURM_CONF={self.slurm_conf}".encode() in environ

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel this cluster's jobs and wait until none is left on the node."""
        if not self.running().get("slurmctld"):
            return
        self.run("scancel", f"--user={self.user}", check=False, timeout=15)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.run("squeue", "-h", "-o", "%i", check=False, timeout=15)
            if jobs.returncode != 0 or not jobs.stdout.strip():
                return
            time.sleep(0.5)

    def stop(self, timeout: float = 20) -> None:
        """Cancel left-over jobs, then stop every daemon started here by its PID: SIGTERM, wait, SIGKILL."""
        # Best effort: a controller that is already down has no jobs to cancel,
        # and the daemons below must be stopped either way.
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.cancel_all()
        for name in reversed(DAEMONS):
            pid = self.pids.get(name)
            if pid is None or not self._owns(name, pid):
                self._reap(name)
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                self._reap(name)
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                while pid_alive(pid):
                    self._reap(name)
                    time.sleep(0.1)
            self._reap(name)

    def _reap(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None:
            proc.poll()


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a cluster; print its folder and SLURM_CONF")
    start.add_argument(
        "dir", nargs="?", help="a new or empty folder for all its files (default: a new /tmp/seqae-slurm-*)"
    )
    start.add_argument("--cpus", type=int, default=4)
    start.add_argument("--mem-mb", type=int, default=64000)
    start.add_argument("--gpus", type=int, default=1, help="fake GPUs (gres gpu)")
    for name, text in (("stop", "cancel its jobs and stop its daemons"), ("status", "show its daemons and node")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", help="the folder that `start` printed")
    args = parser.parse_args(argv)

    if args.command == "start":
        reason = unavailable_reason()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        cluster = LocalSlurmCluster(args.dir, cpus=args.cpus, mem_mb=args.mem_mb, gpus=args.gpus)
        try:
            cluster.start(stop_at_exit=False)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"cluster started in {cluster.root}; in your shell:")
        print(f'export SLURM_CONF={cluster.slurm_conf} PATH="{cluster.bin_dir}:$PATH"')
        print(f"stop it with: {sys.argv[0]} stop {cluster.root}")
        return 0

    cluster = LocalSlurmCluster.attach(args.dir)
    if args.command == "stop":
        cluster.stop()
        print(f"stopped; its files remain in {cluster.root}")
        return 0
    for name, alive in cluster.running().items():
        print(f"{name:10} pid {cluster.pids[name]:>7} {'running' if alive else 'stopped'}")
    if cluster.running().get("slurmctld"):
        print(cluster.run("sinfo", check=False).stdout, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
