"""`ftq mcp`: a Model Context Protocol server (stdio) that gives coding agents ftq's job
tools over the HTTP API of a running ftq. It never talks to Fireworks or the database."""
