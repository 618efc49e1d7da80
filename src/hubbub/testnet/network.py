"""Hosts as Linux network namespaces on one private subnet, joined by a bridge.

Each host is a namespace with one veth pair: its end (`eth0`) inside, with the host's
address; the other end on the bridge in the root namespace, which holds the subnet's
first address, so this machine reaches every host and they reach each other. Every name
carries the network's id (`hbt<id>` for the bridge, `hbt-<id>-<host>` for a namespace,
`hbt<id>-<n>` for a link), so two networks, or anything else on the machine, never
collide. Cutting a host off is setting its link on the bridge down: what is sent to it
or by it is dropped, as on a cable pulled, and setting it up again heals it.

Everything here runs `ip` (iproute2) and needs root.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


class NetworkError(Exception):
    """An `ip` command failed; the message has its output."""


@dataclass(frozen=True)
class Host:
    """One host: its name, namespace, address, and its link on the bridge."""

    name: str
    namespace: str
    address: str
    link: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """`command` run inside the host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; its output, or `NetworkError` with what it said."""
    if shutil.which("ip") is None:
        raise NetworkError("no `ip` command: install iproute2")
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class Network:
    """The bridge and hosts of one network, named by `net_id` (six hex digits)."""

    net_id: str
    subnet: str

    @property
    def bridge(self) -> str:
        return f"hbt{self.net_id}"

    @property
    def bridge_address(self) -> str:
        """The root namespace's address on the subnet (the first)."""
        return str(ipaddress.ip_network(self.subnet)[1])

    def host(self, name: str, number: int) -> Host:
        """The host `name` at the subnet's address `number` (2 to 254)."""
        network = ipaddress.ip_network(self.subnet)
        if not 2 <= number < network.num_addresses - 1:
            raise ValueError(f"host number {number} is outside {self.subnet}")
        return Host(
            name=name,
            namespace=f"hbt-{self.net_id}-{name}",
            address=str(network[number]),
            link=f"hbt{self.net_id}-{number}",
        )

    def create(self) -> None:
        """The bridge, up, with the subnet's first address."""
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.bridge_address}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add(self, host: Host) -> None:
        """The host's namespace, with loopback and its end of a veth pair on the bridge."""
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        ip("netns", "add", host.namespace)
        ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0",
           "netns", host.namespace)  # fmt: skip
        ip("link", "set", host.link, "master", self.bridge)
        ip("link", "set", host.link, "up")
        inside = ("-n", host.namespace)
        ip(*inside, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")
        ip(*inside, "route", "add", "default", "via", self.bridge_address)

    def partition(self, host: Host) -> None:
        """Cut `host` off: its link on the bridge goes down, and its traffic is dropped."""
        ip("link", "set", host.link, "down")

    def heal(self, host: Host) -> None:
        ip("link", "set", host.link, "up")

    def is_cut_off(self, host: Host) -> bool:
        return "state DOWN" in ip("link", "show", host.link, check=False) or not self.exists(host)

    def exists(self, host: Host) -> bool:
        return host.namespace in namespaces()

    def remove(self, hosts: Sequence[Host]) -> list[str]:
        """Delete every host's namespace (its veth pair goes with it) and the bridge;
        what could not be deleted, as messages (nothing when all is gone)."""
        problems = []
        present = namespaces()
        for host in hosts:
            if host.namespace in present:
                try:
                    ip("netns", "delete", host.namespace)
                except NetworkError as error:
                    problems.append(str(error))
            if ip("link", "show", host.link, check=False):  # left on the bridge
                ip("link", "delete", host.link, check=False)
        if ip("link", "show", self.bridge, check=False):
            try:
                ip("link", "delete", self.bridge)
            except NetworkError as error:
                problems.append(str(error))
        return problems


def namespaces() -> set[str]:
    """The names of the network namespaces on this machine."""
    return {line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()}


def free_subnet(wanted: str | None = None) -> str:
    """`wanted`, or the first /24 of 10.77.0.0/16 that no route of this machine uses."""
    routes = [
        ipaddress.ip_network(line.split()[0], strict=False)
        for line in ip("-4", "route", "show").splitlines()
        if line.split() and line.split()[0][0].isdigit()
    ]
    if wanted is not None:
        subnet = ipaddress.ip_network(wanted)
        if any(subnet.overlaps(route) for route in routes):
            raise NetworkError(f"{wanted} is already routed on this machine: choose another")
        return str(subnet)
    for candidate in ipaddress.ip_network("10.77.0.0/16").subnets(new_prefix=24):
        if not any(candidate.overlaps(route) for route in routes):
            return str(candidate)
    raise NetworkError("every /24 of 10.77.0.0/16 is routed already: pass a subnet")
