"""A stand-in for the Elastic Package Registry API (elastic/package-registry).

Routes as in elastic/package-registry ``main.go``: ``/`` and ``/index.json``, ``/health``,
``/search`` (``package``, ``kibana.version``, ``prerelease``, ``all``, ``type``,
``spec.min``, ``spec.max``; other parameters are accepted and ignored, as the registry
does by default), ``/package/<name>/<version>/``, ``/epr/<name>/<name>-<version>.zip``
and ``.sig``. Search answers with only the newest matching version of each package
unless ``all=true``; only a version with a semver pre-release part is a pre-release
(``0.x`` versions are not: the real ``search.json`` holds many). ``spec.min`` and
``spec.max`` bound the major.minor of a package's ``format_version``. Answers have the
shape of the registry's golden files (tests/fixtures/package-registry). Downloads can
redirect to a storage host, as production does, and take faults; a package can be
published without its ``.sig`` (its answer then has no ``signature_path``).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.peers.files import Faults, safe_join, serve_file, storage_app
from tests.peers.gpgkeys import SigningKey
from tests.peers.net import BackgroundServer

SERVICE_VERSION = "1.40.1"
_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?(?:-([0-9A-Za-z.-]+))?$")


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Sort key for semantic versions: a pre-release sorts before its release."""
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"not a version: {version}")
    major, minor, patch = (int(g) if g and g.isdigit() else 0 for g in match.groups()[:3])
    pre = match.group(4) or ""
    return major, minor, patch, 0 if pre else 1, pre


def is_prerelease(version: str) -> bool:
    """The registry's rule: a semver pre-release part makes a pre-release (0.x does not)."""
    return bool(version_key(version)[4])


_SPEC = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?\Z")


def spec_key(text: str) -> tuple[int, int]:
    """``3.3`` (or ``3.3.0``) as (major, minor); ValueError otherwise."""
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(text)
    return int(match.group(1)), int(match.group(2))


def _bounds(term: str) -> list[tuple[str, tuple[int, int, int, int, str]]]:
    """A single constraint term as (operator, version) comparisons."""
    match = re.match(r"^(\^|~|>=|<=|>|<|=)?\s*(.+)$", term)
    assert match is not None
    op, text = match.group(1) or "=", match.group(2)
    parts = _SEMVER.match(text)
    if not parts:
        raise ValueError(f"bad constraint {term!r}")
    major = int(parts.group(1))
    minor = int(parts.group(2)) if parts.group(2) and parts.group(2).isdigit() else None
    patch = int(parts.group(3)) if parts.group(3) and parts.group(3).isdigit() else None
    low = (major, minor or 0, patch or 0, 0, "")
    if op == "^" or (op == "=" and minor is None):
        return [(">=", low), ("<", (major + 1, 0, 0, 0, ""))]
    if op == "~" or (op == "=" and patch is None):
        top = (major, (minor or 0) + 1, 0, 0, "") if minor is not None else (major + 1, 0, 0, 0, "")
        return [(">=", low), ("<", top)]
    return [(op, version_key(text))]


def satisfies(version: str, constraint: str) -> bool:
    """Whether ``version`` meets a Masterminds-style constraint (``^8.13.0 || ^9.0.0``)."""
    key = version_key(version)
    compare = {">=": key.__ge__, "<=": key.__le__, ">": key.__gt__, "<": key.__lt__,
               "=": key.__eq__}
    for alternative in constraint.split("||"):
        joined = re.sub(r"(\^|~|>=|<=|>|<|=)\s+", r"\1", alternative.strip())
        terms = [t for t in re.split(r"[\s,]+", joined) if t]
        if all(compare[op](bound) for term in terms for op, bound in _bounds(term)):
            return True
    return False


@dataclass(frozen=True)
class EprPackage:
    """One package version the stand-in serves."""

    name: str
    version: str
    kibana: str
    type: str = "integration"
    format_version: str = "3.0.0"
    signed: bool = True

    @property
    def download(self) -> str:
        return f"/epr/{self.name}/{self.name}-{self.version}.zip"

    def base(self) -> dict[str, Any]:
        """The search item shape (``packages.BasePackage``, as search-package-example.json)."""
        path = f"/package/{self.name}/{self.version}"
        item = {
            "name": self.name,
            "title": self.name.replace("_", " ").title(),
            "version": self.version,
            "release": "beta" if is_prerelease(self.version) else "ga",
            "source": {"license": "Elastic-2.0"},
            "description": f"Collect data with the {self.name} integration",
            "type": self.type,
            "download": self.download,
            "path": path,
            "policy_templates": [{"name": self.name, "title": self.name.title(),
                                  "description": f"Collect {self.name} logs and metrics"}],
            "conditions": {"kibana": {"version": self.kibana}},
            "owner": {"github": "elastic/integrations", "type": "elastic"},
            "categories": ["observability"],
            "data_streams": [{"type": "logs", "dataset": f"{self.name}.log", "title": "Logs"}],
        }
        if self.signed:
            item["signature_path"] = f"{self.download}.sig"
        return item

    def info(self) -> dict[str, Any]:
        """The ``/package/<name>/<version>/`` shape (package-zip.json): the base plus the
        package details."""
        path = f"/package/{self.name}/{self.version}"
        return {**self.base(), "format_version": self.format_version,
                "readme": f"{path}/docs/README.md", "license": "basic", "screenshots": [],
                "assets": [f"{path}/manifest.yml", f"{path}/docs/README.md"]}


