"""Synthetic input for demos, tests and benchmarks; no part of any service.

It makes a world of accounts and a Bluesky Jetstream firehose over it that looks, to a
consumer, like production traffic, and that depends only on its spec (same spec, same
bytes):

- `firehose`: `FirehoseSpec`, `generate_firehose`, `write_firehose` and the event mix;
- `population`: the accounts (`page(index)`), stable across seeds;
- `corpus`: the multilingual text of posts, bios, links and names;
- `ids`: DIDs, TIDs (record keys), CIDs, strong refs and timestamps;
- `popularity`: Zipf-shaped popularity and weighted draws.
"""
