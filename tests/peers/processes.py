"""The real daemons the tests run: docker-registry (distribution 2.8), dockerd, containerd.

Each runs on loopback or on its own unix socket, in its own directories, and is
stopped by the pid this module started: never anything else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.peers.net import LOOPBACK, free_port, port_open, wait_until


class Daemon:
    """A process we started, its log, and a clean stop."""

    process: subprocess.Popen[bytes] | None = None
    log_path: Path

    def _spawn(self, argv: list[str]) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def _start_and_wait(self, argv: list[str], ready: Callable[[], bool], timeout: float,
                        what: str) -> None:
        """Spawn ``argv`` and wait until ``ready()`` (or the process ended, which is an
        error with its log); a daemon that never gets ready is stopped."""
        self._spawn(argv)
        try:
            wait_until(lambda: not self.alive() or ready(), timeout, what)
        except TimeoutError:
            self.stop()
            raise
        if not self.alive():
            raise RuntimeError(f"{argv[0]} exited:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the daemon's log, for failure messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the process we started, then SIGKILL if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class DockerRegistry(Daemon):
    """``docker-registry serve`` on 127.0.0.1, optionally behind htpasswd and TLS."""

    def __init__(self, workdir: Path, *, credentials: Credentials | None = None,
                 tls: tuple[Path, Path] | None = None, access_log: bool = False) -> None:
        self.workdir = workdir
        self.credentials = credentials
        self.tls = tls
        self.access_log = access_log
        self.port = free_port()
        self.log_path = workdir / "registry.log"
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, as image references name it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> Path:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            f"    disabled: {'false' if self.access_log else 'true'}",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.workdir / 'storage'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.host}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls[0]}", f"    key: {self.tls[1]}"]
        if self.credentials:
            import bcrypt

            hashed = bcrypt.hashpw(self.credentials.password.encode(), bcrypt.gensalt(rounds=5))
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{self.credentials.username}:{hashed.decode()}\n")
            lines += ["auth:", "  htpasswd:", "    realm: airgap-test", f"    path: {htpasswd}"]
        config = self.workdir / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> DockerRegistry:
        """Start and wait until the port answers."""
        self._start_and_wait(["docker-registry", "serve", str(self._config())],
                             lambda: port_open(self.port), 30, "docker-registry")
        return self


    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request in the access log, oldest first."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _ACCESS.search(line)
            if match:
                found.append((match.group(1), match.group(2), int(match.group(3))))
        return found


_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3}) ')


class Dockerd(Daemon):
    """A Docker engine of our own: vfs storage, no bridge, no iptables, own socket."""

    def __init__(self) -> None:
        # Unix socket paths are limited to 108 bytes: keep the root short.
        self.root = Path(tempfile.mkdtemp(prefix="ag-dockerd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.log_path = self.root / "dockerd.log"

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for this engine."""
        return f"unix://{self.socket}"

    def start(self) -> Dockerd:
        """Start the engine and wait until it answers a ping."""
        import docker

        argv = [
            "dockerd", "--storage-driver", "vfs", "--iptables=false", "--ip6tables=false",
            "--bridge=none", "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
            "-H", self.host,
        ]

        def answers() -> bool:
            if not self.socket.exists():
                return False
            client = docker.DockerClient(base_url=self.host, timeout=5)
            try:
                return bool(client.ping())
            except Exception:
                return False
            finally:
                client.close()

        self._start_and_wait(argv, answers, 60, "dockerd answering on its socket")
        return self

    def env(self) -> dict[str, str]:
        """An environment for the docker CLI and SDK pointing at this engine only."""
        return {**os.environ, "DOCKER_HOST": self.host}

    def stop(self) -> None:
        super().stop()
        # dockerd leaves its network namespace mounted under the exec root.
        _remove_with_mounts(self.root)


class Containerd(Daemon):
    """containerd on its own socket and directories, without its CRI plugin: the image
    importer Docker's containerd image store runs ``docker load`` through, driven with
    ``ctr``."""

    NAMESPACE = "airgap-test"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ag-ctrd-", dir="/tmp"))
        self.socket = self.root / "containerd.sock"
        self.log_path = self.root / "containerd.log"

    def start(self) -> Containerd:
        """Start containerd and wait until ``ctr version`` reaches it."""
        config = self.root / "config.toml"
        config.write_text("\n".join([
            "version = 2",
            f'root = "{self.root / "root"}"',
            f'state = "{self.root / "state"}"',
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "[grpc]",
            f'  address = "{self.socket}"',
            "[ttrpc]",
            f'  address = "{self.socket}.ttrpc"',
            "",
        ]))
        self._start_and_wait(["containerd", "--config", str(config)],
                             lambda: self.ctr("version").returncode == 0, 30,
                             "containerd answering on its socket")
        return self

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this containerd, in the tests' namespace."""
        return subprocess.run(["ctr", "--address", str(self.socket), "--namespace",
                               self.NAMESPACE, *args], capture_output=True, text=True,
                              check=False, timeout=300)

    def stop(self) -> None:
        super().stop()
        _remove_with_mounts(self.root)


def _remove_with_mounts(root: Path) -> None:
    """Unmount whatever a daemon left mounted under ``root`` (deepest first), then
    remove the folder."""
    table = Path("/proc/self/mounts").read_text(encoding="utf-8")
    inside = [p for p in (line.split()[1] for line in table.splitlines())
              if p.startswith(f"{root}/")]
    for point in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
