"""Shared plumbing with no chamtvm dependencies: the registry, durable JSON-lines appends,
atomic writes, the working folder, HOST:PORT parsing, metrics, progress bars, versions.

Every other package may import ``core``; ``core`` imports no other chamtvm package."""