class EprServer:
    """epr.elastic.co on loopback; ``url`` is the base (ends with ``/``)."""

    def __init__(self, root: Path, signer: SigningKey, *, redirect: bool = False) -> None:
        self.root = root
        self.signer = signer
        self.redirect = redirect
        self.faults = Faults()
        self.packages: list[EprPackage] = []
        #: (name, version) -> the download path its answers give instead of the usual one
        #: (its signature beside it): a mirror that lays files out its own way.
        self.paths: dict[tuple[str, str], str] = {}
        #: The query of every /search, in order.
        self.searches: list[dict[str, str]] = []
        root.mkdir(parents=True, exist_ok=True)
        self._storage = BackgroundServer(storage_app(root, self.faults))
        self._server = BackgroundServer(self._app())

    @property
    def url(self) -> str:
        return f"{self._server.url}/"

    def start(self) -> EprServer:
        self._storage.start()
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._storage.stop()

    def add(self, name: str, version: str, kibana: str = "^8.13.0 || ^9.0.0",
            *, payload: int = 2048, format_version: str = "3.0.0",
            signed: bool = True) -> EprPackage:
        """Publish a package version: a real zip with a manifest, and its ``.sig`` unless
        ``signed`` is false."""
        package = EprPackage(name, version, kibana, format_version=format_version,
                             signed=signed)
        path = safe_join(self.root, package.download.lstrip("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{name}-{version}/manifest.yml",
                             f"format_version: {format_version}\nname: {name}\n"
                             f"version: {version}\n"
                             f"conditions:\n  kibana:\n    version: '{kibana}'\n")
            # Random bytes, stored: as incompressible as the deflated content of a real zip.
            archive.writestr(f"{name}-{version}/docs/README.md", os.urandom(payload))
        if signed:
            self.signer.sign(path, path.with_name(path.name + ".sig"))
        self.packages.append(package)
        return package

    def _search(self, request: web.Request) -> web.Response:
        query = request.query
        kibana = query.get("kibana.version")
        if kibana is not None:
            try:
                version_key(kibana)
            except ValueError:
                return web.Response(status=400, text=f"invalid Kibana version '{kibana}'\n")
        flags = {}
        for flag in ("all", "prerelease"):
            value = query.get(flag, "false").lower()
            if value not in ("true", "false", "1", "0"):
                return web.Response(status=400, text=f"invalid '{flag}' query param: "
                                                     f"'{query[flag]}'\n")
            flags[flag] = value in ("true", "1")
        bounds: dict[str, tuple[int, int]] = {}
        for name in ("spec.min", "spec.max"):
            if name in query:
                try:
                    bounds[name] = spec_key(query[name])
                except ValueError:
                    return web.Response(status=400, text=f"invalid '{name}' query param: "
                                                         f"'{query[name]}'\n")

        def spec_fits(package: EprPackage) -> bool:
            spec = spec_key(package.format_version)
            return bounds.get("spec.min", spec) <= spec <= bounds.get("spec.max", spec)

        found = [p for p in self.packages
                 if (not query.get("package") or p.name == query["package"])
                 and (not query.get("type") or p.type == query["type"])
                 and (kibana is None or satisfies(kibana, p.kibana))
                 and (flags["prerelease"] or not is_prerelease(p.version))
                 and spec_fits(p)]
        found.sort(key=lambda p: (p.name, version_key(p.version)))
        if not flags["all"]:
            newest = {p.name: p for p in found}
            found = list(newest.values())
        return web.json_response([self._item(p) for p in found],
                                 dumps=lambda d: json.dumps(d, indent=2))

    def _item(self, package: EprPackage) -> dict[str, Any]:
        item = package.base()
        moved = self.paths.get((package.name, package.version))
        if moved is not None:
            item["download"] = moved
            if package.signed:
                item["signature_path"] = f"{moved}.sig"
        return item

    def _app(self) -> web.Application:
        async def index(request: web.Request) -> web.Response:
            return web.json_response({"service.name": "package-registry",
                                      "service.version": SERVICE_VERSION})

        async def health(request: web.Request) -> web.Response:
            return web.Response(status=200)

        async def search(request: web.Request) -> web.Response:
            self.faults.record(request)
            self.searches.append(dict(request.query))
            return self._search(request)

        async def package(request: web.Request) -> web.Response:
            name, version = request.match_info["name"], request.match_info["version"]
            for p in self.packages:
                if p.name == name and p.version == version:
                    return web.json_response(p.info())
            return web.Response(status=404, text="package not found\n")

        async def download(request: web.Request) -> web.StreamResponse:
            relative = f"epr/{request.match_info['path']}"
            if self.redirect:
                self.faults.record(request)
                raise web.HTTPFound(f"{self._storage.url}/{relative}")
            return await serve_file(request, safe_join(self.root, relative), self.faults)

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/index.json", index)
        app.router.add_get("/health", health)
        app.router.add_get("/search", search)
        app.router.add_get("/package/{name}/{version}/", package)
        app.router.add_get("/epr/{path:.+}", download)
        return app
