"""Write the mentions benchmark's pages as a snapshot, and its queries as request paths.

    python bench/mentions_snapshot.py PAGES DATA_DIR

`DATA_DIR/mentions` is then what `hubbub serve --role mentions` loads, and
`DATA_DIR/paths.txt` what `bench/mentions_memory_cap.sh` sends it.
"""

import sys
from pathlib import Path
from urllib.parse import quote

from hubbub.benchmarks.mentions import _followers, _prefixes, synthetic_pages
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.store import PageStore

if __name__ == "__main__":
    pages, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    followers = _followers(pages, 7)
    data_dir.mkdir(parents=True, exist_ok=True)
    MemoryMentions(PageStore.build(synthetic_pages(followers))).save(data_dir / "mentions")
    paths = [f"/v1/mentions?q={quote(p)}&limit=10" for p in _prefixes(followers, 20_000, 7)]
    (data_dir / "paths.txt").write_text("\n".join(paths))
