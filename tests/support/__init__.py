"""What several test modules share: stacks, servers, runners and data. No tests here."""
