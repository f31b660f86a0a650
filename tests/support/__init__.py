"""Local HTTP servers for real crawls in tests: a guarded shop site and a forwarding proxy."""
