"""Sandboxes of the networks Hubbub publishes to, for trying it and measuring it with no
real account: a Mastodon server that follows the API documentation (`mastodon`), and
Bluesky's own PDS run locally from npm (`bluesky`, after `make pds`). The tests and the
publishing benchmark publish to them; nothing in the platform uses them."""
