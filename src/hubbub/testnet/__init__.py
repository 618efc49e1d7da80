"""Many hosts on one machine: the platform deployed as it is at scale, for tests.

Every host is a Linux network namespace on a private subnet (`network`): a NATS
JetStream cluster of three, PostgreSQL and Redis on a host of their own, and each role
of the platform on its own host, two for mentions (`plan`), every role running the
wheel built from the checkout (`install`). `Testnet` brings it up and down, and cuts a
host off or kills its server for the tests of what the platform does then;
`hubbub testnet up|down|status` (`hubbub.cli.testnet`) does the same for people.
Needs root, iproute2, nats-server, PostgreSQL's and Redis's server programs.
"""

from hubbub.testnet.testnet import HostStatus, Testnet, TestnetError

__all__ = ["HostStatus", "Testnet", "TestnetError"]
