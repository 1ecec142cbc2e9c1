"""For a developer's machine only, never the runtime: the local stack and the embedded
Redis it (and the test suite) starts when none is configured."""
