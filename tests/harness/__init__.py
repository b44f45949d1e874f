"""The tests' one harness: run the tap as users do, read what it wrote, know what it must write.

- `sandboxes`: sandbox configurations (the workspaces tests use, the readings of Braze),
  tap configurations for a sandbox, free ports, an authenticated HTTP client.
- `running`: the tap as a process (`python -m`), as the installed console script, read
  line by line until a signal; discovery and catalogs; Meltano projects.
- `messages`: Singer messages, states and bookmarks; the streams' keys and partitions.
- `expected`: what each stream must hold (from the sandbox's own oracle), and the
  comparisons of what the tap wrote with it.
- `postgres`: a throwaway PostgreSQL cluster.
- `proxy`: an HTTP proxy that rewrites or refuses chosen responses.

Nothing here imports the tap's code: expected values come from the sandbox's oracle, so
a tap bug cannot hide in a shared helper.
"""
